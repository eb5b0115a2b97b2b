"""Rolling statistics of the hourly telemetry: how each sensor behaves over the last hours."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from featurehouse.features.declaration import ENTITY_KEY, EVENT_TIMESTAMP, Feature, FeatureTable

SENSORS = ("volt", "rotate", "pressure", "vibration")
WINDOWS_HOURS = (3, 24)
_STATS = {"mean": F.avg, "std": F.stddev_samp}


def rolling_feature_name(sensor: str, stat: str, hours: int) -> str:
    return f"{sensor}_{stat}_{hours}h"


def trailing_window(hours: int) -> Window:
    """Rows of the same machine with timestamp in (t - hours, t]: exactly `hours` hourly readings."""
    seconds = F.col("timestamp").cast("long")
    return Window.partitionBy(ENTITY_KEY).orderBy(seconds).rangeBetween(-(hours * 3600 - 1), 0)


def with_rolling_telemetry_stats(
    telemetry: DataFrame,
    *,
    sensors: Sequence[str] = SENSORS,
    windows_hours: Sequence[int] = WINDOWS_HOURS,
) -> DataFrame:
    """Mean and sample standard deviation of each sensor over each trailing window.

    The std of a single reading is null, not zero: one value says nothing about spread.
    """
    stats = [
        fn(sensor).over(trailing_window(hours)).alias(rolling_feature_name(sensor, stat, hours))
        for hours in windows_hours
        for sensor in sensors
        for stat, fn in _STATS.items()
    ]
    return telemetry.select(
        F.col(ENTITY_KEY).cast("bigint").alias(ENTITY_KEY),
        F.col("timestamp").alias(EVENT_TIMESTAMP),
        *stats,
    )


TELEMETRY_FEATURES = FeatureTable(
    table_key="telemetry_features",
    view_name="machine_telemetry",
    description="Hourly rolling mean and standard deviation of each telemetry sensor.",
    features=tuple(
        Feature(
            rolling_feature_name(sensor, stat, hours),
            "double",
            f"{'Mean' if stat == 'mean' else 'Sample standard deviation'} of {sensor} "
            f"over the last {hours} hours",
        )
        for hours in WINDOWS_HOURS
        for sensor in SENSORS
        for stat in _STATS
    ),
    sources=("telemetry",),
    build=lambda bronze: with_rolling_telemetry_stats(bronze["telemetry"]),
    ttl=timedelta(days=2),
)
