"""Error counts over the last day, three days and week, in total and by error type.

Computed on the hourly telemetry grid: one row per machine and telemetry timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from featurehouse.features.quality import in_range
from featurehouse.usecase import (
    EVENT_TIMESTAMP,
    Feature,
    FeatureTable,
    Source,
)
from featurehouse.usecases.predictive_maintenance.datasets import (
    ERRORS,
    MACHINE,
    MACHINE_ID,
    TELEMETRY,
)

ERROR_IDS = ("error1", "error2", "error3", "error4", "error5")
ERROR_WINDOWS_HOURS = (24, 72, 168)
_MICROS_PER_HOUR = 3600 * 1_000_000


def telemetry_grid(telemetry: DataFrame) -> DataFrame:
    """The (machine, hour) rows features are computed for: one per telemetry reading."""
    return telemetry.select(MACHINE_ID, "timestamp").distinct()


def total_count_name(hours: int) -> str:
    return f"errors_count_{hours}h"


def type_count_name(error_id: str, hours: int) -> str:
    return f"{error_id}_count_{hours}h"


def with_error_counts(
    grid: DataFrame,
    errors: DataFrame,
    *,
    error_ids: Sequence[str] = ERROR_IDS,
    windows_hours: Sequence[int] = ERROR_WINDOWS_HOURS,
) -> DataFrame:
    """Errors with timestamp in (t - N h, t] for each grid row and window N, in total and per id.

    Grid rows and error events are unioned and counted with window frames that share
    one partitioning and ordering, so Spark sorts the union once and evaluates every
    window in the same pass; no join of every error to every grid hour is needed.
    Time is ordered in microseconds (Spark's timestamp precision), so the window is
    exact: an error exactly N h before t is out, one a microsecond later is in.
    Errors of an id not in `error_ids` count in the totals only.
    """
    events = grid.select(MACHINE_ID, "timestamp", F.lit(None).cast("string").alias("error_id"))
    events = events.withColumn("_grid", F.lit(True)).unionByName(
        errors.select(MACHINE_ID, "timestamp", "error_id").withColumn("_grid", F.lit(False))
    )
    by_machine_in_time = Window.partitionBy(MACHINE_ID).orderBy(F.unix_micros("timestamp"))
    counts = []
    for hours in windows_hours:
        window = by_machine_in_time.rangeBetween(-(hours * _MICROS_PER_HOUR - 1), 0)
        counts.append(F.count("error_id").over(window).alias(total_count_name(hours)))
        counts += [
            F.count(F.when(F.col("error_id") == error_id, 1))
            .over(window)
            .alias(type_count_name(error_id, hours))
            for error_id in error_ids
        ]
    names = [c for h in windows_hours for c in _count_names(error_ids, h)]
    return (
        events.select(MACHINE_ID, "timestamp", "_grid", *counts)
        .where("_grid")
        .select(
            F.col(MACHINE_ID).cast("bigint").alias(MACHINE_ID),
            F.col("timestamp").alias(EVENT_TIMESTAMP),
            *[F.col(name).cast("bigint") for name in names],
        )
    )


def _count_names(error_ids: Sequence[str], hours: int) -> list[str]:
    return [total_count_name(hours), *(type_count_name(e, hours) for e in error_ids)]


def _error_features() -> tuple[Feature, ...]:
    features = []
    for hours in ERROR_WINDOWS_HOURS:
        tags = {"source": "errors", "window": f"{hours}h"}
        features.append(
            Feature(
                total_count_name(hours),
                "bigint",
                f"Errors of any type in the last {hours} hours, (t - {hours}h, t]",
                tags,
            )
        )
        features += [
            Feature(
                type_count_name(e, hours),
                "bigint",
                f"Errors of type {e} in the last {hours} hours, (t - {hours}h, t]",
                {**tags, "error_id": e},
            )
            for e in ERROR_IDS
        ]
    return tuple(features)


_FEATURES = _error_features()

ERROR_FEATURES = FeatureTable(
    name="machine_error_features",
    view_name="machine_errors",
    description=(
        "Counts of machine errors over the last 24, 72 and 168 hours, in total and by error type."
    ),
    entity=MACHINE,
    features=_FEATURES,
    sources=(
        Source(TELEMETRY),
        # Rows from the first changed error on count errors up to the longest window back.
        Source(ERRORS, history=timedelta(hours=max(ERROR_WINDOWS_HOURS))),
    ),
    build=lambda bronze: with_error_counts(telemetry_grid(bronze["telemetry"]), bronze["errors"]),
    ttl=timedelta(days=2),
    expectations=tuple(in_range(f.name, 0, severity="warn") for f in _FEATURES),
)
