"""MLflow set-up and champion / challenger promotion in the model registry."""

from __future__ import annotations

import getpass
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from featurehouse.config import Settings
from featurehouse.training.metrics import improvement

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def configure_mlflow(settings: Settings, use_case: str | None = None) -> str | None:
    """Point MLflow at the environment's tracking server and registry; with a use case, also
    select (creating it if needed) its experiment and return the experiment's id."""
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.registry_uri)
    if settings.is_local:
        (settings.storage.root / "mlflow").mkdir(parents=True, exist_ok=True)
    if use_case is None:
        return None
    name = settings.experiment(use_case)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        artifacts = (
            (settings.storage.root / "mlflow" / "artifacts").as_uri() if settings.is_local else None
        )
        experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@dataclass(frozen=True)
class ModelVersionRef:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def model_requirements() -> list[str]:
    """What loading a logged model needs, pinned to the versions it was trained with."""
    return [
        f"{name}=={metadata.version(name)}" for name in ("scikit-learn", "numpy", "pandas", "skops")
    ]


def register_version(name: str, description: str, model_info, run_id: str) -> ModelVersionRef:
    """A new version of registered model `name` (created if missing) from a logged model.
    The client, not `registered_model_name`: the fluent API prints to the console."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)
    registered = client.create_model_version(
        name, model_info.model_uri, run_id=run_id, model_id=model_info.model_id
    )
    return ModelVersionRef(name, str(registered.version), run_id)


def version_with_alias(client: MlflowClient, name: str, alias: str) -> ModelVersionRef | None:
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return ModelVersionRef(name=name, version=str(version.version), run_id=version.run_id)


def should_promote(
    metric: str, challenger_score: float, champion_score: float | None, min_improvement: float
) -> bool:
    """Promote when there is no champion, the champion cannot be scored, or the challenger beats it.

    "Beats" is strict and follows the metric's direction (a lower RMSE, a higher PR AUC): a
    retrain that scores the same keeps the current champion.
    """
    if champion_score is None or champion_score != champion_score:  # None or NaN
        return True
    if challenger_score != challenger_score:
        return False
    # A tolerance, so that 0.8 vs 0.7 + 0.1 is "equal" (not promoted) despite float rounding.
    return improvement(metric, challenger_score, champion_score) > min_improvement + 1e-9


def set_alias(client: MlflowClient, ref: ModelVersionRef, alias: str) -> None:
    client.set_registered_model_alias(ref.name, alias, ref.version)
    log.info("%s version %s is now %s", ref.name, ref.version, alias)


# --- champion history: who made which version champion, when and why -------------------------

CHAMPION_HISTORY_TAG = "champion_history"


@dataclass(frozen=True)
class ChampionChange:
    version: str
    at: str  # ISO time, UTC
    by: str
    reason: str
    action: str  # "promote" or "rollback"
    replaced: str | None = None  # the version that was champion before


def champion_history(client: MlflowClient, name: str) -> list[ChampionChange]:
    """Every change of the `champion` alias, oldest first (a JSON list in a model tag)."""
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return []
    return [ChampionChange(**entry) for entry in json.loads(tags.get(CHAMPION_HISTORY_TAG, "[]"))]


def current_user() -> str:
    """Who runs this: the Databricks user or service principal, else the login name."""
    return os.environ.get("DATABRICKS_USER") or getpass.getuser()


def make_champion(
    client: MlflowClient, ref: ModelVersionRef, *, reason: str, action: str = "promote"
) -> ChampionChange:
    """Move `champion` to `ref` and record who, when and why: in the model's champion
    history and as tags of the version."""
    before = version_with_alias(client, ref.name, CHAMPION)
    change = ChampionChange(
        version=ref.version,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        by=current_user(),
        reason=reason,
        action=action,
        replaced=before.version if before else None,
    )
    history = [asdict(c) for c in champion_history(client, ref.name)] + [asdict(change)]
    client.set_registered_model_tag(ref.name, CHAMPION_HISTORY_TAG, json.dumps(history))
    for key in ("at", "by", "reason", "action"):
        client.set_model_version_tag(ref.name, ref.version, f"champion_{key}", getattr(change, key))
    set_alias(client, ref, CHAMPION)
    return change


def previous_champion(history: list[ChampionChange], current: str) -> str | None:
    """The newest earlier champion that is neither the current one nor one rolled back
    from (two rollbacks in a row go two champions back, not back and forth)."""
    rolled_back = {c.replaced for c in history if c.action == "rollback"}
    for change in reversed(history):
        if change.version != current and change.version not in rolled_back:
            return change.version
    return None
