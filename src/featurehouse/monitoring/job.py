"""The drift job: the newest window of features and predictions against the champion's training reference."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import mlflow
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError, NoChampionError
from featurehouse.io import Lakehouse
from featurehouse.monitoring.drift import (
    ColumnDrift,
    DriftThresholds,
    compare_frames,
    dataset_drifted,
)
from featurehouse.spark import running_on_databricks
from featurehouse.store.feast_store import feature_store
from featurehouse.store.training_set import service_features
from featurehouse.training.evaluate import model_inputs, predict
from featurehouse.training.labels import spine_rows
from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
from featurehouse.training.train import load_reference
from featurehouse.usecase import UseCase

log = logging.getLogger(__name__)

DRIFT_KEYS = ("window_end", "model_version", "column")
# The Databricks task value the drift job publishes ("true" or "false"); the monitoring
# workflow's condition reads it to decide whether to retrain.
DRIFT_TASK_VALUE = "drift_detected"


@dataclass(frozen=True)
class DriftReport:
    use_case: str
    window_start: datetime
    window_end: datetime
    model_version: str
    columns: list[ColumnDrift]
    drifted: bool

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


def thresholds_from(settings: Settings, use_case: str) -> DriftThresholds:
    d = settings.use_case(use_case).drift
    return DriftThresholds(
        psi=d.psi, ks_pvalue=d.ks_pvalue, ks_statistic=d.ks_statistic, drift_share=d.drift_share
    )


def current_window(
    lake: Lakehouse, settings: Settings, use_case: UseCase
) -> tuple[datetime, datetime]:
    """(start, end] of the newest drift window of the spine's data set."""
    source = use_case.spine.source
    end = lake.read(source.name).agg(F.max(source.event_time)).collect()[0][0]
    if end is None:
        raise FeaturehouseError(f"{lake.name(source.name)} has no rows: no window to monitor")
    return end - settings.use_case(use_case.name).drift.window, end


DRIFT_SCHEMA = (
    "window_start timestamp, window_end timestamp, model_name string, model_version string,"
    " column string, kind string, reference_rows bigint, current_rows bigint,"
    " ks_statistic double, ks_pvalue double, psi double, drifted boolean, dataset_drifted boolean"
)


def drift_rows(report: DriftReport, model_name: str) -> list[tuple]:
    """One row per column, in DRIFT_SCHEMA's order."""
    return [
        (
            report.window_start,
            report.window_end,
            model_name,
            report.model_version,
            c.column,
            c.kind,
            c.reference_rows,
            c.current_rows,
            c.ks_statistic,
            c.ks_pvalue,
            c.psi,
            c.drifted,
            report.drifted,
        )
        for c in report.columns
    ]


def detect_drift(lake: Lakehouse, settings: Settings, use_case: UseCase) -> DriftReport:
    configure_mlflow(settings)
    model_name = settings.model_name(use_case.name, use_case.model_name)
    champion = version_with_alias(MlflowClient(), model_name, CHAMPION)
    if champion is None:
        raise NoChampionError(
            f"no '{CHAMPION}' version of model {model_name} to monitor: run the training job first"
        )
    reference = load_reference(champion.run_id)
    start, end = current_window(lake, settings, use_case)
    source = use_case.spine.source
    entities = spine_rows(
        lake.read(source.name).where(F.col(source.event_time) > F.lit(start)),
        use_case.spine,
        use_case.entity.keys,
    )
    inputs = model_inputs(use_case, {})
    service = settings.feature_service(use_case.name)
    current = (
        service_features(lake, feature_store(settings), service, use_case, entities)
        .select(*inputs.columns)
        .limit(settings.use_case(use_case.name).drift.sample_rows)
        .toPandas()
    )
    # The window's predictions: the champion's on the window's feature rows, sampled like
    # the reference (which holds its predictions on the held-out window).
    model = mlflow.sklearn.load_model(champion.uri)
    prediction = use_case.task.prediction
    current[prediction] = predict(model, use_case.task, current[inputs.columns])
    thresholds = thresholds_from(settings, use_case.name)
    columns = compare_frames(
        reference,
        current,
        feature_columns=list(inputs.numeric),
        prediction_column=prediction,
        thresholds=thresholds,
    )
    report = DriftReport(
        use_case.name, start, end, champion.version, columns, dataset_drifted(columns, thresholds)
    )
    frame = lake.spark.createDataFrame(drift_rows(report, champion.name), DRIFT_SCHEMA).withColumn(
        "computed_at", F.current_timestamp()
    )
    lake.merge(frame, "drift_metrics", DRIFT_KEYS, update=True)
    log.info(
        "%s drift: %s (%s)",
        use_case.name,
        report.drifted,
        ", ".join(report.drifted_columns) or "no column drifted",
    )
    return report


def publish_task_value(key: str, value: str) -> None:
    """Hand a value to later tasks of a Databricks job run; a no-op outside Databricks."""
    if not running_on_databricks():
        log.info("task value %s=%s (not on Databricks: not published)", key, value)
        return
    from databricks.sdk.runtime import dbutils

    dbutils.jobs.taskValues.set(key=key, value=value)
