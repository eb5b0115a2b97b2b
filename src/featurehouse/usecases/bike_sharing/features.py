"""Hourly features of the bike system: recent rentals, the same hours a week ago, and the
hour's calendar and weather."""

from __future__ import annotations

from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from featurehouse.features.quality import in_range
from featurehouse.features.windows import at_lag, feature_name, trailing
from featurehouse.usecase import EVENT_TIMESTAMP, Feature, FeatureTable, Source
from featurehouse.usecases.bike_sharing.datasets import BIKE_SYSTEM, RENTALS, SYSTEM

KEYS = (SYSTEM,)
UNIT = "h"
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
HORIZON = 6 * HOUR
LAG_HOURS = (1, 24, 168)
MEAN_HOURS = (24, 168)
# The rentals in the 6 hours after t, a week earlier: the seasonal-naive forecast.
WEEK_AGO = "rentals_next_6h_week_ago"
CONDITIONS = ("holiday", "weekday", "workingday", "weathersit", "temp", "atemp", "hum", "windspeed")


def _name(stat: str, hours: int) -> str:
    return feature_name("rentals", stat, hours * HOUR, UNIT)


def with_rental_features(rentals: DataFrame) -> DataFrame:
    ts, cnt = "timestamp", F.col("cnt").cast("double")
    columns = {_name("lag", h): F.max(cnt).over(at_lag(KEYS, ts, h * HOUR)) for h in LAG_HOURS}
    columns |= {_name("mean", h): F.avg(cnt).over(trailing(KEYS, ts, h * HOUR)) for h in MEAN_HOURS}
    columns[_name("std", 24)] = F.stddev_samp(cnt).over(trailing(KEYS, ts, 24 * HOUR))
    columns[_name("sum", 6)] = F.sum(cnt).over(trailing(KEYS, ts, HORIZON))
    columns[WEEK_AGO] = F.sum(cnt).over(trailing(KEYS, ts, HORIZON, skip=WEEK - HORIZON))
    return rentals.select(
        F.col(SYSTEM),
        F.col(ts).alias(EVENT_TIMESTAMP),
        *[expr.alias(name) for name, expr in columns.items()],
        F.col("hour").cast("bigint").alias("hour_of_day"),
        *CONDITIONS,
    )


def _features() -> tuple[Feature, ...]:
    def over(hours: int) -> str:
        return f"(t - {hours}h, t]"

    return (
        *[
            Feature(_name("lag", h), "double", f"Rentals in the hour exactly {h} h before t")
            for h in LAG_HOURS
        ],
        *[
            Feature(_name("mean", h), "double", f"Mean hourly rentals over {over(h)}")
            for h in MEAN_HOURS
        ],
        Feature(_name("std", 24), "double", f"Sample std of hourly rentals over {over(24)}"),
        Feature(_name("sum", 6), "double", f"Rentals over {over(6)}"),
        Feature(
            WEEK_AGO,
            "double",
            "Rentals over (t - 168h, t - 162h]: the next 6 hours, a week earlier (the"
            " seasonal-naive forecast)",
        ),
        Feature("hour_of_day", "bigint", "Hour of the day of t (0..23)"),
        Feature("holiday", "bigint", "1 if t's day is a public holiday"),
        Feature("weekday", "bigint", "Day of the week of t (0 = Sunday)"),
        Feature("workingday", "bigint", "1 if t's day is neither a weekend nor a holiday"),
        Feature("weathersit", "bigint", "Weather in the hour: 1 clear .. 4 heavy rain or snow"),
        Feature("temp", "double", "Temperature in the hour, / 41 °C"),
        Feature("atemp", "double", "Feeling temperature in the hour, / 50 °C"),
        Feature("hum", "double", "Humidity in the hour, / 100"),
        Feature("windspeed", "double", "Wind speed in the hour, / 67"),
    )


_FEATURES = _features()

HOURLY_FEATURES = FeatureTable(
    name="rentals_hourly_features",
    view_name="bike_rentals_hourly",
    description="Recent rentals, the same hours a week ago, and each hour's calendar and weather.",
    entity=BIKE_SYSTEM,
    features=_FEATURES,
    sources=(Source(RENTALS, history=WEEK),),
    build=lambda bronze: with_rental_features(bronze["rentals"]),
    ttl=timedelta(hours=2),
    expectations=tuple(
        in_range(f.name, 0, severity="warn") for f in _FEATURES if f.name.startswith("rentals_")
    ),
)
