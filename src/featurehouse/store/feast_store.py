"""The Feast store of an environment, point-in-time feature retrieval, materialization, online reads."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any

from feast import FeatureStore, RepoConfig
from pyspark.sql import SparkSession

from featurehouse.config import Settings
from featurehouse.errors import ConfigError
from featurehouse.spark import local_spark_conf
from featurehouse.store.definitions import feast_objects
from featurehouse.usecase import UseCase

log = logging.getLogger(__name__)


def feast_repo_config(settings: Settings) -> RepoConfig:
    """The store of an environment: a file registry in `feast.store_dir`, the configured
    online store (SQLite in `feast.store_dir`, or Redis) and Spark as the offline store (as
    feature_store.yaml has it locally).

    On Databricks the offline store uses the workspace's session, so it needs no Spark conf.
    """
    store_dir = settings.feast.store_dir
    spark_conf = local_spark_conf(settings) if settings.is_local else None
    return RepoConfig(
        project=settings.project,
        provider="local",
        registry=str(store_dir / "registry.db"),
        online_store=online_store_config(settings),
        offline_store={"type": "spark", "spark_conf": spark_conf},
        entity_key_serialization_version=3,
        repo_path=settings.feast.repo_path,
    )


def sqlite_path(settings: Settings) -> Path:
    """The SQLite online store's file (Feast's default name, in `feast.store_dir`)."""
    return settings.feast.store_dir / "online_store.db"


def online_store_config(settings: Settings) -> dict[str, str]:
    """Feast's `online_store` block for the configured store.

    Jobs that use only the registry or the offline store (training, scoring) build the
    same configuration, so a Redis connection string missing from the environment is not
    an error here: the host then names the variable, and any online call fails saying so.
    Materialization and online reads resolve it strictly.
    """
    online = settings.feast.online_store
    if online.type == "sqlite":
        return {"type": "sqlite", "path": str(sqlite_path(settings))}
    try:
        connection = online.redis_connection_string()
    except ConfigError as exc:
        log.warning("%s", exc)
        connection = f"{online.connection_string_env}-is-not-set:6379"
    return {"type": "redis", "connection_string": connection}


def feature_store(settings: Settings) -> FeatureStore:
    settings.feast.store_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=feast_repo_config(settings))


def apply_definitions(store: FeatureStore, settings: Settings, use_case: UseCase) -> list[str]:
    """Register a use case's entities, feature views and feature service (what `feast apply`
    does for every use case); other use cases' objects are left as they are."""
    objects = feast_objects(settings, use_case)
    store.apply(objects.all())
    return [view.name for view in objects.views]


def feature_references(store: FeatureStore, service_name: str) -> list[str]:
    service = store.get_feature_service(service_name)
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


def materialize(
    store: FeatureStore,
    spark: SparkSession,
    views: Sequence[str],
    start: datetime,
    end: datetime,
) -> None:
    """Load the newest feature row of every entity in [start, end] into the online store."""
    # Feast prints its progress; keep it in the log, not on the console.
    printed = io.StringIO()
    with _feast_spark_settings(spark), redirect_stdout(printed), redirect_stderr(printed):
        store.materialize(start_date=start, end_date=end, feature_views=list(views))
    log.info("feast materialize: %s", " ".join(printed.getvalue().split()))


def online_features(
    store: FeatureStore, service_name: str, entity_rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """The feature service's online values for each entity, given by its keys."""
    service = store.get_feature_service(service_name)
    response = store.get_online_features(features=service, entity_rows=list(entity_rows))
    return response.to_dict()
