"""Whether monitoring asks for a new model: dataset drift against the training baseline, or a
performance drop, each only where the use case's settings retrain on it.

The local pipeline decides from its own run's reports (`decide`). On Databricks the
monitoring workflow's `retrain_gate` notebook task decides from the tables the drift and
performance tasks wrote (`retrain_decision`) and publishes the answer as the task value
`retrain`, which a condition task reads before it runs the training job: task values can be
set from notebook tasks only, not from the wheel tasks that measure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pyspark.sql.functions as F

from featurehouse.config import Settings, UseCaseSettings
from featurehouse.io import Lakehouse
from featurehouse.spark import running_on_databricks
from featurehouse.usecase import UseCase

log = logging.getLogger(__name__)

RETRAIN_TASK_VALUE = "retrain"  # "true" or "false"


@dataclass(frozen=True)
class RetrainDecision:
    use_case: str
    reasons: list[str]

    @property
    def retrain(self) -> bool:
        return bool(self.reasons)

    def describe(self) -> str:
        if not self.reasons:
            return f"{self.use_case}: no retraining (no dataset drift, no performance drop)"
        return f"{self.use_case}: retrain: {'; '.join(self.reasons)}"


def decide(
    use_case: str, drifted: bool, dropped: Sequence[str], settings: UseCaseSettings
) -> RetrainDecision:
    """`drifted`: the newest window's dataset verdict against the training baseline;
    `dropped`: the performance windows below their test value by more than the margin."""
    reasons = []
    if drifted and settings.drift.retrain_on_drift:
        reasons.append("dataset drift against the training baseline")
    if dropped and settings.performance.retrain_on_drop:
        more = f" (and {len(dropped) - 1} more)" if len(dropped) > 1 else ""
        reasons.append(f"performance drop: {dropped[0]}{more}")
    return RetrainDecision(use_case, reasons)


def newest_drift_verdict(lake: Lakehouse) -> bool:
    """The dataset verdict of the newest window's baseline comparison; False before any."""
    if not lake.exists("drift_metrics"):
        return False
    baseline = lake.read("drift_metrics").where("comparison = 'baseline' AND slice_key IS NULL")
    newest = baseline.agg(F.max("window_end")).first()[0]
    if newest is None:
        return False
    rows = baseline.where(F.col("window_end") == F.lit(newest)).select("dataset_drifted")
    return any(row["dataset_drifted"] for row in rows.distinct().collect())


def newest_performance_drops(lake: Lakehouse, margin: float) -> list[str]:
    """The windows the newest performance run measured below their version's test value by
    more than `margin` (as `PerformanceReport.dropped` words them)."""
    if not lake.exists("performance"):
        return []
    table = lake.read("performance")
    newest = table.agg(F.max("measured_at")).first()[0]
    if newest is None:
        return []
    latest = table.where((F.col("measured_at") == F.lit(newest)) & (F.col("change") < -margin))
    return [
        f"version {row['model_version']}, window from {row['window_start']:%Y-%m-%d}:"
        f" change {row['change']:+.1%} against its test window"
        for row in latest.orderBy("model_version", "window_start").collect()
    ]


def retrain_decision(lake: Lakehouse, settings: Settings, use_case: UseCase) -> RetrainDecision:
    uc_settings = settings.use_case(use_case.name)
    drifted = newest_drift_verdict(lake)
    dropped = newest_performance_drops(lake, uc_settings.performance.margin)
    decision = decide(use_case.name, drifted, dropped, uc_settings)
    log.info("%s", decision.describe())
    return decision


def publish_task_value(key: str, value: str) -> None:
    """Hand a value to later tasks of a Databricks job run (from a notebook task: the only
    kind that may set one); a no-op elsewhere."""
    if not running_on_databricks():
        log.info("task value %s=%s (not on Databricks: not published)", key, value)
        return
    from databricks.sdk.runtime import dbutils

    dbutils.jobs.taskValues.set(key=key, value=value)
