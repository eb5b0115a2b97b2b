"""The Feast store of an environment, point-in-time feature retrieval, materialization, online reads."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from feast import FeatureStore, RepoConfig
from pyspark.sql import SparkSession

from featurehouse.config import Settings
from featurehouse.spark import local_spark_conf
from featurehouse.store.definitions import feast_objects

log = logging.getLogger(__name__)


def feast_repo_config(settings: Settings) -> RepoConfig:
    """The store of an environment: a file registry and a SQLite online store in
    `feast.store_dir`, and Spark as the offline store (as feature_store.yaml has it locally).

    On Databricks the offline store uses the workspace's session, so it needs no Spark conf.
    """
    store_dir = settings.feast.store_dir
    spark_conf = local_spark_conf(settings) if settings.is_local else None
    return RepoConfig(
        project=settings.project,
        provider="local",
        registry=str(store_dir / "registry.db"),
        online_store={"type": "sqlite", "path": str(store_dir / "online_store.db")},
        offline_store={"type": "spark", "spark_conf": spark_conf},
        entity_key_serialization_version=3,
        repo_path=settings.feast.repo_path,
    )


def feature_store(settings: Settings) -> FeatureStore:
    settings.feast.store_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=feast_repo_config(settings))


def apply_definitions(store: FeatureStore, settings: Settings) -> list[str]:
    """Register the entity, feature views and feature service (what `feast apply` does)."""
    objects = feast_objects(settings)
    store.apply(objects.all())
    return [view.name for view in objects.views]


def feature_references(store: FeatureStore, settings: Settings) -> list[str]:
    service = store.get_feature_service(settings.feast.feature_service)
    return [
        f"{projection.name_to_use()}:{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


# Feast's Spark store switches this on in the shared session, and leaves it on. With it
# on, Delta's own data-skipping expressions (and any backticked name) fail to parse.
_QUOTED_REGEX = "spark.sql.parser.quotedRegexColumnNames"


@contextmanager
def _feast_spark_settings(spark: SparkSession) -> Iterator[None]:
    before = spark.conf.get(_QUOTED_REGEX, "false")
    try:
        yield
    finally:
        spark.conf.set(_QUOTED_REGEX, before)


def materialize(store: FeatureStore, spark: SparkSession, start: datetime, end: datetime) -> None:
    """Load the newest feature row of every machine in [start, end] into the online store."""
    with _feast_spark_settings(spark):
        store.materialize(start_date=start, end_date=end)


def online_features(
    store: FeatureStore, settings: Settings, machine_ids: Sequence[int]
) -> dict[str, list[Any]]:
    service = store.get_feature_service(settings.feast.feature_service)
    response = store.get_online_features(
        features=service, entity_rows=[{"machine_id": int(m)} for m in machine_ids]
    )
    return response.to_dict()
