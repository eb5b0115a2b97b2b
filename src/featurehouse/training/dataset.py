"""The training set of the failure model: labelled entity rows plus point-in-time features.

Built with featurehouse's point-in-time engine over the views of the Feast feature
service, each pinned to a Delta version so that the same set can be rebuilt later.
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
from featurehouse.training.labels import LABEL, entity_rows, with_failure_label

ENTITY_SOURCES = ("telemetry", "failures")
SPEC_ARTIFACT = "training_set.json"


def training_entities(
    lake: Lakehouse, versions: dict[str, int], *, horizon_hours: int, stride_hours: int
) -> DataFrame:
    """Labelled entity rows from the given versions of the telemetry and failure tables."""
    telemetry = lake.read("telemetry", version=versions["telemetry"])
    observed_until = telemetry.agg(F.max("timestamp")).first()[0]
    return with_failure_label(
        entity_rows(telemetry, stride_hours=stride_hours),
        lake.read("failures", version=versions["failures"]),
        horizon_hours=horizon_hours,
        observed_until=observed_until,
    )


def build_training_dataset(
    lake: Lakehouse, settings: Settings
) -> tuple[DataFrame, TrainingSetSpec]:
    """The training set as of now, and the spec that rebuilds it exactly."""
    versions = {key: lake.version(key) for key in ENTITY_SOURCES}
    params = {
        "horizon_hours": settings.training.label_horizon_hours,
        "stride_hours": settings.training.entity_stride_hours,
    }
    entities = training_entities(lake, versions, **params)
    lookups = service_lookup_specs(feature_store(settings), settings.feast.feature_service, lake)
    fingerprint, rows = entity_fingerprint(entities)
    spec = TrainingSetSpec(
        lookups=lookups,
        entity_fingerprint=fingerprint,
        entity_rows=rows,
        source_versions=versions,
        entity_params=params,
    )
    return rebuild_from_spec(lake, spec, entities), spec


def rebuild_from_spec(
    lake: Lakehouse, spec: TrainingSetSpec, entities: DataFrame | None = None
) -> DataFrame:
    """The training set a spec describes, read through Delta time travel."""
    if entities is None:
        entities = training_entities(lake, spec.source_versions, **spec.entity_params)
        fingerprint, rows = entity_fingerprint(entities)
        if (fingerprint, rows) != (spec.entity_fingerprint, spec.entity_rows):
            raise FeaturehouseError(
                f"the rebuilt entity frame differs from the original ({rows} rows, fingerprint"
                f" {fingerprint}; expected {spec.entity_rows} rows, {spec.entity_fingerprint})"
            )
    return build_training_set(entities, lookups_from_specs(lake, spec.lookups), label=LABEL)


def rebuild_training_set(lake: Lakehouse, run_id: str) -> DataFrame:
    """The exact training set of an MLflow run."""
    try:
        data = mlflow.artifacts.load_dict(f"runs:/{run_id}/{SPEC_ARTIFACT}")
    except Exception as exc:  # MLflow raises several types for a missing run or artifact
        raise FeaturehouseError(
            f"run {run_id} has no {SPEC_ARTIFACT} to rebuild from ({exc})"
        ) from None
    return rebuild_from_spec(lake, TrainingSetSpec.from_dict(data))
