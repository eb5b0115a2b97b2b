"""Batch scoring: a use case's champion model over the newest feature row of every entity
(or every row of the last `scoring.window`).

The predictions table is a history: every scoring run appends its rows, with the model
version and the run's id. The id is derived from what the run read (the champion version
and the Delta versions of the spine's data set and the feature tables), so a rerun over
the same data replaces its own rows and duplicates nothing.

An anomaly use case also merges each entity's consecutive flagged rows into anomaly
events (entity, start, end, peak score) in their own table; the new ones are returned for
alerting.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import mlflow.sklearn
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, Window
from pyspark.sql.types import DoubleType, StructField, StructType

from featurehouse.config import Settings
from featurehouse.errors import NoChampionError
from featurehouse.io import Lakehouse
from featurehouse.serving.predictor import predict_batches
from featurehouse.store.feast_store import feature_store
from featurehouse.store.training_set import service_features
from featurehouse.training.anomaly_metrics import PEAK_COLUMNS, RUN_COLUMNS
from featurehouse.training.evaluate import decision_threshold, input_columns
from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
from featurehouse.usecase import EVENT_TIMESTAMP, Anomaly, Classification, UseCase, micros

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringResult:
    use_case: str
    entities: int
    model_version: str
    score_run_id: str
    inserted: int
    updated: int
    # Anomaly use cases: events in the table after this run, and the ones it found new.
    events: int = 0
    new_events: list[dict] = field(default_factory=list)


def score_run_id(lake: Lakehouse, use_case: UseCase, model_version: str) -> str:
    """Names a scoring run by what it reads: the same model on the same data is the same run."""
    read = [use_case.spine.source.name, *(t.name for t in use_case.tables)]
    versions = ",".join(f"{key}={lake.version(key)}" for key in read)
    return hashlib.sha256(f"{model_version}|{versions}".encode()).hexdigest()[:16]


def latest_entity_rows(
    source: DataFrame, use_case: UseCase, window: timedelta | None = None
) -> DataFrame:
    """Each entity at the time of its newest row in the spine's data set, or at each of its
    rows within `window` of that one."""
    keys = use_case.entity.keys
    ts = use_case.spine.source.event_time
    if window is None:
        newest_first = Window.partitionBy(*keys).orderBy(F.col(ts).desc())
        rows = source.withColumn("_rank", F.row_number().over(newest_first)).where("_rank = 1")
    else:
        newest = F.max(F.unix_micros(ts)).over(Window.partitionBy(*keys))
        rows = (
            source.withColumn("_newest", newest)
            .where(F.unix_micros(ts) > F.col("_newest") - micros(window))
            .dropDuplicates([*keys, ts])
        )
    return rows.select(
        *[F.col(k).cast(t).alias(k) for k, t in keys.items()], F.col(ts).alias(EVENT_TIMESTAMP)
    )


def with_predictions(
    features: DataFrame,
    model_uri: str,
    use_case: UseCase,
    keep: Sequence[str] | None = None,
) -> DataFrame:
    """`keep` (every column of `features` by default) and the model's predictions, computed
    on the executors over Arrow batches by the predictor the service runs: compiled and
    checked against scikit-learn when it can be, else scikit-learn itself. A classifier's
    flag uses the decision threshold the model carries."""
    task = use_case.task
    model = mlflow.sklearn.load_model(model_uri)
    categorical = {f.name for f in use_case.features if f.dtype == "string"}
    keep = list(features.columns if keep is None else keep)
    inputs = [c for c in input_columns(model) if c not in keep]
    # Numbers as doubles, as the model reads them (a count may be an integer, or missing).
    reads = [*keep, *(c if c in categorical else F.col(c).cast("double").alias(c) for c in inputs)]
    schema = StructType(
        [*(features.schema[c] for c in keep), StructField(task.prediction, DoubleType())]
    )
    # A fresh token per call: a Python worker compiles the model once per scoring job, and
    # never serves one job's model to the next (tests reuse names and versions). A partial
    # of a function in the predictor's module, so that workers import that module alone.
    predict = functools.partial(
        predict_batches,
        token=uuid.uuid4().hex,
        model=model,
        task=task,
        categorical=categorical,
        keep=keep,
    )
    scored = features.select(*reads).mapInArrow(predict, schema)
    if isinstance(task, Classification):
        threshold = decision_threshold(model)
        if threshold is None:
            raise ValueError(f"{model_uri}: the classifier carries no decision threshold")
        return scored.withColumn(task.flag, (F.col(task.prediction) >= threshold).cast("int"))
    return scored


def prediction_columns(use_case: UseCase) -> list[str]:
    task = use_case.task
    return [task.prediction, task.flag] if isinstance(task, Classification) else [task.prediction]


def score(lake: Lakehouse, settings: Settings, use_case: UseCase) -> ScoringResult:
    started = time.perf_counter()
    configure_mlflow(settings)
    model_name = settings.model_name(use_case.name, use_case.model_name)
    champion = version_with_alias(MlflowClient(), model_name, CHAMPION)
    if champion is None:
        raise NoChampionError(
            f"no '{CHAMPION}' version of model {model_name}: run the training job first"
        )
    window = settings.use_case(use_case.name).scoring.window
    entities = latest_entity_rows(lake.read(use_case.spine.source.name), use_case, window)
    service = settings.feature_service(use_case.name)
    features = service_features(lake, feature_store(settings), service, use_case, entities)
    run_id = score_run_id(lake, use_case, champion.version)
    keys = [*use_case.keys, EVENT_TIMESTAMP]
    scored = with_predictions(features, champion.uri, use_case, keep=keys)
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
    outcome = ScoringResult(
        use_case.name, scored_entities, champion.version, run_id, result.inserted, result.updated
    )
    record_run(lake, outcome, time.perf_counter() - started)
    if isinstance(use_case.task, Anomaly):
        events, new = merge_anomaly_events(lake, use_case)
        outcome = replace(outcome, events=events, new_events=new)
    return outcome


# What an event's later runs may change: everything but its entity and start.
EVENT_COLUMNS = (*RUN_COLUMNS, *PEAK_COLUMNS)


def record_run(lake: Lakehouse, result: ScoringResult, seconds: float) -> None:
    """The run's operational figures, for performance monitoring and the report: a rerun
    of the same scoring run replaces its row."""
    row = lake.spark.createDataFrame(
        [(result.score_run_id, result.model_version, result.entities, round(seconds, 3))],
        "score_run_id string, model_version string, rows bigint, seconds double",
    ).withColumn("scored_at", F.current_timestamp())
    lake.merge(row, "scoring_runs", ("score_run_id",), update=True)


def anomaly_events(predictions: DataFrame, use_case: UseCase) -> DataFrame:
    """Each entity's runs of consecutive flagged rows, from the newest score of every row:
    (keys, start, end, rows, peak_score, peak_time, model_version). Per entity on the
    executors, with the same function training evaluates with."""
    from featurehouse.training.anomaly_metrics import anomaly_events as events_of

    task, keys = use_case.task, list(use_case.keys)
    newest = Window.partitionBy(*keys, EVENT_TIMESTAMP).orderBy(F.col("scored_at").desc())
    rows = (
        predictions.withColumn("_rank", F.row_number().over(newest))
        .where("_rank = 1")
        .select(*keys, EVENT_TIMESTAMP, task.flag, task.prediction, "model_version")
    )
    key_types = dict(rows.select(*keys).dtypes)
    schema = ", ".join(
        [
            *(f"`{k}` {t}" for k, t in key_types.items()),
            "start timestamp, `end` timestamp, rows bigint, peak_score double",
            "peak_time timestamp, model_version string",
        ]
    )

    def per_entity(frame):
        found = events_of(frame, keys, EVENT_TIMESTAMP, task.flag, task.prediction)
        versions = frame.set_index(EVENT_TIMESTAMP)["model_version"]
        return found.assign(model_version=versions.reindex(found["peak_time"]).to_numpy())

    return rows.groupBy(*keys).applyInPandas(per_entity, schema)


def merge_anomaly_events(lake: Lakehouse, use_case: UseCase) -> tuple[int, list[dict]]:
    """Recompute the events from the predictions and merge them on (keys, start): an event
    that grew since the last run is updated, not repeated. Returns the count and the new.
    Events are few (runs of flags), so they are brought to the driver once."""
    keys = [*use_case.keys, "start"]
    events = anomaly_events(lake.read("predictions"), use_case)
    found = lake.spark.createDataFrame(events.toPandas(), schema=events.schema)
    new = found
    if lake.exists("anomaly_events"):
        new = found.join(lake.read("anomaly_events").select(*keys), on=keys, how="left_anti")
    new_rows = new.toPandas().to_dict("records")
    lake.merge(found, "anomaly_events", keys, update=list(EVENT_COLUMNS))
    return lake.read("anomaly_events").count(), new_rows
