"""Time windows over an entity's rows, on hand-worked frames: edges, gaps, composite keys."""

from __future__ import annotations

from datetime import timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from featurehouse.errors import DeclarationError
from featurehouse.features.windows import ahead, at_lag, feature_name, trailing
from tests.frames import US, D, T

KEYS = ["store_id", "item_id"]
SCHEMA = "store_id bigint, item_id bigint, day timestamp, units double"


@pytest.fixture(scope="module")
def sales(spark):
    rows = [(1, 1, T + d * D, float(units)) for d, units in [(0, 1), (1, 2), (2, 4), (9, 8)]]
    rows += [(1, 2, T + D, 100.0)]  # another item of the same store: never in item 1's windows
    rows += [(2, 1, T + D, 1000.0)]  # the same item in another store: neither
    rows += [(1, 1, T + 3 * D - US, None)]  # a null reading counts in no statistic
    return spark.createDataFrame(rows, SCHEMA)


def with_window(df, column: str, expr):
    return df.withColumn(column, expr).select(*KEYS, "day", column)


def test_trailing_window_holds_the_last_span_and_excludes_its_far_edge(spark, sales):
    # (t - 7d, t]: at day 9 the row of day 2 is exactly 7 days back, so it is out.
    actual = with_window(sales, "sum_7d", F.sum("units").over(trailing(KEYS, "day", 7 * D)))
    expected = spark.createDataFrame(
        [
            (1, 1, T, 1.0),
            (1, 1, T + D, 3.0),
            (1, 1, T + 2 * D, 7.0),
            (1, 1, T + 3 * D - US, 7.0),  # the null row itself adds nothing
            (1, 1, T + 9 * D, 8.0),
            (1, 2, T + D, 100.0),
            (2, 1, T + D, 1000.0),
        ],
        "store_id bigint, item_id bigint, day timestamp, sum_7d double",
    )

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_trailing_window_with_a_skip_looks_at_the_same_span_earlier(spark, sales):
    # (t - 2d - 1d, t - 1d]: at day 2 that is (day -1, day 1]: days 0 and 1.
    window = trailing(KEYS, "day", 2 * D, skip=D)
    rows = with_window(sales, "earlier", F.sum("units").over(window)).collect()
    by_day = {(r["store_id"], r["item_id"], r["day"]): r["earlier"] for r in rows}

    assert by_day[(1, 1, T + 2 * D)] == 3.0
    assert by_day[(1, 1, T + D)] == 1.0  # (day -2, day 0]
    assert by_day[(1, 1, T)] is None  # nothing that early
    assert by_day[(1, 1, T + 9 * D)] is None  # days 6 and 7 are a gap


def test_a_lag_is_the_row_exactly_that_long_before_or_null_in_a_gap(spark, sales):
    actual = with_window(sales, "lag_1d", F.max("units").over(at_lag(KEYS, "day", D)))
    lags = {(r["store_id"], r["item_id"], r["day"]): r["lag_1d"] for r in actual.collect()}

    assert lags[(1, 1, T + D)] == 1.0
    assert lags[(1, 1, T + 2 * D)] == 2.0
    assert lags[(1, 1, T + 9 * D)] is None  # day 8 has no row: no neighbour is borrowed
    assert lags[(1, 1, T + 3 * D - US)] is None  # off the grid: nothing exactly a day before
    assert lags[(1, 2, T + D)] is None and lags[(2, 1, T + D)] is None  # their own keys only


def test_a_window_ahead_holds_the_next_span_and_includes_its_far_edge(spark, sales):
    window = ahead(KEYS, "day", 7 * D)
    actual = with_window(sales, "next_7d", F.count("units").over(window))
    counts = {(r["store_id"], r["item_id"], r["day"]): r["next_7d"] for r in actual.collect()}

    assert counts[(1, 1, T)] == 2  # days 1 and 2; the null row is not counted
    assert counts[(1, 1, T + 2 * D)] == 1  # day 9, exactly 7 days ahead, is in
    assert counts[(1, 1, T + 9 * D)] == 0


def test_feature_names_carry_the_window_in_the_use_cases_unit():
    assert feature_name("units", "mean", 7 * D, "d") == "units_mean_7d"
    assert feature_name("rentals", "lag", timedelta(days=7), "h") == "rentals_lag_168h"
    with pytest.raises(DeclarationError, match="not a whole number of d"):
        feature_name("units", "mean", timedelta(hours=36), "d")
