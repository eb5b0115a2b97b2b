"""Time windows over each entity's rows, for use cases' feature transforms.

Windows are spans of time, not counts of rows: a missing day or hour is simply absent
from the window, and a window never reaches into another entity's rows. Each function
returns a `WindowSpec` to aggregate over, e.g.

    F.avg("units").over(trailing(["store_id", "item_id"], "date", timedelta(days=7)))

is the mean of the rows with time in (t - 7 days, t] of the same (store, item). Time is
ordered in microseconds (Spark's precision), so the edges are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import Window, WindowSpec

from featurehouse.usecase import duration_name, micros


def _by_time(keys: Sequence[str], timestamp: str) -> WindowSpec:
    return Window.partitionBy(*keys).orderBy(F.unix_micros(F.col(timestamp)))


def trailing(
    keys: Sequence[str], timestamp: str, span: timedelta, *, skip: timedelta = timedelta(0)
) -> WindowSpec:
    """Rows with time in (t - skip - span, t - skip]: the last `span`, or with `skip`, the
    same span that long ago (the same hours a week earlier)."""
    return _by_time(keys, timestamp).rangeBetween(-(micros(skip + span) - 1), -micros(skip))


def at_lag(keys: Sequence[str], timestamp: str, lag: timedelta) -> WindowSpec:
    """The row at exactly t - lag (aggregate it with `F.max` or `F.first`); none when that
    time has no row."""
    return _by_time(keys, timestamp).rangeBetween(-micros(lag), -micros(lag))


def ahead(keys: Sequence[str], timestamp: str, span: timedelta) -> WindowSpec:
    """Rows with time in (t, t + span]: for sources known in advance, such as a calendar."""
    return _by_time(keys, timestamp).rangeBetween(1, micros(span))


def feature_name(column: str, stat: str, span: timedelta, unit: str) -> str:
    """`units_mean_7d`: the column, the statistic and the window in the use case's unit."""
    return f"{column}_{stat}_{duration_name(span, unit)}"
