"""Daily demand features per (store, item), the classical forecasters' forecasts, demand
segments, and the store and item attributes.

A row at date d describes the day once it has closed: its sales, price and promotion,
its weather, the calendar around it, and the demand history up to and including d. The
forecast made from it is for the days after d.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from featurehouse.features.forecasts import (
    ForecastSettings,
    SeriesForecaster,
    holt_winters,
    seasonal_arima,
    with_series_forecasts,
)
from featurehouse.features.quality import in_range
from featurehouse.features.segments import with_segments
from featurehouse.features.windows import ahead, at_lag, feature_name, trailing
from featurehouse.usecase import EVENT_TIMESTAMP, Feature, FeatureTable, Segmentation, Source
from featurehouse.usecases.demand_forecasting.datasets import (
    HOLIDAYS,
    ITEM_ID,
    ITEMS,
    SALES,
    STORE_ID,
    STORE_ITEM,
    STORES,
    WEATHER,
)

KEYS = (STORE_ID, ITEM_ID)
UNIT = "d"
DAY = timedelta(days=1)
LAG_DAYS = (7, 14, 28)
MEAN_DAYS = (7, 28)
STD_DAYS = 28
SUM_DAYS = 7  # the same days last week: the seasonal-naive forecast of the next 7 days
CALENDAR_AHEAD_DAYS = 7
HISTORY = timedelta(days=max(*LAG_DAYS, *MEAN_DAYS, STD_DAYS))
# Attributes are a snapshot with no history: they hold from the start of time.
ATTRIBUTES_VALID_FROM = datetime(1970, 1, 1)


def _name(stat: str, days: int) -> str:
    return feature_name("units", stat, days * DAY, UNIT)


SUM_7D = _name("sum", SUM_DAYS)


def with_demand_history(sales: DataFrame) -> DataFrame:
    """Per (store, item, day): lags, rolling means, spread and sum of units, stock-out days,
    and the day's own price, promotion, stock-out and calendar position."""
    date = "date"
    units = F.col("units").cast("double")
    columns = {
        _name("lag", days): F.max(units).over(at_lag(KEYS, date, days * DAY)) for days in LAG_DAYS
    }
    columns |= {
        _name("mean", days): F.avg(units).over(trailing(KEYS, date, days * DAY))
        for days in MEAN_DAYS
    }
    columns[_name("std", STD_DAYS)] = F.stddev_samp(units).over(
        trailing(KEYS, date, STD_DAYS * DAY)
    )
    columns[SUM_7D] = F.sum(units).over(trailing(KEYS, date, SUM_DAYS * DAY))
    columns["stock_out_days_7d"] = F.count_if(F.col("stock_out")).over(
        trailing(KEYS, date, 7 * DAY)
    )
    return sales.select(
        *[F.col(k).cast("bigint").alias(k) for k in KEYS],
        F.col(date).alias(EVENT_TIMESTAMP),
        *[expr.alias(name) for name, expr in columns.items()],
        F.col("price"),
        F.col("on_promotion").cast("bigint").alias("on_promotion"),
        F.col("stock_out").cast("bigint").alias("stock_out"),
        F.dayofweek(date).cast("bigint").alias("day_of_week"),
        F.month(date).cast("bigint").alias("month"),
    )


def with_calendar(days: DataFrame, holidays: DataFrame) -> DataFrame:
    """Per day in `days` (a frame with `event_timestamp`): whether it is a holiday, and how
    many holidays fall in the next week (the calendar is known in advance)."""
    marks = days.select(EVENT_TIMESTAMP).distinct().withColumn("_holiday", F.lit(0))
    marks = marks.unionByName(
        holidays.select(F.col("date").alias(EVENT_TIMESTAMP), F.lit(1).alias("_holiday"))
    )
    calendar = marks.groupBy(EVENT_TIMESTAMP).agg(F.max("_holiday").alias("is_holiday"))
    next_week = ahead([], EVENT_TIMESTAMP, CALENDAR_AHEAD_DAYS * DAY)
    calendar = calendar.withColumn(
        "holidays_next_7d", F.coalesce(F.sum("is_holiday").over(next_week), F.lit(0))
    )
    return days.join(calendar, EVENT_TIMESTAMP, "left").withColumns(
        {c: F.col(c).cast("bigint") for c in ("is_holiday", "holidays_next_7d")}
    )


def with_weather(days: DataFrame, stores: DataFrame, weather: DataFrame) -> DataFrame:
    """The day's weather in the store's region (null where none was reported)."""
    regions = stores.select(F.col(STORE_ID).cast("bigint").alias(STORE_ID), "region")
    daily = weather.select(
        "region", F.col("date").alias(EVENT_TIMESTAMP), "temperature_c", "precipitation_mm"
    )
    return (
        days.join(F.broadcast(regions), STORE_ID, "left")
        .join(daily, ["region", EVENT_TIMESTAMP], "left")
        .drop("region")
    )


def daily_features(bronze: dict[str, DataFrame]) -> DataFrame:
    history = with_demand_history(bronze["sales"])
    return with_weather(
        with_calendar(history, bronze["holidays"]), bronze["stores"], bronze["weather"]
    )


def _daily_features() -> tuple[Feature, ...]:
    over = "(d - {n}d, d]"
    lags = [
        Feature(_name("lag", n), "double", f"Units sold exactly {n} days before d; null if unknown",
                {"stat": "lag", "window": f"{n}d"})
        for n in LAG_DAYS
    ]  # fmt: skip
    means = [
        Feature(_name("mean", n), "double", f"Mean daily units over {over.format(n=n)}",
                {"stat": "mean", "window": f"{n}d"})
        for n in MEAN_DAYS
    ]  # fmt: skip
    return (
        *lags,
        *means,
        Feature(
            _name("std", STD_DAYS),
            "double",
            f"Sample standard deviation of daily units over {over.format(n=STD_DAYS)}",
            {"stat": "std", "window": f"{STD_DAYS}d"},
        ),
        Feature(
            SUM_7D,
            "double",
            f"Units sold over {over.format(n=SUM_DAYS)}: the seasonal-naive forecast of the"
            " next 7 days",
            {"stat": "sum", "window": f"{SUM_DAYS}d"},
        ),
        Feature("stock_out_days_7d", "bigint", "Days out of stock over (d - 7d, d]"),
        Feature("price", "double", "Selling price on day d"),
        Feature("on_promotion", "bigint", "1 if the item was on promotion on day d"),
        Feature("stock_out", "bigint", "1 if the item was out of stock on day d"),
        Feature("day_of_week", "bigint", "Day of the week of d (1 = Sunday .. 7 = Saturday)"),
        Feature("month", "bigint", "Month of d (1..12)"),
        Feature("is_holiday", "bigint", "1 if d is a public holiday"),
        Feature("holidays_next_7d", "bigint", "Public holidays in (d, d + 7d]"),
        Feature("temperature_c", "double", "Mean temperature on d in the store's region, °C"),
        Feature("precipitation_mm", "double", "Precipitation on d in the store's region, mm"),
    )


_DAILY = _daily_features()

DAILY_FEATURES = FeatureTable(
    name="store_item_daily_features",
    view_name="store_item_daily",
    description="Daily demand history, price, promotion, calendar and weather per store and item.",
    entity=STORE_ITEM,
    features=_DAILY,
    sources=(
        Source(SALES, history=HISTORY),
        Source(STORES),
        Source(WEATHER),
        Source(HOLIDAYS, lead=CALENDAR_AHEAD_DAYS * DAY),
    ),
    build=daily_features,
    ttl=timedelta(days=2),
    expectations=tuple(
        in_range(f.name, 0, severity="warn")
        for f in _DAILY
        if f.name not in ("temperature_c", "precipitation_mm")
    ),
)


# Per (store, item): Holt-Winters and the seasonal ARIMA, refitted twice a year, each run
# forward over every day. Their forecasts are candidates of their own (and inputs of the
# boosted trees).
HOLT_WINTERS_7D = "units_holt_winters_next_7d"
SEASONAL_ARIMA_7D = "units_seasonal_arima_next_7d"
FORECASTERS = (
    SeriesForecaster(HOLT_WINTERS_7D, holt_winters),
    SeriesForecaster(SEASONAL_ARIMA_7D, seasonal_arima),
)
FORECASTS = ForecastSettings(horizon=7, season=7, refit_every=182, min_history=56)


def series_forecasts(sales: DataFrame) -> DataFrame:
    daily = sales.select(
        *[F.col(k).cast("bigint").alias(k) for k in KEYS],
        F.col("date").alias(EVENT_TIMESTAMP),
        "units",
    )
    return with_series_forecasts(daily, KEYS, "units", FORECASTERS, FORECASTS)


def _forecast_feature(name: str, model: str, tag: str) -> Feature:
    return Feature(
        name,
        "double",
        f"{model} forecast of the units sold over (d, d + 7d], made at d: parameters fitted"
        f" every {FORECASTS.refit_every} days on the days before, run forward to d; null"
        f" with less than {FORECASTS.min_history} days of history or a failed fit",
        {"model": tag},
    )


SERIES_FORECASTS = FeatureTable(
    name="store_item_forecasts",
    view_name="store_item_forecasts",
    description="Classical per-(store, item) forecasts of the next 7 days' units.",
    entity=STORE_ITEM,
    features=(
        _forecast_feature(HOLT_WINTERS_7D, "Additive Holt-Winters (weekly season)", "holt_winters"),
        _forecast_feature(SEASONAL_ARIMA_7D, "Seasonal ARIMA (0,1,1)(0,1,1)7", "seasonal_arima"),
    ),
    # The fits read all of an entity's history.
    sources=(Source(SALES, history=None),),
    build=lambda bronze: series_forecasts(bronze["sales"]),
    ttl=timedelta(days=2),
)


# Monthly, every (store, item) is put in one of four demand segments by k-means over its
# profile of the last 13 weeks: volume, variability and weekend share.
PROFILE_DAYS = 91
PROFILE_MIN_DAYS = 56
SEGMENT = "demand_segment"
SEGMENTATION = Segmentation(
    profile=("units_mean_91d", "units_cv_91d", "weekend_share_91d"), column=SEGMENT, clusters=4
)


def store_item_profiles(sales: DataFrame) -> DataFrame:
    """Per (store, item), on the first day of each month: its demand profile over the
    last PROFILE_DAYS days (null with fewer than PROFILE_MIN_DAYS days of sales)."""
    date = "date"
    units = F.col("units").cast("double")
    window = trailing(KEYS, date, PROFILE_DAYS * DAY)
    weekend = F.when(F.dayofweek(date).isin(1, 7), units).otherwise(0.0)
    enough = F.count(units).over(window) >= PROFILE_MIN_DAYS
    mean = F.avg(units).over(window)
    profile = {
        "units_mean_91d": mean,
        "units_cv_91d": F.stddev_samp(units).over(window) / mean,
        "weekend_share_91d": F.sum(weekend).over(window) / F.sum(units).over(window),
    }
    return sales.select(
        *[F.col(k).cast("bigint").alias(k) for k in KEYS],
        F.col(date).alias(EVENT_TIMESTAMP),
        *[F.when(enough, expr).alias(name) for name, expr in profile.items()],
    ).where(F.dayofmonth(EVENT_TIMESTAMP) == 1)


DEMAND_SEGMENTS = FeatureTable(
    name="store_item_segments",
    view_name="store_item_segments",
    description="Monthly demand profile and k-means demand segment per store and item.",
    entity=STORE_ITEM,
    features=(
        Feature("units_mean_91d", "double", "Mean daily units over the 91 days up to d"),
        Feature("units_cv_91d", "double", "Coefficient of variation of daily units over 91 days"),
        Feature("weekend_share_91d", "double", "Share of the 91 days' units sold on weekends"),
        Feature(
            SEGMENT,
            "bigint",
            f"Demand segment at d (0 = lowest volume .. {SEGMENTATION.clusters - 1}): k-means"
            " over every store and item's profile at d",
        ),
    ),
    sources=(Source(SALES, history=PROFILE_DAYS * DAY),),
    build=lambda bronze: with_segments(store_item_profiles(bronze["sales"]), KEYS, SEGMENTATION),
    ttl=timedelta(days=32),
    segmentation=SEGMENTATION,
)


def with_store_attributes(stores: DataFrame) -> DataFrame:
    return stores.select(
        F.col(STORE_ID).cast("bigint").alias(STORE_ID),
        F.lit(ATTRIBUTES_VALID_FROM).cast("timestamp").alias(EVENT_TIMESTAMP),
        "region",
        "store_type",
        F.col("size_sqm").cast("bigint").alias("size_sqm"),
    )


def with_item_attributes(items: DataFrame) -> DataFrame:
    return items.select(
        F.col(ITEM_ID).cast("bigint").alias(ITEM_ID),
        F.lit(ATTRIBUTES_VALID_FROM).cast("timestamp").alias(EVENT_TIMESTAMP),
        "category",
        F.col("base_price").cast("double").alias("base_price"),
    )


STORE_ATTRIBUTES = FeatureTable(
    name="store_attributes",
    view_name="store_attributes",
    description="Static attributes of each store.",
    entity=STORE_ITEM,
    keys=(STORE_ID,),
    features=(
        Feature("region", "string", "Region of the store"),
        Feature("store_type", "string", "Format: hyper, super or convenience"),
        Feature("size_sqm", "bigint", "Floor space in square metres"),
    ),
    sources=(Source(STORES),),
    build=lambda bronze: with_store_attributes(bronze["stores"]),
    ttl=None,
)
ITEM_ATTRIBUTES = FeatureTable(
    name="item_attributes",
    view_name="item_attributes",
    description="Static attributes of each item.",
    entity=STORE_ITEM,
    keys=(ITEM_ID,),
    features=(
        Feature("category", "string", "Product category"),
        Feature("base_price", "double", "List price"),
    ),
    sources=(Source(ITEMS),),
    build=lambda bronze: with_item_attributes(bronze["items"]),
    ttl=None,
)
