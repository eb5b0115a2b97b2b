"""Performance monitoring: how the predictions did, once their labels have arrived.

A prediction made at time t for a label over (t, t + horizon] can be judged once the
spine's data set has rows past t + horizon. This job labels the prediction history the
way training labels its rows (`training.labels.with_label`), computes the task's metrics
per model version and time window on the executors (one pandas group each), and sets them
beside each version's own test metrics. A window whose promotion metric is worse than the
test window's by more than `performance.margin` is a performance drop.

Rows go to the use case's performance table, merged on (model version, window): a rerun
replaces its rows, and a window that gains labels is brought up to date. Operational
figures go beside the metrics: the batch scoring runs' rows and durations (`scoring_runs`)
and, when `serving.url` names the deployed service, its request latency from `/metrics`.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame

from featurehouse.config import Settings
from featurehouse.io import Lakehouse
from featurehouse.training.evaluate import promotion_metric, task_metrics
from featurehouse.training.labels import with_label
from featurehouse.training.metrics import improvement
from featurehouse.training.registry import ModelVersionRef, configure_mlflow
from featurehouse.training.train import registered_threshold
from featurehouse.usecase import EVENT_TIMESTAMP, Classification, UseCase

log = logging.getLogger(__name__)

TABLE = "performance"
WINDOW_KEYS = ("model_version", "window_start")


@dataclass(frozen=True)
class PerformanceReport:
    use_case: str
    metric: str
    labelled: int  # predictions whose label is known
    pending: int  # predictions still inside their label horizon
    windows: list[dict]  # one row per (model version, window), as written
    dropped: list[str]  # "version 3, week of 2024-05-06: rmse 12.1 vs 8.0 on test"
    operations: str = ""  # the batch scoring runs' figures, beside the metrics
    label_declared: bool = True

    @property
    def verdict(self) -> str:
        if not self.label_declared:
            return "no label declared: nothing to judge the predictions by (drift still runs)"
        if not self.labelled:
            return f"no labelled predictions yet ({self.pending} awaiting their label horizon)"
        if self.dropped:
            return f"performance drop in {len(self.dropped)} window(s): {self.dropped[0]}"
        return (
            f"{self.labelled} labelled predictions in {len(self.windows)} window(s):"
            f" no drop beyond the margin"
        )


def labelled_predictions(lake: Lakehouse, use_case: UseCase) -> tuple[DataFrame, int]:
    """The prediction history joined with its ground truth where the horizon has passed,
    and how many predictions still wait for theirs."""
    keys = list(use_case.keys)
    predictions = lake.read("predictions")
    spine = use_case.spine.source
    observed_until = lake.read(spine.name).agg(F.max(spine.event_time)).first()[0]
    entities = predictions.select(*keys, EVENT_TIMESTAMP).distinct()
    labels = with_label(
        entities,
        lake.read(use_case.label.source.name),
        use_case.label,
        keys,
        observed_until=observed_until,
    )
    labelled = predictions.join(labels, [*keys, EVENT_TIMESTAMP])
    total, known = predictions.count(), labelled.count()
    return labelled, total - known


def metrics_by_window(
    labelled: DataFrame,
    use_case: UseCase,
    window: str,
    thresholds: Mapping[str, float | None],
) -> DataFrame:
    """The task's metrics per model version and time window, each group on an executor."""
    task, label = use_case.task, use_case.label.name
    names = list(task_metrics(task, np.array([]), np.array([]), 0.5))
    schema = ", ".join(
        ["model_version string", "window_start timestamp", "window_end timestamp"]
        + [f"{name} double" for name in names]
    )

    def measure(group: pd.DataFrame) -> pd.DataFrame:
        version = str(group["model_version"].iloc[0])
        values = task_metrics(
            task,
            group[label].to_numpy(),
            group[task.prediction].to_numpy(dtype=float),
            thresholds.get(version),
        )
        head = {c: group[c].iloc[0] for c in ("model_version", "window_start", "window_end")}
        return pd.DataFrame([{**head, **values}])

    windowed = labelled.withColumn("_w", F.window(EVENT_TIMESTAMP, window)).select(
        "model_version",
        F.col("_w.start").alias("window_start"),
        F.col("_w.end").alias("window_end"),
        label,
        task.prediction,
    )
    return windowed.groupBy("model_version", "window_start", "window_end").applyInPandas(
        measure, schema
    )


def test_metric(client: MlflowClient, version: ModelVersionRef, metric: str) -> float | None:
    run = client.get_run(version.run_id)
    return run.data.metrics.get(f"test_{metric}")


def monitor_performance(
    lake: Lakehouse, settings: Settings, use_case: UseCase
) -> PerformanceReport:
    configure_mlflow(settings)
    client = MlflowClient()
    uc_settings = settings.use_case(use_case.name)
    metric = promotion_metric(use_case, uc_settings)
    operations = scoring_operations(lake)
    if settings.serving.url:
        operations += f"; service: {service_latency(settings.serving.url, use_case.name)}"
    if use_case.label is None:
        report = PerformanceReport(
            use_case.name, metric, 0, 0, [], [], operations, label_declared=False
        )
        log.info("%s: %s", use_case.name, report.verdict)
        return report
    # No .cache(): serverless compute refuses it; the count reads the tables once more.
    labelled, pending = labelled_predictions(lake, use_case)
    count = labelled.count()
    if not count:
        report = PerformanceReport(use_case.name, metric, 0, pending, [], [], operations)
        log.info("%s: %s", use_case.name, report.verdict)
        return report
    name = settings.model_name(use_case.name, use_case.model_name)
    versions = {
        str(r["model_version"]): ModelVersionRef(name, str(r["model_version"]), "")
        for r in labelled.select("model_version").distinct().collect()
    }
    refs = {v: _with_run(client, ref) for v, ref in versions.items()}
    thresholds = (
        {v: registered_threshold(ref) for v, ref in refs.items()}
        if isinstance(use_case.task, Classification)
        else {}
    )
    window = f"{int(uc_settings.performance.window.total_seconds())} seconds"
    measured = metrics_by_window(labelled, use_case, window, thresholds)
    tests = {v: test_metric(client, ref, metric) for v, ref in refs.items()}
    rows = [
        _with_reference(row.asDict(), metric, tests.get(row["model_version"]))
        for row in measured.orderBy(*WINDOW_KEYS).collect()
    ]
    margin = uc_settings.performance.margin
    dropped = [
        f"version {r['model_version']}, window from {r['window_start']:%Y-%m-%d}: {metric}"
        f" {r[metric]:.4f} vs {r['test_' + metric]:.4f} on its test window"
        for r in rows
        if r["change"] is not None and r["change"] < -margin
    ]
    table = lake.spark.createDataFrame(pd.DataFrame(rows)).withColumn(
        "measured_at", F.current_timestamp()
    )
    lake.merge(table, TABLE, WINDOW_KEYS, update=True)
    report = PerformanceReport(use_case.name, metric, count, pending, rows, dropped, operations)
    log.info("%s: %s", use_case.name, report.verdict)
    return report


def scoring_operations(lake: Lakehouse) -> str:
    """E.g. "3 scoring runs; the newest scored 72 rows in 21.4 s (3.4 rows/s)"."""
    if not lake.exists("scoring_runs"):
        return "no scoring run yet"
    runs = lake.read("scoring_runs")
    newest = runs.orderBy(F.col("scored_at").desc()).first()
    rate = newest["rows"] / newest["seconds"] if newest["seconds"] else float("nan")
    return (
        f"{runs.count()} scoring run(s); the newest scored {newest['rows']:,d} rows with"
        f" v{newest['model_version']} in {newest['seconds']:.1f} s ({rate:,.1f} rows/s)"
    )


def service_latency(url: str, use_case: str, timeout: float = 5.0) -> str:
    """The service's request latency for the use case, from its Prometheus metrics; a
    service that cannot be reached is said, not an error."""
    from featurehouse.serving.metrics import latency_summary

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout) as response:
            text = response.read().decode()
    except OSError as exc:
        return f"{url} unreachable ({exc})"
    summary = latency_summary(text, use_case)
    return "no request answered yet" if summary is None else summary.describe()


def _with_run(client: MlflowClient, ref: ModelVersionRef) -> ModelVersionRef:
    found = client.get_model_version(ref.name, ref.version)
    return ModelVersionRef(ref.name, ref.version, found.run_id)


def _with_reference(row: dict, metric: str, test_value: float | None) -> dict:
    """The window's promotion metric beside the version's test value, and the change
    (positive: better than on the test window, whichever way the metric runs)."""
    row[f"test_{metric}"] = test_value
    value = row[metric]
    known = test_value is not None and value == value
    row["change"] = improvement(metric, value, test_value) if known else None
    return row
