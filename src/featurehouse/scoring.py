"""Batch scoring: the champion model over the newest feature row of every machine."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, Window

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.features import ENTITY_KEY, EVENT_TIMESTAMP
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import feature_store
from featurehouse.store.training_set import service_features
from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
from featurehouse.training.train import PREDICTION, model_features

log = logging.getLogger(__name__)

PREDICTION_KEYS = (ENTITY_KEY, EVENT_TIMESTAMP, "model_version")


@dataclass(frozen=True)
class ScoringResult:
    machines: int
    model_version: str
    inserted: int
    updated: int


def latest_entity_rows(telemetry: DataFrame) -> DataFrame:
    """Each machine at the time of its newest telemetry reading."""
    newest_first = Window.partitionBy(ENTITY_KEY).orderBy(F.col("timestamp").desc())
    return (
        telemetry.withColumn("_rank", F.row_number().over(newest_first))
        .where("_rank = 1")
        .select(
            F.col(ENTITY_KEY).cast("bigint").alias(ENTITY_KEY),
            F.col("timestamp").alias(EVENT_TIMESTAMP),
        )
    )


def with_predictions(
    features: DataFrame, model_uri: str, feature_columns: list[str], threshold: float
) -> DataFrame:
    """Score through a Spark UDF so the work runs on the executors, at any fleet size."""
    spark = features.sparkSession
    predict = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type="array<double>", env_manager="local"
    )
    probability = predict(*[F.col(c) for c in feature_columns])[1]
    return features.withColumn(PREDICTION, probability).withColumn(
        "predicted_failure", (F.col(PREDICTION) >= threshold).cast("int")
    )


def score_fleet(lake: Lakehouse, settings: Settings) -> ScoringResult:
    configure_mlflow(settings)
    client = MlflowClient()
    champion = version_with_alias(client, settings.mlflow.model_name, CHAMPION)
    if champion is None:
        raise FeaturehouseError(
            f"no '{CHAMPION}' version of model {settings.mlflow.model_name}: run the training job first"
        )
    threshold = float(
        client.get_model_version(champion.name, champion.version).tags["decision_threshold"]
    )
    numeric, categorical = model_features()
    entities = latest_entity_rows(lake.read("telemetry"))
    features = service_features(
        lake, feature_store(settings), settings.feast.feature_service, entities
    )
    scored = with_predictions(features, champion.uri, categorical + numeric, threshold)
    predictions = scored.select(
        ENTITY_KEY,
        EVENT_TIMESTAMP,
        F.col(PREDICTION),
        F.col("predicted_failure"),
        F.lit(champion.name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.current_timestamp().alias("scored_at"),
    )
    result = lake.merge(predictions, "predictions", PREDICTION_KEYS, update=True)
    machines = result.inserted + result.updated
    log.info("scored %d machines with %s version %s", machines, champion.name, champion.version)
    return ScoringResult(machines, champion.version, result.inserted, result.updated)
