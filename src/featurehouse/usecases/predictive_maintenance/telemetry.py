"""Rolling statistics of the telemetry: how each sensor behaves over the last hours.

For each machine and reading time t, over trailing windows of time (t - N h, t] (time, not
rows: readings can be missing or off the hour):

- `{sensor}_mean_{N}h`, `{sensor}_std_{N}h` (sample std) for N in WINDOWS_HOURS (3, 24)
- `{sensor}_min_24h`, `{sensor}_max_24h`
- `{sensor}_slope_24h`: least-squares slope of the reading against time, in units per hour
- `{sensor}_lag_1h`: the reading exactly one hour before t

How, and why it is fast: Spark evaluates an aggregate over a sliding frame (t - N, t] afresh
for every row, so its cost grows with rows x rows per window, while a frame that starts at
UNBOUNDED PRECEDING is updated incrementally, one row at a time. Over windows longer than
SHORT_WINDOW_HOURS every statistic that is a function of sums (count, mean, std, slope)
therefore comes from running sums: the sum over (t - N, t] is the running sum up to t minus
the running sum up to t - N. Running sums grow with the history and would lose the small
differences we need, so the history is cut into blocks of BLOCK_HOURS per machine (one
window partition each, with the look-back before the block copied in, so that windows at
its start are whole), time is measured from the block start, and each sensor is centred on
a reading of its block. A machine that reads far more often than hourly has its blocks
halved (`in_time_blocks`), so one hot machine is spread over many tasks, not carried by one.

What stays on sliding frames: min and max (not differences of running values), and the mean
and std of short windows. A short window holds ~3 readings, so its sliding frame is cheap,
and it is where two nearly equal readings make a difference of running sums cancel (a std
of 1e-5 off by 20%). A long window whose readings are all equal (a stuck sensor) has a std
and slope of exactly 0: its min equals its max.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from featurehouse.features.quality import in_range
from featurehouse.features.windows import in_time_blocks
from featurehouse.usecase import (
    EVENT_TIMESTAMP,
    Feature,
    FeatureTable,
    Source,
)
from featurehouse.usecases.predictive_maintenance.datasets import MACHINE, MACHINE_ID, TELEMETRY

SENSORS = ("volt", "rotate", "pressure", "vibration")
WINDOWS_HOURS = (3, 24)  # mean and std
RANGE_HOURS = 24  # min, max and slope
LAG_HOURS = 1
SHORT_WINDOW_HOURS = 3  # mean and std over windows up to this long use a sliding frame

HOUR_US = 3_600_000_000
# Long enough that the copied look-back (24 h) adds few rows (~3%), short enough that the
# running sums inside a block stay exact: with hourly readings and time in whole seconds
# from the block start, every running sum of time and time squared is an integer below 2^53.
BLOCK_HOURS = 30 * 24
# A block of a machine that reads far more often than hourly is halved until it holds at
# most this many readings (while halves stay 4 look-backs long): one dense machine then
# spans many tasks.
MAX_BLOCK_ROWS = 2 * BLOCK_HOURS

# Internal columns.
_T = "_t_us"  # event time in microseconds: the window order
_BLOCK = "_block"  # start of the block, in microseconds
_OWN = "_own"  # false: a copy of a reading kept only as look-back for the next block
_SECONDS = "_seconds"  # seconds since the block start


def rolling_feature_name(sensor: str, stat: str, hours: int) -> str:
    return f"{sensor}_{stat}_{hours}h"


# ---------------------------------------------------------------------------------------
# Blocks


def _in_blocks(telemetry: DataFrame, sensors: Sequence[str], look_back_hours: int) -> DataFrame:
    """Each reading in its block, plus a look-back copy in the next block when it lies within
    `look_back_hours` of that block's start."""
    readings = telemetry.select(
        F.col(MACHINE_ID).cast("bigint").alias(MACHINE_ID),
        F.col("timestamp").alias(EVENT_TIMESTAMP),
        F.unix_micros("timestamp").alias(_T),
        *sensors,
    )
    blocks = in_time_blocks(
        readings,
        [MACHINE_ID],
        _T,
        block_us=BLOCK_HOURS * HOUR_US,
        look_back_us=look_back_hours * HOUR_US,
        max_rows=MAX_BLOCK_ROWS,
        block=_BLOCK,
        own=_OWN,
    )
    return blocks.withColumn(_SECONDS, (F.col(_T) - F.col(_BLOCK)) / 1_000_000)


# ---------------------------------------------------------------------------------------
# Window frames and columns, as SQL expressions: the transform has ~100 window aggregates,
# and building each from Column objects costs dozens of Python-to-JVM calls (2 s a run).


def _frame(lower: str, upper: str = "CURRENT ROW") -> str:
    """A frame over a machine's block in time order; bounds in microseconds."""
    return (
        f"OVER (PARTITION BY {MACHINE_ID}, {_BLOCK} ORDER BY {_T} "
        f"RANGE BETWEEN {lower} AND {upper})"
    )


def _up_to(hours_before: int = 0) -> str:
    """Readings of the block at or before t - hours_before: an incremental frame."""
    upper = "CURRENT ROW" if hours_before == 0 else f"{hours_before * HOUR_US} PRECEDING"
    return _frame("UNBOUNDED PRECEDING", upper)


def _sliding(hours: int) -> str:
    """(t - hours, t]: recomputed for every row."""
    return _frame(f"{hours * HOUR_US - 1} PRECEDING")


def _with_centred(blocks: DataFrame, sensors: Sequence[str]) -> DataFrame:
    """Adds each sensor's centre (its first reading in the block) and the sensor minus it,
    so that squares and products in running sums stay near the spread of the values, not
    their size. The centre is its own (cheap, one pass) window: the sums are taken over it."""
    whole_block = _frame("UNBOUNDED PRECEDING", "UNBOUNDED FOLLOWING")
    with_centres = blocks.withColumns(
        {_centre(s): F.expr(f"first({s}, true) {whole_block}") for s in sensors}
    )
    return with_centres.withColumns({_centred(s): F.col(s) - F.col(_centre(s)) for s in sensors})


def _centre(sensor: str) -> str:
    return f"_{sensor}_centre"


def _centred(sensor: str) -> str:
    return f"_{sensor}_centred"


# Every window aggregate is computed once, into a named column that the statistics refer
# to: an expression used twice would be computed twice.


def _terms(sensor: str, with_time: bool) -> dict[str, str]:
    """What the statistics of a sensor are made of: its count of readings, sums of the
    (centred) reading x and x^2, and for a slope the sums of the time t, t^2 and t*x,
    with t counted only where there is a reading."""
    x = _centred(sensor)
    terms = {"n": f"count({x})", "x": f"sum({x})", "xx": f"sum({x} * {x})"}
    if with_time:
        t = f"IF({x} IS NULL, NULL, {_SECONDS})"
        terms |= {"t": f"sum({t})", "tt": f"sum({t} * {t})", "tx": f"sum({t} * {x})"}
    return terms


def _running(sensor: str, term: str, hours_before: int) -> str:
    return f"_{sensor}_{term}_to_{hours_before}h"


def _running_sums(
    sensors: Sequence[str], windows_hours: Sequence[int], slope_hours: int | None
) -> dict[str, str]:
    """Running sums up to t and up to t - N for each window N (no rows: 0, not null)."""
    columns = {}
    for s in sensors:
        for term, aggregate in _terms(s, with_time=slope_hours is not None).items():
            time_term = term in ("t", "tt", "tx")
            hours = {slope_hours} if time_term else {*windows_hours, slope_hours or 0}
            for h in sorted(hours | {0}):
                columns[_running(s, term, h)] = f"coalesce({aggregate} {_up_to(h)}, 0)"
    return columns


def _over(sensor: str, term: str, hours: int) -> str:
    """The sum of a term over (t - hours, t]: running sum to t minus running sum to t - hours."""
    return f"({_running(sensor, term, 0)} - {_running(sensor, term, hours)})"


def _extremes(sensor: str, hours: int) -> dict[str, str]:
    # Min and max cannot be taken apart like sums.
    return {
        rolling_feature_name(sensor, "min", hours): f"min({sensor}) {_sliding(hours)}",
        rolling_feature_name(sensor, "max", hours): f"max({sensor}) {_sliding(hours)}",
    }


def _short_mean_and_std(sensor: str, hours: int) -> dict[str, str]:
    return {
        rolling_feature_name(sensor, "mean", hours): f"avg({sensor}) {_sliding(hours)}",
        rolling_feature_name(sensor, "std", hours): f"stddev_samp({sensor}) {_sliding(hours)}",
    }


def _last_before(column: str, hours: int) -> str:
    return f"_{column}_last_before_{hours}h"


def _lasts(sensors: Sequence[str], hours: int) -> dict[str, str]:
    """The last reading (and its time) at or before t - hours: an incremental frame."""
    return {_last_before(c, hours): f"last({c}) {_up_to(hours)}" for c in [_T, *sensors]}


# ---------------------------------------------------------------------------------------
# Statistics from the window columns


def _constant(sensor: str, hours: int) -> str:
    """Whether every reading in (t - hours, t] is the same (needs `_extremes` over it)."""
    return (
        f"{rolling_feature_name(sensor, 'min', hours)} = "
        f"{rolling_feature_name(sensor, 'max', hours)}"
    )


def _mean_and_std(sensor: str, hours: int) -> dict[str, str]:
    n, sx, sxx = (_over(sensor, term, hours) for term in ("n", "x", "xx"))
    # Sum of squared deviations; rounding can leave it a hair off zero.
    squares = f"IF({_constant(sensor, hours)}, 0.0, greatest({sxx} - {sx} * {sx} / {n}, 0.0))"
    return {
        rolling_feature_name(sensor, "mean", hours): (
            f"IF({n} > 0, {sx} / {n} + {_centre(sensor)}, NULL)"
        ),
        rolling_feature_name(sensor, "std", hours): (
            f"IF({n} > 1, sqrt({squares} / ({n} - 1)), NULL)"
        ),
    }


def _slope(sensor: str, hours: int) -> str:
    """Least-squares slope of the sensor on time: S_tx / S_tt, from seconds to hours."""
    n, st, stt, sx, stx = (_over(sensor, term, hours) for term in ("n", "t", "tt", "x", "tx"))
    s_tt = f"({stt} - {st} * {st} / {n})"
    s_tx = f"({stx} - {st} * {sx} / {n})"
    slope = f"IF({_constant(sensor, hours)}, 0.0, {s_tx} / {s_tt} * 3600)"
    return f"IF({n} > 1 AND {s_tt} > 0, {slope}, NULL)"


def _lag(sensor: str, hours: int) -> str:
    """The reading at exactly t - hours: the last one at or before then, if it is not earlier."""
    found = f"{_last_before(_T, hours)} = {_T} - {hours * HOUR_US}"
    return f"IF({found}, {_last_before(sensor, hours)}, NULL)"


def lag_feature_name(sensor: str, hours: int) -> str:
    return f"{sensor}_lag_{hours}h"


# ---------------------------------------------------------------------------------------
# The transform


def with_telemetry_features(
    telemetry: DataFrame,
    *,
    sensors: Sequence[str] = SENSORS,
    windows_hours: Sequence[int] = WINDOWS_HOURS,
    range_hours: int | None = RANGE_HOURS,
    lag_hours: int | None = LAG_HOURS,
) -> DataFrame:
    """One row per reading: (machine_id, event_timestamp, features...), the features in the
    order of TELEMETRY_FEATURES. `range_hours` (min, max, slope) or `lag_hours` None leaves
    those features out.

    Statistics ignore null readings; a std or slope needs two readings in the window (else
    null), a mean, min or max one.
    """
    look_back = max([*windows_hours, range_hours or 0, lag_hours or 0])
    rows = _with_centred(_in_blocks(telemetry, sensors, look_back), sensors)
    short = [h for h in windows_hours if h <= SHORT_WINDOW_HOURS]
    long = [h for h in windows_hours if h > SHORT_WINDOW_HOURS]

    windowed = _running_sums(sensors, long, range_hours)
    for s in sensors:
        for hours in short:
            windowed |= _short_mean_and_std(s, hours)
        for hours in sorted({*long, *([range_hours] if range_hours else [])}):
            windowed |= _extremes(s, hours)
    if lag_hours is not None:
        windowed |= _lasts(sensors, lag_hours)
    # Look-back copies only fed the windows of the next block.
    rows = rows.withColumns({n: F.expr(sql) for n, sql in windowed.items()}).where(F.col(_OWN))

    features: dict[str, str] = {}
    for hours in windows_hours:
        for s in sensors:
            if hours in short:
                features |= {n: n for n in _short_mean_and_std(s, hours)}
            else:
                features |= _mean_and_std(s, hours)
    if range_hours is not None:
        features |= {n: n for s in sensors for n in _extremes(s, range_hours)}
        features |= {
            rolling_feature_name(s, "slope", range_hours): _slope(s, range_hours) for s in sensors
        }
    if lag_hours is not None:
        features |= {lag_feature_name(s, lag_hours): _lag(s, lag_hours) for s in sensors}
    return rows.selectExpr(
        MACHINE_ID, EVENT_TIMESTAMP, *[f"{e} AS {n}" for n, e in features.items()]
    )


def with_rolling_telemetry_stats(
    telemetry: DataFrame,
    *,
    sensors: Sequence[str] = SENSORS,
    windows_hours: Sequence[int] = WINDOWS_HOURS,
) -> DataFrame:
    """Mean and sample standard deviation of each sensor over each trailing window only."""
    return with_telemetry_features(
        telemetry, sensors=sensors, windows_hours=windows_hours, range_hours=None, lag_hours=None
    )


# ---------------------------------------------------------------------------------------
# The declaration

_UNITS = {
    "volt": "V",
    "rotate": "rpm",
    "pressure": "pressure units",
    "vibration": "vibration units",
}


def _describe(sensor: str, stat: str, hours: int) -> str:
    window = f"over the last {hours} hours, (t - {hours}h, t]"
    what = {
        "mean": f"Mean of {sensor} {window}",
        "std": f"Sample standard deviation of {sensor} {window}; null with fewer than 2 readings",
        "min": f"Lowest {sensor} reading {window}",
        "max": f"Highest {sensor} reading {window}",
        "slope": (
            f"Trend of {sensor} {window}: least-squares slope against time, in {_UNITS[sensor]} "
            "per hour; null with fewer than 2 readings"
        ),
        "lag": f"The {sensor} reading exactly {hours} hour(s) before t; null if there is none",
    }
    return what[stat]


def _telemetry_features() -> tuple[Feature, ...]:
    """In the transform's column order; the features of the first version come first, so a
    table of that version gains the new ones as added columns."""

    def feature(sensor: str, stat: str, hours: int) -> Feature:
        name = (
            lag_feature_name(sensor, hours)
            if stat == "lag"
            else rolling_feature_name(sensor, stat, hours)
        )
        tags = {"source": "telemetry", "sensor": sensor, "stat": stat, "window": f"{hours}h"}
        return Feature(name, "double", _describe(sensor, stat, hours), tags)

    features = [
        feature(s, stat, hours)
        for hours in WINDOWS_HOURS
        for s in SENSORS
        for stat in ("mean", "std")
    ]
    features += [feature(s, stat, RANGE_HOURS) for s in SENSORS for stat in ("min", "max")]
    features += [feature(s, "slope", RANGE_HOURS) for s in SENSORS]
    features += [feature(s, "lag", LAG_HOURS) for s in SENSORS]
    return tuple(features)


def _expectations(features: Sequence[Feature]) -> tuple:
    """A spread is never negative; the four sensors measure physical quantities (voltage,
    speed, pressure, vibration) that are never negative either, so neither are their
    levels. Trends can go either way."""
    return tuple(
        in_range(f.name, 0, severity="warn") for f in features if f.tags["stat"] != "slope"
    )


_FEATURES = _telemetry_features()

TELEMETRY_FEATURES = FeatureTable(
    name="machine_telemetry_features",
    view_name="machine_telemetry",
    description=(
        "Rolling statistics of each telemetry sensor per reading: mean and standard deviation "
        "over 3 and 24 hours, min, max and trend over 24 hours, and the reading an hour before."
    ),
    entity=MACHINE,
    features=_FEATURES,
    # An incremental run re-reads the longest look-back before its first changed reading.
    sources=(
        Source(TELEMETRY, history=timedelta(hours=max(*WINDOWS_HOURS, RANGE_HOURS, LAG_HOURS))),
    ),
    build=lambda bronze: with_telemetry_features(bronze["telemetry"]),
    ttl=timedelta(days=2),
    expectations=_expectations(_FEATURES),
)
