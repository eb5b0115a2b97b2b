"""Error counts over the last day, in total and by error type, on the hourly telemetry grid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from featurehouse.features.declaration import ENTITY_KEY, EVENT_TIMESTAMP, Feature, FeatureTable

ERROR_IDS = ("error1", "error2", "error3", "error4", "error5")
ERROR_WINDOW_HOURS = 24


def telemetry_grid(telemetry: DataFrame) -> DataFrame:
    """The (machine, hour) rows features are computed for: one per telemetry reading."""
    return telemetry.select(ENTITY_KEY, "timestamp").distinct()


def with_error_counts(
    grid: DataFrame,
    errors: DataFrame,
    *,
    error_ids: Sequence[str] = ERROR_IDS,
    hours: int = ERROR_WINDOW_HOURS,
) -> DataFrame:
    """Errors with timestamp in (t - hours, t] for each grid row, in total and per error id.

    Grid rows and error events are unioned and counted with one window, so no join
    of every error to every grid hour is needed.
    """
    events = grid.select(ENTITY_KEY, "timestamp", F.lit(None).cast("string").alias("error_id"))
    events = events.withColumn("_grid", F.lit(True)).unionByName(
        errors.select(ENTITY_KEY, "timestamp", "error_id").withColumn("_grid", F.lit(False))
    )
    window = (
        Window.partitionBy(ENTITY_KEY)
        .orderBy(F.col("timestamp").cast("long"))
        .rangeBetween(-(hours * 3600 - 1), 0)
    )
    per_type = [
        F.count(F.when(F.col("error_id") == error_id, 1))
        .over(window)
        .alias(f"{error_id}_count_{hours}h")
        for error_id in error_ids
    ]
    total = F.count("error_id").over(window).alias(f"errors_count_{hours}h")
    return (
        events.select(ENTITY_KEY, "timestamp", "_grid", total, *per_type)
        .where("_grid")
        .select(
            F.col(ENTITY_KEY).cast("bigint").alias(ENTITY_KEY),
            F.col("timestamp").alias(EVENT_TIMESTAMP),
            F.col(f"errors_count_{hours}h").cast("bigint"),
            *[F.col(f"{e}_count_{hours}h").cast("bigint") for e in error_ids],
        )
    )


ERROR_FEATURES = FeatureTable(
    table_key="error_features",
    view_name="machine_errors",
    description="Counts of machine errors over the last 24 hours, in total and by error type.",
    features=(
        Feature(
            f"errors_count_{ERROR_WINDOW_HOURS}h",
            "bigint",
            "Errors of any type in the last 24 hours",
        ),
        *(
            Feature(
                f"{e}_count_{ERROR_WINDOW_HOURS}h",
                "bigint",
                f"Errors of type {e} in the last 24 hours",
            )
            for e in ERROR_IDS
        ),
    ),
    sources=("telemetry", "errors"),
    build=lambda bronze: with_error_counts(telemetry_grid(bronze["telemetry"]), bronze["errors"]),
    ttl=timedelta(days=2),
)
