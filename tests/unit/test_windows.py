"""Time windows over an entity's rows, on hand-worked frames: edges, gaps, composite keys."""

from __future__ import annotations

from datetime import timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from featurehouse.errors import DeclarationError
from featurehouse.features.windows import ahead, at_lag, feature_name, in_time_blocks, trailing
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


# --- blocks of time within a key ------------------------------------------------------------


def test_a_dense_key_is_cut_into_shorter_blocks_and_each_row_is_its_own_block_once(spark):
    # Blocks of 40 us, look-back 5 us: key 1 has one row per 4 us (10 per block, over
    # max_rows), so its blocks halve once (to 20 us; 10 us would be under 4 look-backs);
    # key 2 has one row per 16 us and keeps whole blocks.
    rows = [(1, t) for t in range(0, 80, 4)] + [(2, t) for t in range(0, 80, 16)]
    frame = spark.createDataFrame(rows, "k bigint, t_us bigint")

    tagged = in_time_blocks(frame, ["k"], "t_us", block_us=40, look_back_us=5, max_rows=5)
    got = sorted((r["k"], r["t_us"], r["_block"], r["_own"]) for r in tagged.collect())

    own = [(k, t, b) for k, t, b, is_own in got if is_own]
    copies = [(k, t, b) for k, t, b, is_own in got if not is_own]
    assert own == [(1, t, t // 20 * 20) for t in range(0, 80, 4)] + [
        (2, t, t // 40 * 40) for t in range(0, 80, 16)
    ]
    # A copy of each row within 5 us before the next block's start (t + 5 >= start), even
    # when that block is empty so far.
    assert copies == [(1, 16, 20), (1, 36, 40), (1, 56, 60), (1, 76, 80)]
    assert len(got) == len(rows) + len(copies)


def test_blocks_refuse_a_look_back_longer_than_a_quarter_block(spark):
    frame = spark.createDataFrame([(1, 0)], "k bigint, t_us bigint")

    with pytest.raises(ValueError, match="does not fit 4 times in a block of 40 us"):
        in_time_blocks(frame, ["k"], "t_us", block_us=40, look_back_us=11, max_rows=5)
