"""Batch scoring: a use case's champion model over the newest feature row of every entity.

The predictions table is a history: every scoring run appends its rows, with the model
version and the run's id. The id is derived from what the run read (the champion version
and the Delta versions of the spine's data set and the feature tables), so a rerun over
the same data replaces its own rows and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import mlflow
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, Window

from featurehouse.config import Settings
from featurehouse.errors import NoChampionError
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import feature_store
from featurehouse.store.training_set import service_features
from featurehouse.training.evaluate import model_inputs
from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
from featurehouse.training.train import registered_threshold
from featurehouse.usecase import EVENT_TIMESTAMP, Classification, UseCase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringResult:
    use_case: str
    entities: int
    model_version: str
    score_run_id: str
    inserted: int
    updated: int


def score_run_id(lake: Lakehouse, use_case: UseCase, model_version: str) -> str:
    """Names a scoring run by what it reads: the same model on the same data is the same run."""
    read = [use_case.spine.source.name, *(t.name for t in use_case.tables)]
    versions = ",".join(f"{key}={lake.version(key)}" for key in read)
    return hashlib.sha256(f"{model_version}|{versions}".encode()).hexdigest()[:16]


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
    inputs = model_inputs(use_case, {})
    # Numbers as doubles, as the model's signature reads them (a count may be missing). One
    # struct argument: the model gets the columns by name, with or without a signature.
    numeric = set(inputs.numeric)
    columns = F.struct(
        *[F.col(c).cast("double").alias(c) if c in numeric else F.col(c) for c in inputs.columns]
    )
    if isinstance(task, Classification):
        predict = mlflow.pyfunc.spark_udf(
            spark, model_uri, result_type="array<double>", env_manager="local"
        )
        scored = features.withColumn(task.prediction, predict(columns)[1])
        return scored.withColumn(task.flag, (F.col(task.prediction) >= threshold).cast("int"))
    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
    return features.withColumn(task.prediction, predict(columns))


def prediction_columns(use_case: UseCase) -> list[str]:
    task = use_case.task
    return [task.prediction, task.flag] if isinstance(task, Classification) else [task.prediction]


def score(lake: Lakehouse, settings: Settings, use_case: UseCase) -> ScoringResult:
    configure_mlflow(settings)
    model_name = settings.model_name(use_case.name, use_case.model_name)
    champion = version_with_alias(MlflowClient(), model_name, CHAMPION)
    if champion is None:
        raise NoChampionError(
            f"no '{CHAMPION}' version of model {model_name}: run the training job first"
        )
    entities = latest_entity_rows(lake.read(use_case.spine.source.name), use_case)
    service = settings.feature_service(use_case.name)
    features = service_features(lake, feature_store(settings), service, use_case, entities)
    run_id = score_run_id(lake, use_case, champion.version)
    scored = with_predictions(features, champion.uri, use_case, registered_threshold(champion))
    predictions = scored.select(
        *use_case.keys,
        EVENT_TIMESTAMP,
        *prediction_columns(use_case),
        F.lit(champion.name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.lit(run_id).alias("score_run_id"),
        F.current_timestamp().alias("scored_at"),
    )
    merge_keys = (*use_case.keys, EVENT_TIMESTAMP, "score_run_id")
    result = lake.merge(predictions, "predictions", merge_keys, update=True)
    scored_entities = result.inserted + result.updated
    log.info(
        "scored %d entities with %s version %s", scored_entities, champion.name, champion.version
    )
    return ScoringResult(
        use_case.name, scored_entities, champion.version, run_id, result.inserted, result.updated
    )
