"""The drift job: the newest window of features and predictions against the champion's training reference."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import mlflow
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
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
from featurehouse.training.labels import entity_rows
from featurehouse.training.model import failure_probability
from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
from featurehouse.training.train import PREDICTION, load_reference, model_features

log = logging.getLogger(__name__)

DRIFT_KEYS = ("window_end", "model_version", "column")


@dataclass(frozen=True)
class DriftReport:
    window_start: datetime
    window_end: datetime
    model_version: str
    columns: list[ColumnDrift]
    drifted: bool

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


def thresholds_from(settings: Settings) -> DriftThresholds:
    d = settings.drift
    return DriftThresholds(
        psi=d.psi, ks_pvalue=d.ks_pvalue, ks_statistic=d.ks_statistic, drift_share=d.drift_share
    )


def current_window(lake: Lakehouse, settings: Settings) -> tuple[datetime, datetime]:
    """(start, end] of the newest `window_hours` of telemetry."""
    end = lake.read("telemetry").agg(F.max("timestamp")).collect()[0][0]
    return end - timedelta(hours=settings.drift.window_hours), end


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


def detect_drift(lake: Lakehouse, settings: Settings) -> DriftReport:
    configure_mlflow(settings)
    champion = version_with_alias(MlflowClient(), settings.mlflow.model_name, CHAMPION)
    if champion is None:
        raise FeaturehouseError(f"no '{CHAMPION}' model to monitor: run the training job first")
    reference = load_reference(champion.run_id)
    start, end = current_window(lake, settings)
    telemetry = lake.read("telemetry")
    entities = entity_rows(
        telemetry.where(F.col("timestamp") > F.lit(start)),
        stride_hours=settings.training.entity_stride_hours,
    )
    numeric, categorical = model_features()
    current = (
        service_features(lake, feature_store(settings), settings.feast.feature_service, entities)
        .select(*categorical, *numeric)
        .limit(settings.drift.sample_rows)
        .toPandas()
    )
    # The window's predictions: the champion's scores on the window's feature rows,
    # sampled like the reference (which holds its scores on the held-out window).
    model = mlflow.sklearn.load_model(champion.uri)
    current[PREDICTION] = failure_probability(model, current[categorical + numeric])
    thresholds = thresholds_from(settings)
    columns = compare_frames(
        reference,
        current,
        feature_columns=numeric,
        prediction_column=PREDICTION,
        thresholds=thresholds,
    )
    report = DriftReport(
        start, end, champion.version, columns, dataset_drifted(columns, thresholds)
    )
    frame = lake.spark.createDataFrame(drift_rows(report, champion.name), DRIFT_SCHEMA).withColumn(
        "computed_at", F.current_timestamp()
    )
    lake.merge(frame, "drift_metrics", DRIFT_KEYS, update=True)
    log.info(
        "drift: %s (%s)", report.drifted, ", ".join(report.drifted_columns) or "no column drifted"
    )
    return report


def publish_task_value(key: str, value: str) -> None:
    """Hand a value to later tasks of a Databricks job run; a no-op outside Databricks."""
    if not running_on_databricks():
        log.info("task value %s=%s (not on Databricks: not published)", key, value)
        return
    from databricks.sdk.runtime import dbutils

    dbutils.jobs.taskValues.set(key=key, value=value)
