"""Training sets: feature lookups from the Feast feature service, and exact rebuilds.

`build_training_set` is the Databricks-style API (`FeatureLookup`s plus a label over
an entity frame) on featurehouse's own point-in-time engine. A `TrainingSetSpec`
records what is needed to rebuild a training set exactly: the Delta version of every
table read, the feature references and lookback windows, and a fingerprint of the
entity frame. `rebuild` reads the same versions through Delta time travel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import pyspark.sql.functions as F
from feast import FeatureStore
from pyspark.sql import DataFrame

from featurehouse.errors import FeaturehouseError
from featurehouse.io import Lakehouse
from featurehouse.store.pit import FeatureLookup, point_in_time_join
from featurehouse.usecase import EVENT_TIMESTAMP, UseCase


@dataclass(frozen=True)
class LookupSpec:
    """One feature view as it was read: enough to read it again, identically."""

    view: str
    table_key: str
    table: str
    delta_version: int
    keys: list[str]
    features: list[str]
    lookback_seconds: int | None


@dataclass(frozen=True)
class TrainingSetSpec:
    lookups: list[LookupSpec]
    entity_fingerprint: str
    entity_rows: int
    # Delta versions of the tables the entity frame was derived from, and how.
    source_versions: dict[str, int] = field(default_factory=dict)
    entity_params: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingSetSpec:
        return cls(
            lookups=[LookupSpec(**lookup) for lookup in data["lookups"]],
            entity_fingerprint=data["entity_fingerprint"],
            entity_rows=data["entity_rows"],
            source_versions=dict(data.get("source_versions", {})),
            entity_params=dict(data.get("entity_params", {})),
        )


def build_training_set(
    entity_df: DataFrame,
    lookups: Sequence[FeatureLookup],
    label: str | None = None,
    exclude_columns: Sequence[str] = (),
) -> DataFrame:
    """Entity rows with their point-in-time features (and label), minus `exclude_columns`."""
    if label is not None and label not in entity_df.columns:
        raise FeaturehouseError(f"label column {label!r} is not in the entity frame")
    joined = point_in_time_join(entity_df, lookups)
    return joined.drop(*exclude_columns)


def service_lookup_specs(
    store: FeatureStore, service_name: str, lake: Lakehouse, use_case: UseCase
) -> list[LookupSpec]:
    """The views of a Feast feature service, pinned to the current version of their tables."""
    service = store.get_feature_service(service_name)
    tables = {table.view_name: table for table in use_case.tables}
    specs = []
    for projection in service.feature_view_projections:
        table = tables.get(projection.name)
        if table is None:
            raise FeaturehouseError(
                f"feature view {projection.name!r} of service {service_name!r} is not declared"
                f" by use case {use_case.name!r}"
            )
        view = store.get_feature_view(projection.name)
        ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
        specs.append(
            LookupSpec(
                view=projection.name,
                table_key=table.name,
                table=lake.name(table.name),
                delta_version=lake.version(table.name),
                keys=list(table.keys),
                features=[f.name for f in projection.features],
                lookback_seconds=int(ttl.total_seconds()) if ttl else None,
            )
        )
    return specs


def lookups_from_specs(lake: Lakehouse, specs: Sequence[LookupSpec]) -> list[FeatureLookup]:
    """Each view read at its recorded Delta version (time travel)."""
    lookups = []
    for spec in specs:
        features = lake.read(spec.table_key, version=spec.delta_version)
        lookback = timedelta(seconds=spec.lookback_seconds) if spec.lookback_seconds else None
        lookups.append(
            FeatureLookup(
                table=features,
                feature_names=spec.features,
                lookup_key=spec.keys,
                timestamp_lookup_key=EVENT_TIMESTAMP,
                feature_timestamp_key=EVENT_TIMESTAMP,
                lookback_window=lookback,
            )
        )
    return lookups


def entity_fingerprint(entity_df: DataFrame) -> tuple[str, int]:
    """(fingerprint, rows): a hash of every entity row that ignores row order."""
    row_hash = F.xxhash64(*[F.col(c) for c in sorted(entity_df.columns)])
    result = entity_df.agg(
        F.sum(row_hash.cast("decimal(38,0)")).alias("hash_sum"),
        F.sum(F.abs(row_hash).cast("decimal(38,0)")).alias("abs_sum"),
        F.count(F.lit(1)).alias("rows"),
    ).first()
    return f"{result['hash_sum']}:{result['abs_sum']}", int(result["rows"])


def service_features(
    lake: Lakehouse, store: FeatureStore, service: str, use_case: UseCase, entities: DataFrame
) -> DataFrame:
    """Entity rows with the current point-in-time features of a feature service."""
    lookups = lookups_from_specs(lake, service_lookup_specs(store, service, lake, use_case))
    return point_in_time_join(entities, lookups)
