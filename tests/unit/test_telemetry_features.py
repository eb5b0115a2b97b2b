"""The telemetry feature table on small hand-worked frames: window edges, gaps, nulls, lag,
slope, min/max, machines kept apart, and the blocks the transform cuts history into."""

from __future__ import annotations

import math
import random
import statistics
from datetime import datetime, timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_approx_df_equality

from featurehouse.usecase import EVENT_TIMESTAMP
from featurehouse.usecases.predictive_maintenance import telemetry
from featurehouse.usecases.predictive_maintenance.telemetry import (
    BLOCK_HOURS,
    SENSORS,
    TELEMETRY_FEATURES,
    with_telemetry_features,
)
from tests.frames import PRECISION, TELEMETRY_SCHEMA, H, S, T


def _telemetry(spark, rows):
    """Rows of (machine_id, timestamp, volt); the other sensors are constant."""
    return spark.createDataFrame(
        [(m, ts, v, 450.0, 100.0, 40.0) for m, ts, v in rows], TELEMETRY_SCHEMA
    )


def _volt(spark, rows, *features):
    """The given volt features of `rows`, as {(machine, time): (feature values...)}."""
    frame = with_telemetry_features(_telemetry(spark, rows), sensors=("volt",))
    return {
        (r["machine_id"], r[EVENT_TIMESTAMP]): tuple(r[f] for f in features)
        for r in frame.collect()
    }


def _close(actual, expected):
    return all(
        (a is None and e is None)
        or (a is not None and e is not None and a == pytest.approx(e, rel=PRECISION, abs=1e-12))
        for a, e in zip(actual, expected, strict=True)
    )


# --- window boundaries ------------------------------------------------------------------


def test_reading_exactly_24h_back_is_out_and_one_second_later_is_in(spark):
    rows = [(1, T - 24 * H, 1000.0), (1, T - 24 * H + S, 10.0), (1, T, 30.0)]
    names = ["volt_mean_24h", "volt_std_24h", "volt_min_24h", "volt_max_24h", "volt_slope_24h"]

    latest = _volt(spark, rows, *names)[(1, T)]

    # {10 at T-24h+1s, 30 at T}: the 1000 exactly 24 h back would dominate every statistic.
    hours_apart = (24 * 3600 - 1) / 3600
    assert _close(latest, (20.0, math.sqrt(200), 10.0, 30.0, 20 / hours_apart))


@pytest.mark.parametrize(
    ("offset", "inside"),
    [
        pytest.param(-3 * H, False, id="exactly_3h_back_is_out"),
        pytest.param(-3 * H + S, True, id="3h_minus_1s_back_is_in"),
        pytest.param(-S, True, id="1s_back_is_in"),
    ],
)
def test_3h_window_is_open_at_3h_back(spark, offset, inside):
    rows = [(1, T + offset, 10.0), (1, T, 30.0)]

    mean, std = _volt(spark, rows, "volt_mean_3h", "volt_std_3h")[(1, T)]

    assert (mean, std) == ((20.0, pytest.approx(math.sqrt(200))) if inside else (30.0, None))


def test_gaps_shrink_the_window_to_the_readings_present(spark):
    # Hourly readings, then nothing for 5 hours: at T+7h the 3 h window holds T+7h only,
    # the 24 h window everything.
    rows = [(1, T, 1.0), (1, T + H, 2.0), (1, T + 2 * H, 3.0), (1, T + 7 * H, 10.0)]

    got = _volt(spark, rows, "volt_mean_3h", "volt_std_3h", "volt_mean_24h", "volt_max_24h")

    assert got[(1, T + 7 * H)] == (10.0, None, 4.0, 10.0)
    assert got[(1, T + 2 * H)] == (2.0, 1.0, 2.0, 3.0)


# --- nulls and machines -------------------------------------------------------------------


def test_null_readings_are_ignored_and_only_nulls_give_null(spark):
    rows = [(1, T, None), (1, T + H, 4.0), (1, T + 2 * H, None), (1, T + 3 * H, 8.0)]
    names = ["volt_mean_24h", "volt_std_24h", "volt_min_24h", "volt_max_24h", "volt_slope_24h"]

    got = _volt(spark, rows, *names)

    assert got[(1, T)] == (None, None, None, None, None)
    # One reading: a mean, min and max, but no spread or trend.
    assert got[(1, T + 2 * H)] == (4.0, None, 4.0, 4.0, None)
    # {4 at T+1h, 8 at T+3h}: std sqrt(8), slope 4 / 2 h.
    assert _close(got[(1, T + 3 * H)], (6.0, math.sqrt(8), 4.0, 8.0, 2.0))


def test_machines_are_kept_apart(spark):
    rows = [(1, T, 1.0), (1, T + H, 3.0), (2, T, 100.0), (2, T + H, 300.0), (2, T + 2 * H, None)]

    got = _volt(spark, rows, "volt_mean_24h", "volt_min_24h", "volt_lag_1h", "volt_slope_24h")

    assert got[(1, T + H)] == (2.0, 1.0, 1.0, 2.0)
    assert got[(2, T + H)] == (200.0, 100.0, 100.0, 200.0)
    assert got[(2, T + 2 * H)] == (200.0, 100.0, 300.0, 200.0)
    assert len(got) == 5


# --- lag ----------------------------------------------------------------------------------


def test_lag_is_the_reading_exactly_one_hour_earlier_or_null(spark):
    rows = [
        (1, T, 5.0),
        (1, T + H, 6.0),  # T is exactly 1 h earlier
        # T+2h missing
        (1, T + 3 * H - 30 * 60 * S, 7.0),  # off the hour: not exactly 1 h before T+3h
        (1, T + 3 * H, 8.0),
        (1, T + 4 * H, 9.0),
        (1, T + 5 * H, None),
        (1, T + 6 * H, 11.0),  # the reading 1 h earlier is null
    ]

    got = {ts: lag for (_, ts), (lag,) in _volt(spark, rows, "volt_lag_1h").items()}

    assert got == {
        T: None,
        T + H: 5.0,
        T + 3 * H - 30 * 60 * S: None,
        T + 3 * H: None,
        T + 4 * H: 8.0,
        T + 5 * H: 9.0,
        T + 6 * H: None,
    }


# --- slope, min and max -------------------------------------------------------------------


def test_slope_of_a_line_is_its_rate_per_hour_even_off_the_hour(spark):
    # volt = 100 - 2.5 per hour, at uneven times (including seconds off the hour).
    offsets = [timedelta(0), 40 * 60 * S, 3 * H, 3 * H + 17 * S, 9 * H, 23 * H + 59 * 60 * S]
    rows = [(1, T + d, 100 - 2.5 * d.total_seconds() / 3600) for d in offsets]

    got = _volt(spark, rows, "volt_slope_24h")

    assert got[(1, T)] == (None,)  # a single reading has no trend
    slopes = [got[(1, T + d)][0] for d in offsets[1:]]
    assert slopes == pytest.approx([-2.5] * 5, rel=PRECISION)


def test_slope_matches_least_squares_on_noisy_points(spark):
    points = [(0, 1.0), (1, 3.0), (2, 2.0), (4, 6.0)]  # (hours after T, volt)
    rows = [(1, T + h * H, v) for h, v in points]
    xs, ys = [h for h, _ in points], [v for _, v in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    expected = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum(
        (x - mean_x) ** 2 for x in xs
    )

    (slope,) = _volt(spark, rows, "volt_slope_24h")[(1, T + 4 * H)]

    assert slope == pytest.approx(expected, rel=PRECISION)  # 17/14 per hour


def test_min_and_max_over_24h(spark):
    rows = [(1, T + h * H, v) for h, v in enumerate([5.0, -1.0, 7.0, 3.0])] + [
        (1, T + 25 * H, 4.0)  # exactly 24 h after the -1 at T+1h: -1 and 5 are out, 7 is in
    ]

    got = _volt(spark, rows, "volt_min_24h", "volt_max_24h")

    assert got[(1, T + 3 * H)] == (-1.0, 7.0)
    assert got[(1, T + 25 * H)] == (3.0, 7.0)


# --- against a brute-force reference, across block boundaries ---------------------------


def _reference(rows):
    """Every volt feature by definition, reading by reading (rows: machine, time, volt)."""
    out = {}
    for m, t, _ in rows:
        mine = [(ts, v) for mm, ts, v in rows if mm == m]

        def window(hours, mine=mine, t=t):
            return [(ts, v) for ts, v in mine if t - hours * H < ts <= t and v is not None]

        feats = {}
        for hours in (3, 24):
            values = [v for _, v in window(hours)]
            feats[f"volt_mean_{hours}h"] = statistics.fmean(values) if values else None
            feats[f"volt_std_{hours}h"] = statistics.stdev(values) if len(values) > 1 else None
        day = window(24)
        feats["volt_min_24h"] = min((v for _, v in day), default=None)
        feats["volt_max_24h"] = max((v for _, v in day), default=None)
        xs = [(ts - t).total_seconds() / 3600 for ts, _ in day]
        ys = [v for _, v in day]
        feats["volt_slope_24h"] = (
            statistics.linear_regression(xs, ys).slope if len(set(xs)) > 1 else None
        )
        feats["volt_lag_1h"] = next((v for ts, v in mine if ts == t - H), None)
        out[(m, t)] = feats
    return out


def _block_start():
    """The start of the block of BLOCK_HOURS (from the epoch) that holds T."""
    epoch = datetime(1970, 1, 1)
    block = timedelta(hours=BLOCK_HOURS)
    return epoch + ((T - epoch) // block) * block


def assert_matches_reference(spark, rows):
    """The transform's volt features of `rows` equal the brute-force reference's."""
    expected_by_key = _reference(rows)
    names = list(next(iter(expected_by_key.values())))
    expected = spark.createDataFrame(
        [(m, t, *(f[n] for n in names)) for (m, t), f in expected_by_key.items()],
        "machine_id bigint, event_timestamp timestamp, " + ", ".join(f"{n} double" for n in names),
    )

    actual = with_telemetry_features(_telemetry(spark, rows), sensors=("volt",))

    assert actual.count() == len(rows)  # look-back copies are not output
    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


def test_matches_brute_force_reference_across_a_block_boundary(spark):
    # The transform cuts each machine's history into blocks of BLOCK_HOURS (from the epoch);
    # readings around a block start must see their look-back from the block before.
    edge = _block_start()
    rng = random.Random(3)
    rows = []
    for machine in (1, 2):
        for h in range(-40, 40):
            if rng.random() < 0.1:
                continue  # a gap
            ts = edge + h * H + (rng.randrange(1, 3600) * S if rng.random() < 0.1 else S * 0)
            # A large level with a small spread: precision depends on centring the values.
            volt = None if rng.random() < 0.1 else 1e6 + machine + rng.gauss(0, 0.01)
            rows.append((machine, ts, volt))

    assert_matches_reference(spark, rows)


def test_a_dense_machine_cut_into_short_blocks_matches_the_reference(spark, monkeypatch):
    # Readings every 30 minutes for 16 days around a block start, with a block limit of 100
    # readings: the machine's blocks are halved twice (180 h), so its windows cross the
    # starts of short blocks as well as of whole ones.
    monkeypatch.setattr(telemetry, "MAX_BLOCK_ROWS", 100)
    edge = _block_start()
    rng = random.Random(5)
    minutes = timedelta(minutes=30)
    rows = [
        (7, edge + i * minutes, None if rng.random() < 0.05 else 500.0 + rng.gauss(0, 1))
        for i in range(-2 * 190, 2 * 190)
    ]

    assert_matches_reference(spark, rows)


def test_long_history_keeps_precision_of_slope_and_std(spark):
    # Three years of hourly readings on a line: running sums over the whole history would
    # lose the slope's digits; per-block sums must not.
    start = datetime(2021, 1, 1)
    hours = 3 * 365 * 24
    telemetry = (
        spark.range(hours)
        .select(
            F.lit(1).cast("bigint").alias("machine_id"),
            (F.lit(start) + F.make_dt_interval(hours=F.col("id"))).alias("timestamp"),
            (F.lit(200.0) + F.col("id") * 0.001).alias("volt"),
            *(F.lit(1.0).alias(s) for s in SENSORS[1:]),
        )
        .where(F.col("id") % 97 != 0)  # some gaps
    )

    stats = (
        with_telemetry_features(telemetry, sensors=("volt",))
        .where(F.col(EVENT_TIMESTAMP) >= F.lit(start + 2 * H))  # windows of two readings or more
        .agg(
            F.max(F.abs(F.col("volt_slope_24h") - 0.001)).alias("slope_error"),
            F.min("volt_std_3h").alias("min_std"),
            F.count("*").alias("rows"),
        )
        .first()
    )

    assert stats["rows"] == hours - 2 - (hours - 1) // 97 - 1 + 1
    assert stats["slope_error"] < 0.001 * PRECISION
    assert stats["min_std"] > 0


def test_a_stuck_sensor_has_no_spread_and_no_trend_exactly(spark):
    # Varying readings, then the same reading for 30 h: differences of running sums would
    # leave ~1e-5 of rounding in the std and ~1e-12 in the slope; a stuck sensor is worth
    # an exact 0 (an alert may test for it).
    rng = random.Random(2)
    varying = [(1, T + h * H, 450 + rng.gauss(0, 50)) for h in range(200)]
    stuck = [(1, T + (200 + h) * H, 463.123456789) for h in range(30)]

    got = _volt(spark, varying + stuck, "volt_std_3h", "volt_std_24h", "volt_slope_24h")

    assert all(got[(1, T + (200 + h) * H)][0] == 0.0 for h in range(2, 30))
    assert all(got[(1, T + (200 + h) * H)][1:] == (0.0, 0.0) for h in range(23, 30))
    assert got[(1, T + 222 * H)][1] > 0  # the window still holds a varying reading


# --- the declaration ------------------------------------------------------------------------


def test_build_gives_declared_columns_with_tags_and_look_back(spark):
    frame = TELEMETRY_FEATURES.build({"telemetry": _telemetry(spark, [(1, T, 1.0)])})

    assert frame.columns == TELEMETRY_FEATURES.columns
    assert len(TELEMETRY_FEATURES.features) == 32
    tags = {f.name: f.tags for f in TELEMETRY_FEATURES.features}
    assert tags["volt_max_24h"] == {
        "source": "telemetry",
        "sensor": "volt",
        "stat": "max",
        "window": "24h",
    }
    (source,) = TELEMETRY_FEATURES.sources
    assert (source.name, source.history) == ("telemetry", 24 * H)
    names = {e.name for e in TELEMETRY_FEATURES.expectations}
    assert "vibration_std_24h in [0, inf]" in names
    assert not any("slope" in n for n in names)


def test_std_below_zero_breaks_an_expectation_and_a_negative_slope_does_not(spark):
    from featurehouse.features.quality import with_reasons

    cols = TELEMETRY_FEATURES.feature_names
    row = dict.fromkeys(cols, 1.0) | {"volt_std_3h": -0.5, "volt_slope_24h": -3.0}
    frame = spark.createDataFrame(
        [tuple(row[c] for c in cols)], ", ".join(f"{c} double" for c in cols)
    )

    (checked,) = with_reasons(frame, TELEMETRY_FEATURES.expectations).collect()

    assert checked["_dq_reason"] == "volt_std_3h in [0, inf]"
