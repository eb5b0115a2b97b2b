"""Feast objects derived from the use cases' declarations and the configured names.

`feature_repo/definitions.py` exposes these to `feast apply`; jobs apply the same objects
in code. Neither writes an entity, a feature name or a table path of its own.

Feast entities have one join key each, so a composite key (store, item) is one entity per
key column, and a feature view lists the entities of the keys its table has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64, String

from featurehouse.config import Settings
from featurehouse.discovery import feast_entity_names
from featurehouse.io.lakehouse import table_location
from featurehouse.usecase import FeatureTable, UseCase

FEAST_TYPES = {"double": Float64, "bigint": Int64, "string": String}
VALUE_TYPES = {"bigint": ValueType.INT64, "string": ValueType.STRING}


@dataclass(frozen=True)
class FeastObjects:
    """One use case's Feast objects: its entities (one per key), views and feature service."""

    entities: dict[str, Entity]  # by join key
    views: tuple[FeatureView, ...]
    service: FeatureService

    def all(self) -> list:
        return [*self.entities.values(), *self.views, self.service]


def entities(use_case: UseCase) -> dict[str, Entity]:
    entity = use_case.entity
    names = feast_entity_names(use_case)
    return {
        key: Entity(
            name=name,
            join_keys=[key],
            value_type=VALUE_TYPES[dtype],
            description=entity.description or f"{entity.name} ({key})",
            tags={"use_case": use_case.name},
        )
        for name, (key, dtype) in zip(names, entity.keys.items(), strict=True)
    }


def spark_source(settings: Settings, use_case: str, table: FeatureTable) -> SparkSource:
    """A Delta table by path locally (no metastore needed), by name in Unity Catalog."""
    location = table_location(settings, use_case, table.name)
    common = {
        "name": f"{table.view_name}_source",
        "timestamp_field": table.timestamp,
        "description": table.description,
    }
    if location is None:
        return SparkSource(table=settings.table(use_case, table.name), **common)
    return SparkSource(
        path=str(location), file_format="parquet", table_format=DeltaFormat(), **common
    )


def feature_view(
    settings: Settings, use_case: UseCase, table: FeatureTable, by_key: dict[str, Entity]
) -> FeatureView:
    return FeatureView(
        name=table.view_name,
        entities=[by_key[k] for k in table.keys],
        ttl=table.ttl or timedelta(0),
        schema=[
            Field(name=f.name, dtype=FEAST_TYPES[f.dtype], description=f.description)
            for f in table.features
        ],
        source=spark_source(settings, use_case.name, table),
        online=True,
        description=table.description,
        tags={"delta_table": settings.table(use_case.name, table.name), "use_case": use_case.name},
    )


def feast_objects(settings: Settings, use_case: UseCase) -> FeastObjects:
    by_key = entities(use_case)
    views = tuple(feature_view(settings, use_case, t, by_key) for t in use_case.tables)
    service = FeatureService(
        name=settings.feature_service(use_case.name),
        features=list(views),
        description=f"Features of the {use_case.name} model: {use_case.description}",
        tags={"use_case": use_case.name},
    )
    return FeastObjects(entities=by_key, views=views, service=service)


def all_feast_objects(settings: Settings, use_cases: Iterable[UseCase]) -> list:
    """Every use case's objects, for one `feast apply` of the whole registry."""
    return [obj for uc in use_cases for obj in feast_objects(settings, uc).all()]


def unbuilt_tables(settings: Settings, use_case: UseCase) -> list[str]:
    """The use case's feature tables not built yet, where that can be told without Spark
    (locally; in a catalog every table is assumed built): `feast apply` reads every source."""
    missing = []
    for table in use_case.tables:
        location = table_location(settings, use_case.name, table.name)
        if location is not None and not (location / "_delta_log").is_dir():
            missing.append(settings.table(use_case.name, table.name))
    return missing
