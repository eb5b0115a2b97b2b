"""The entity frame: which (machine, time) rows to learn from, and their failure labels."""

from __future__ import annotations

from datetime import datetime

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from featurehouse.features import ENTITY_KEY, EVENT_TIMESTAMP

LABEL = "failure_within_horizon"


def entity_rows(
    telemetry: DataFrame,
    *,
    stride_hours: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> DataFrame:
    """One row per machine every `stride_hours` (on the UTC hour grid), within [start, end].

    Readings off the grid (say 12:30) are not entity rows.
    """
    rows = telemetry.where((F.col("timestamp").cast("long") % (stride_hours * 3600)) == 0)
    if start is not None:
        rows = rows.where(F.col("timestamp") >= F.lit(start))
    if end is not None:
        rows = rows.where(F.col("timestamp") <= F.lit(end))
    return rows.select(
        F.col(ENTITY_KEY).cast("bigint").alias(ENTITY_KEY),
        F.col("timestamp").alias(EVENT_TIMESTAMP),
    ).distinct()


def with_failure_label(
    entities: DataFrame, failures: DataFrame, *, horizon_hours: int, observed_until: datetime
) -> DataFrame:
    """Label 1 when the machine has a component failure in (t, t + horizon].

    Rows whose horizon reaches past `observed_until` are dropped: we cannot yet know
    whether they fail, and calling them 0 would teach the model that they did not.
    """
    horizon_seconds = horizon_hours * 3600
    known = entities.where(
        F.col(EVENT_TIMESTAMP).cast("long") + horizon_seconds <= F.lit(observed_until).cast("long")
    )
    failure_times = failures.select(
        F.col(ENTITY_KEY).cast("bigint").alias("_machine"), F.col("timestamp").alias("_failed_at")
    )
    entity_seconds = F.col(EVENT_TIMESTAMP).cast("long")
    failed_seconds = F.col("_failed_at").cast("long")
    in_horizon = (
        (F.col(ENTITY_KEY) == F.col("_machine"))
        & (failed_seconds > entity_seconds)
        & (failed_seconds <= entity_seconds + horizon_seconds)
    )
    positives = (
        known.join(F.broadcast(failure_times), in_horizon, "left_semi")
        .select(ENTITY_KEY, EVENT_TIMESTAMP)
        .withColumn(LABEL, F.lit(1))
    )
    return known.join(positives, [ENTITY_KEY, EVENT_TIMESTAMP], "left").select(
        ENTITY_KEY, EVENT_TIMESTAMP, F.coalesce(F.col(LABEL), F.lit(0)).cast("int").alias(LABEL)
    )
