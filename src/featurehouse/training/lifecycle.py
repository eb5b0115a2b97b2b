"""The model's life in the registry: its versions and who made which one champion, manual
promotion (through the same gate as the validation step) and rollback."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.training.evaluate import promotion_metric
from featurehouse.training.registry import (
    CHAMPION,
    ChampionChange,
    ModelVersionRef,
    champion_history,
    make_champion,
    previous_champion,
    version_with_alias,
)
from featurehouse.training.validation import ValidationResult, validate
from featurehouse.usecase import UseCase


@dataclass(frozen=True)
class VersionRow:
    version: str
    created: int  # ms since the epoch
    run_id: str
    aliases: list[str]
    metric: str
    test_value: float | None
    validation: str


@dataclass(frozen=True)
class ModelHistory:
    model: str
    versions: list[VersionRow]
    changes: list[ChampionChange]


def history(settings: Settings, use_case: UseCase) -> ModelHistory:
    client = MlflowClient()
    name = settings.model_name(use_case.name, use_case.model_name)
    metric = promotion_metric(use_case, settings.use_case(use_case.name))
    rows = []
    for found in client.search_model_versions(f"name = '{name}'"):
        run_metrics = client.get_run(found.run_id).data.metrics
        rows.append(
            VersionRow(
                version=str(found.version),
                created=int(found.creation_timestamp),
                run_id=found.run_id,
                aliases=sorted(found.aliases),
                metric=metric,
                test_value=run_metrics.get(f"test_{metric}"),
                validation=found.tags.get("validation_status", "not validated"),
            )
        )
    rows.sort(key=lambda row: int(row.version))
    return ModelHistory(name, rows, champion_history(client, name))


def promote(settings: Settings, use_case: UseCase, version: str, reason: str) -> ValidationResult:
    """Make `version` champion by hand; it must pass the validation step's checks too."""
    return validate(settings, use_case, version, reason=reason)


def rollback(settings: Settings, use_case: UseCase, reason: str) -> ChampionChange:
    """Move `champion` back to the previous champion version, recording who, when and why."""
    client = MlflowClient()
    name = settings.model_name(use_case.name, use_case.model_name)
    current = version_with_alias(client, name, CHAMPION)
    if current is None:
        raise FeaturehouseError(f"model {name} has no champion to roll back")
    target = previous_champion(champion_history(client, name), current.version)
    if target is None:
        raise FeaturehouseError(
            f"model {name}: version {current.version} is the only champion there has been;"
            " there is nothing to roll back to"
        )
    found = client.get_model_version(name, target)
    return make_champion(
        client, ModelVersionRef(name, target, found.run_id), reason=reason, action="rollback"
    )
