"""Features of each metric sample, all free of the series' scale (CPU percent and network
bytes alike), so that one detector serves every series: how far the sample is from the
recent past (mean and standard deviation, and median and spread, over the last hour and
day, excluding the sample itself), how fast it changes, and how far it is from the same
time a day and a week earlier, each in units of the last day's variability.
"""

from __future__ import annotations

from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from featurehouse.features.windows import trailing
from featurehouse.usecase import EVENT_TIMESTAMP, Feature, FeatureTable, Source
from featurehouse.usecases.anomaly_detection.datasets import METRIC_SERIES, METRICS, SERIES

KEYS = (SERIES,)
TS = "timestamp"
HOUR, DAY, WEEK = timedelta(hours=1), timedelta(days=1), timedelta(days=7)
# "Before t" windows stop a minute short of t: the sample must not dilute its own baseline.
BEFORE = timedelta(minutes=1)
# Samples are five minutes apart but not on a common grid: "a day earlier" is the mean of
# the samples within 2.5 minutes of t - 1 day.
HALF_STEP = timedelta(seconds=150)
# The baseline rule of the use case: the rolling z-score against the last day.
ZSCORE_RULE = "zscore_1d"
# Interquartile range / 1.349 estimates the standard deviation of a normal distribution.
IQR_TO_SIGMA = 1.349


def _before(span: timedelta):
    return trailing(KEYS, TS, span - BEFORE, skip=BEFORE)


def _around(lag: timedelta):
    return trailing(KEYS, TS, 2 * HALF_STEP, skip=lag - HALF_STEP)


def _ratio(numerator: Column, denominator: Column) -> Column:
    """Null where the denominator is zero (a constant stretch): unknown, not infinite."""
    return F.try_divide(numerator, F.when(denominator != 0, denominator))


def with_metric_features(metrics: DataFrame) -> DataFrame:
    value = F.col("value")
    mean_1h, std_1h = F.avg(value).over(_before(HOUR)), F.stddev_samp(value).over(_before(HOUR))
    mean_1d, std_1d = F.avg(value).over(_before(DAY)), F.stddev_samp(value).over(_before(DAY))
    quartiles = F.percentile_approx(value, [0.25, 0.5, 0.75], 200).over(_before(DAY))
    previous = F.lag(value).over(Window.partitionBy(*KEYS).orderBy(TS))
    columns = {
        "zscore_1h": _ratio(value - mean_1h, std_1h),
        ZSCORE_RULE: _ratio(value - mean_1d, std_1d),
        "robust_zscore_1d": _ratio(
            value - quartiles[1], (quartiles[2] - quartiles[0]) / IQR_TO_SIGMA
        ),
        "change_zscore": _ratio(value - previous, std_1d),
        "day_ago_zscore": _ratio(value - F.avg(value).over(_around(DAY)), std_1d),
        "week_ago_zscore": _ratio(value - F.avg(value).over(_around(WEEK)), std_1d),
        "volatility_ratio_1h": _ratio(F.stddev_samp(value).over(trailing(KEYS, TS, HOUR)), std_1d),
        "level_shift_1h": _ratio(F.avg(value).over(trailing(KEYS, TS, HOUR)) - mean_1d, std_1d),
        # A z-score is unknown where nothing varies: this says so (1.0 for a stuck value).
        "flat_share_1h": F.avg((value == previous).cast("double")).over(trailing(KEYS, TS, HOUR)),
    }
    return metrics.select(
        F.col(SERIES),
        F.col(TS).alias(EVENT_TIMESTAMP),
        *[expr.cast("double").alias(name) for name, expr in columns.items()],
    )


_FEATURES = (
    Feature("zscore_1h", "double", "(value - mean) / std of the series over (t - 1h, t)"),
    Feature(ZSCORE_RULE, "double", "(value - mean) / std over (t - 1d, t): the baseline rule"),
    Feature(
        "robust_zscore_1d",
        "double",
        "(value - median) / (interquartile range / 1.349) over (t - 1d, t)",
    ),
    Feature("change_zscore", "double", "Change since the previous sample / std over (t - 1d, t)"),
    Feature(
        "day_ago_zscore",
        "double",
        "(value - the samples around t - 1d) / std over (t - 1d, t): the daily pattern",
    ),
    Feature(
        "week_ago_zscore",
        "double",
        "(value - the samples around t - 7d) / std over (t - 1d, t): the weekly pattern",
    ),
    Feature(
        "volatility_ratio_1h",
        "double",
        "std over (t - 1h, t] / std over (t - 1d, t): 0 for a stuck value, high for bursts",
    ),
    Feature(
        "level_shift_1h",
        "double",
        "(mean over (t - 1h, t] - mean over (t - 1d, t)) / std over (t - 1d, t)",
    ),
    Feature(
        "flat_share_1h",
        "double",
        "Share of the samples in (t - 1h, t] equal to the one before: 1 for a stuck value",
    ),
)

METRIC_FEATURES = FeatureTable(
    name="metric_features",
    view_name="server_metric_features",
    description="Scale-free deviations of each server metric sample from its recent past.",
    entity=METRIC_SERIES,
    features=_FEATURES,
    # The week-ago feature reads a week (and a step) back.
    sources=(Source(METRICS, history=WEEK + HALF_STEP),),
    build=lambda bronze: with_metric_features(bronze["metrics"]),
    ttl=timedelta(minutes=30),
)
