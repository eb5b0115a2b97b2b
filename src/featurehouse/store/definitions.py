"""Feast objects derived from the feature-table declarations and the configured table names.

`feature_repo/definitions.py` exposes these to `feast apply`; jobs apply the same
objects in code. Neither writes a feature name or a table path of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64, String

from featurehouse.config import Settings
from featurehouse.features import ENTITY_KEY, EVENT_TIMESTAMP, FEATURE_TABLES, FeatureTable
from featurehouse.io.lakehouse import table_location

FEAST_TYPES = {"double": Float64, "bigint": Int64, "string": String}

MACHINE = Entity(
    name="machine",
    join_keys=[ENTITY_KEY],
    value_type=ValueType.INT64,
    description="One machine of the fleet",
)


@dataclass(frozen=True)
class FeastObjects:
    entity: Entity
    views: tuple[FeatureView, ...]
    service: FeatureService

    def all(self) -> list:
        return [self.entity, *self.views, self.service]


def spark_source(settings: Settings, table: FeatureTable) -> SparkSource:
    """A Delta table by path locally (no metastore needed), by name in Unity Catalog."""
    location = table_location(settings, table.table_key)
    common = {
        "name": f"{table.view_name}_source",
        "timestamp_field": EVENT_TIMESTAMP,
        "description": table.description,
    }
    if location is None:
        return SparkSource(table=settings.table(table.table_key), **common)
    return SparkSource(
        path=str(location), file_format="parquet", table_format=DeltaFormat(), **common
    )


def feature_view(settings: Settings, table: FeatureTable) -> FeatureView:
    return FeatureView(
        name=table.view_name,
        entities=[MACHINE],
        ttl=table.ttl or timedelta(0),
        schema=[
            Field(name=f.name, dtype=FEAST_TYPES[f.dtype], description=f.description)
            for f in table.features
        ],
        source=spark_source(settings, table),
        online=True,
        description=table.description,
        tags={"delta_table": settings.table(table.table_key)},
    )


def feast_objects(settings: Settings) -> FeastObjects:
    views = tuple(feature_view(settings, t) for t in FEATURE_TABLES)
    service = FeatureService(
        name=settings.feast.feature_service,
        features=list(views),
        description="Features of the machine-failure model",
    )
    return FeastObjects(entity=MACHINE, views=views, service=service)
