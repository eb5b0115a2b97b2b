"""Batch scoring: a use case's champion model over the newest feature row of every entity."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, Window

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import feature_store
from featurehouse.store.training_set import service_features
from featurehouse.training.evaluate import model_inputs
from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
from featurehouse.training.train import decision_threshold
from featurehouse.usecase import EVENT_TIMESTAMP, Classification, UseCase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringResult:
    use_case: str
    entities: int
    model_version: str
    inserted: int
    updated: int


def latest_entity_rows(source: DataFrame, use_case: UseCase) -> DataFrame:
    """Each entity at the time of its newest row in the spine's data set."""
    keys = use_case.entity.keys
    ts = use_case.spine.source.event_time
    newest_first = Window.partitionBy(*keys).orderBy(F.col(ts).desc())
    return (
        source.withColumn("_rank", F.row_number().over(newest_first))
        .where("_rank = 1")
        .select(
            *[F.col(k).cast(t).alias(k) for k, t in keys.items()], F.col(ts).alias(EVENT_TIMESTAMP)
        )
    )


def with_predictions(
    features: DataFrame, model_uri: str, use_case: UseCase, threshold: float | None
) -> DataFrame:
    """Score through a Spark UDF so the work runs on the executors, at any size."""
    spark = features.sparkSession
    task = use_case.task
    columns = [F.col(c) for c in model_inputs(use_case, {}).columns]
    if isinstance(task, Classification):
        predict = mlflow.pyfunc.spark_udf(
            spark, model_uri, result_type="array<double>", env_manager="local"
        )
        scored = features.withColumn(task.prediction, predict(*columns)[1])
        return scored.withColumn(task.flag, (F.col(task.prediction) >= threshold).cast("int"))
    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
    return features.withColumn(task.prediction, predict(*columns))


def prediction_columns(use_case: UseCase) -> list[str]:
    task = use_case.task
    return [task.prediction, task.flag] if isinstance(task, Classification) else [task.prediction]


def score(lake: Lakehouse, settings: Settings, use_case: UseCase) -> ScoringResult:
    configure_mlflow(settings)
    model_name = settings.model_name(use_case.name, use_case.model_name)
    champion = version_with_alias(MlflowClient(), model_name, CHAMPION)
    if champion is None:
        raise FeaturehouseError(
            f"no '{CHAMPION}' version of model {model_name}: run the training job first"
        )
    entities = latest_entity_rows(lake.read(use_case.spine.source.name), use_case)
    service = settings.feature_service(use_case.name)
    features = service_features(lake, feature_store(settings), service, use_case, entities)
    scored = with_predictions(features, champion.uri, use_case, decision_threshold(champion))
    predictions = scored.select(
        *use_case.keys,
        EVENT_TIMESTAMP,
        *prediction_columns(use_case),
        F.lit(champion.name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.current_timestamp().alias("scored_at"),
    )
    merge_keys = (*use_case.keys, EVENT_TIMESTAMP, "model_version")
    result = lake.merge(predictions, "predictions", merge_keys, update=True)
    scored_entities = result.inserted + result.updated
    log.info(
        "scored %d entities with %s version %s", scored_entities, champion.name, champion.version
    )
    return ScoringResult(
        use_case.name, scored_entities, champion.version, result.inserted, result.updated
    )
