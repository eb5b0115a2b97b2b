"""Demand-forecasting transforms on hand-worked frames: lags and windows per (store, item),
the calendar ahead of a day, the weather of the store's region."""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality

from featurehouse.usecases.demand_forecasting import USE_CASE
from featurehouse.usecases.demand_forecasting.features import (
    DAILY_FEATURES,
    daily_features,
    with_calendar,
    with_demand_history,
    with_weather,
)
from tests.frames import D

DAY0 = datetime(2024, 3, 4)  # a Monday
SALES_SCHEMA = (
    "date timestamp, store_id bigint, item_id bigint, units bigint, price double,"
    " on_promotion boolean, stock_out boolean"
)


def sales_rows(store: int, item: int, units: list[int | None], *, stock_out_days=()) -> list:
    """One row per day from DAY0; a None day has no row (a gap)."""
    return [
        (DAY0 + d * D, store, item, u, 2.5, d == 3, d in stock_out_days)
        for d, u in enumerate(units)
        if u is not None
    ]


@pytest.fixture(scope="module")
def history(spark):
    units = [1, 2, 3, 4, 5, 6, 7, 8, None, 10, 11, 12, 13, 14, 15, 16]  # day 8 missing
    rows = sales_rows(1, 1, units, stock_out_days=(5, 6))
    rows += sales_rows(1, 2, [100] * 16)  # another item: its units never leak into item 1
    frame = with_demand_history(spark.createDataFrame(rows, SALES_SCHEMA))
    return {
        (r["store_id"], r["item_id"], (r["event_timestamp"] - DAY0).days): r
        for r in frame.collect()
    }


def test_lags_are_the_units_exactly_that_many_days_before(history):
    assert history[(1, 1, 7)]["units_lag_7d"] == 1.0
    assert history[(1, 1, 14)]["units_lag_7d"] == 8.0
    assert history[(1, 1, 14)]["units_lag_14d"] == 1.0
    assert history[(1, 1, 14)]["units_lag_28d"] is None  # not that much history
    assert history[(1, 1, 9)]["units_lag_7d"] == 3.0


def test_a_gap_day_leaves_the_lag_that_would_read_it_null(history):
    # Day 8 has no row: day 15's 7-day lag finds nothing, and borrows no neighbour.
    assert (1, 1, 8) not in history
    assert history[(1, 1, 15)]["units_lag_7d"] is None
    assert history[(1, 1, 16 - 1)]["units_lag_14d"] == 2.0


def test_windows_end_at_the_day_and_exclude_the_day_a_week_before(history):
    # (d - 7d, d] at day 7: days 1..7 = 2+3+4+5+6+7+8 = 35
    row = history[(1, 1, 7)]
    assert row["units_sum_7d"] == 35.0
    assert row["units_mean_7d"] == pytest.approx(5.0)
    # At day 10 the window (day 3, day 10] holds days 4..7, 9, 10 (day 8 is a gap): 6 days.
    assert history[(1, 1, 10)]["units_sum_7d"] == 5 + 6 + 7 + 8 + 10 + 11
    assert history[(1, 1, 10)]["units_mean_7d"] == pytest.approx((5 + 6 + 7 + 8 + 10 + 11) / 6)
    assert history[(1, 2, 10)]["units_sum_7d"] == 700.0  # the other item's own window


def test_stock_out_days_promotion_price_and_calendar_position(history):
    assert history[(1, 1, 6)]["stock_out_days_7d"] == 2
    assert history[(1, 1, 13)]["stock_out_days_7d"] == 0  # (day 6, day 13]: day 6 is out
    assert history[(1, 1, 3)]["on_promotion"] == 1 and history[(1, 1, 4)]["on_promotion"] == 0
    assert history[(1, 1, 5)]["stock_out"] == 1
    assert history[(1, 1, 0)]["day_of_week"] == 2  # Monday (1 = Sunday)
    assert history[(1, 1, 0)]["month"] == 3
    assert history[(1, 1, 0)]["price"] == 2.5


def test_holidays_mark_their_day_and_count_in_the_week_before(spark):
    days = spark.createDataFrame([(DAY0 + d * D,) for d in range(10)], "event_timestamp timestamp")
    holidays = spark.createDataFrame(
        [(DAY0 + 3 * D, "a"), (DAY0 + 10 * D, "b")], "date timestamp, holiday string"
    )
    expected = spark.createDataFrame(
        [
            # (d, d + 7d]: day 3 counts from days 0..2 (day 3 itself is the day, not ahead);
            # day 10, exactly 7 days after day 3, counts for day 3.
            (DAY0 + d * D, int(d == 3), int(d < 3) + int(3 <= d < 10))
            for d in range(10)
        ],
        "event_timestamp timestamp, is_holiday bigint, holidays_next_7d bigint",
    )

    actual = with_calendar(days, holidays)

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_weather_comes_from_the_stores_region_and_is_null_when_unreported(spark):
    days = spark.createDataFrame(
        [(1, 1, DAY0), (2, 1, DAY0), (1, 1, DAY0 + D)],
        "store_id bigint, item_id bigint, event_timestamp timestamp",
    )
    stores = spark.createDataFrame([(1, "north"), (2, "south")], "store_id bigint, region string")
    weather = spark.createDataFrame(
        [(DAY0, "north", 20.0, 0.0), (DAY0, "south", 30.0, 5.5)],
        "date timestamp, region string, temperature_c double, precipitation_mm double",
    )
    expected = spark.createDataFrame(
        [(1, 1, DAY0, 20.0, 0.0), (2, 1, DAY0, 30.0, 5.5), (1, 1, DAY0 + D, None, None)],
        "store_id bigint, item_id bigint, event_timestamp timestamp,"
        " temperature_c double, precipitation_mm double",
    )

    actual = with_weather(days, stores, weather).select(*expected.columns)

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_the_daily_table_builds_its_declared_columns(spark):
    bronze = {
        "sales": spark.createDataFrame(sales_rows(1, 1, [1, 2, 3]), SALES_SCHEMA),
        "stores": spark.createDataFrame([(1, "north")], "store_id bigint, region string"),
        "weather": spark.createDataFrame(
            [], "date timestamp, region string, temperature_c double, precipitation_mm double"
        ),
        "holidays": spark.createDataFrame([], "date timestamp, holiday string"),
    }

    frame = daily_features(bronze)

    assert set(frame.columns) == set(DAILY_FEATURES.columns)
    assert frame.count() == 3
    assert USE_CASE.task.baseline in DAILY_FEATURES.feature_names
