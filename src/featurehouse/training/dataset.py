"""The training set of a use case: labelled spine rows plus point-in-time features.

Built with featurehouse's point-in-time engine over the views of the use case's Feast
feature service, each pinned to a Delta version so that the same set can be rebuilt later.
"""

from __future__ import annotations

import mlflow
import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import feature_store
from featurehouse.store.training_set import (
    TrainingSetSpec,
    build_training_set,
    entity_fingerprint,
    lookups_from_specs,
    service_lookup_specs,
)
from featurehouse.training.labels import spine_rows, with_label
from featurehouse.usecase import UseCase

SPEC_ARTIFACT = "training_set.json"


def entity_sources(use_case: UseCase) -> list[str]:
    """The data sets the (labelled) entity frame is derived from."""
    label = use_case.label
    return sorted({use_case.spine.source.name, *([label.source.name] if label else [])})


def entity_params(use_case: UseCase) -> dict[str, str]:
    """What defines the entity frame besides the data: recorded so a rebuild can tell when
    the declaration changed since."""
    label = use_case.label
    if label is None:
        return {"spine_every": str(use_case.spine.every), "label": "none"}
    return {
        "spine_every": str(use_case.spine.every),
        "label": label.name,
        "label_kind": label.kind,
        "label_horizon": str(label.horizon),
        "label_closed": label.closed,
    }


def training_entities(lake: Lakehouse, use_case: UseCase, versions: dict[str, int]) -> DataFrame:
    """Entity rows from the given version of the spine's data set, labelled from the given
    version of the label's (when the use case declares one)."""
    spine_source = lake.read(
        use_case.spine.source.name, version=versions[use_case.spine.source.name]
    )
    observed_until = spine_source.agg(F.max(use_case.spine.source.event_time)).first()[0]
    if observed_until is None:
        raise FeaturehouseError(
            f"{lake.name(use_case.spine.source.name)} has no rows: nothing to train on"
        )
    rows = spine_rows(spine_source, use_case.spine, use_case.entity.keys)
    if use_case.label is None:
        return rows
    return with_label(
        rows,
        lake.read(use_case.label.source.name, version=versions[use_case.label.source.name]),
        use_case.label,
        use_case.keys,
        observed_until=observed_until,
    )


def build_training_dataset(
    lake: Lakehouse, settings: Settings, use_case: UseCase
) -> tuple[DataFrame, TrainingSetSpec]:
    """The training set as of now, and the spec that rebuilds it exactly."""
    versions = {key: lake.version(key) for key in entity_sources(use_case)}
    entities = training_entities(lake, use_case, versions)
    service = settings.feature_service(use_case.name)
    lookups = service_lookup_specs(feature_store(settings), service, lake, use_case)
    fingerprint, rows = entity_fingerprint(entities)
    spec = TrainingSetSpec(
        lookups=lookups,
        entity_fingerprint=fingerprint,
        entity_rows=rows,
        source_versions=versions,
        entity_params=entity_params(use_case),
    )
    return rebuild_from_spec(lake, use_case, spec, entities), spec


def rebuild_from_spec(
    lake: Lakehouse, use_case: UseCase, spec: TrainingSetSpec, entities: DataFrame | None = None
) -> DataFrame:
    """The training set a spec describes, read through Delta time travel."""
    if entities is None:
        if spec.entity_params != entity_params(use_case):
            raise FeaturehouseError(
                f"the spine or label of {use_case.name} changed since this training set was"
                f" built ({spec.entity_params} then, {entity_params(use_case)} now)"
            )
        entities = training_entities(lake, use_case, spec.source_versions)
        fingerprint, rows = entity_fingerprint(entities)
        if (fingerprint, rows) != (spec.entity_fingerprint, spec.entity_rows):
            raise FeaturehouseError(
                f"the rebuilt entity frame differs from the original ({rows} rows, fingerprint"
                f" {fingerprint}; expected {spec.entity_rows} rows, {spec.entity_fingerprint})"
            )
    return build_training_set(
        entities,
        lookups_from_specs(lake, spec.lookups),
        label=use_case.label.name if use_case.label else None,
    )


def rebuild_training_set(lake: Lakehouse, use_case: UseCase, run_id: str) -> DataFrame:
    """The exact training set of an MLflow run."""
    try:
        data = mlflow.artifacts.load_dict(f"runs:/{run_id}/{SPEC_ARTIFACT}")
    except Exception as exc:  # MLflow raises several types for a missing run or artifact
        raise FeaturehouseError(
            f"run {run_id} has no {SPEC_ARTIFACT} to rebuild from ({exc})"
        ) from None
    return rebuild_from_spec(lake, use_case, TrainingSetSpec.from_dict(data))
