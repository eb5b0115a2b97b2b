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
from pyspark.sql import Column, DataFrame, Window, WindowSpec

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


# A block is never cut shorter than this many look-backs: each block repeats its look-back,
# so a quarter more rows at most for the dense part of a key.
MIN_BLOCK_LOOK_BACKS = 4
_COARSE, _ROWS, _SPLITS, _START = "_coarse_block", "_block_rows", "_block_splits", "_own_start"


def in_time_blocks(
    rows: DataFrame,
    keys: Sequence[str],
    time_us: str,
    *,
    block_us: int,
    look_back_us: int,
    max_rows: int,
    block: str = "_block",
    own: str = "_own",
) -> DataFrame:
    """Each row with the start of its block of time (column `block`, in microseconds), plus
    a copy of it in the next block (`own` false) when it lies within `look_back_us` of that
    block's start: a window partitioned by (keys, block) then sees its whole look-back, and
    the copies are dropped after it.

    Why blocks: a window partitioned by key alone puts all of a key's history in one task.
    Blocks are `block_us` long (aligned to the epoch); a key's block holding more than
    `max_rows` rows is halved, as often as needed while the halves stay at least
    MIN_BLOCK_LOOK_BACKS look-backs long, so a hot, dense key spreads over many tasks while a
    sparse one keeps long blocks (few copies). The split depends on the rows given, so a run over part of a history may cut
    blocks differently: window results are the same up to floating-point rounding.
    """
    if MIN_BLOCK_LOOK_BACKS * look_back_us > block_us:
        raise ValueError(
            f"a look-back of {look_back_us} us does not fit {MIN_BLOCK_LOOK_BACKS} times in a "
            f"block of {block_us} us"
        )
    most_halvings = 0  # halves stay whole microseconds, so blocks tile time exactly
    while block_us % (2 << most_halvings) == 0 and (block_us >> (most_halvings + 1)) >= max(
        MIN_BLOCK_LOOK_BACKS * look_back_us, 1
    ):
        most_halvings += 1
    coarse = F.floor(F.col(time_us) / block_us)
    halvings = F.least(F.lit(most_halvings), F.ceil(F.log2(F.col(_ROWS) / max_rows)))
    splits = (
        rows.groupBy(*keys, coarse.alias(_COARSE))
        .agg(F.count(F.lit(1)).alias(_ROWS))
        .where(F.col(_ROWS) > max_rows)
        .groupBy(*keys)
        .agg(F.map_from_entries(F.collect_list(F.struct(_COARSE, halvings))).alias(_SPLITS))
    )

    def start(t: Column) -> Column:
        first = F.floor(t / block_us) * block_us
        halved = F.coalesce(F.try_element_at(F.col(_SPLITS), F.floor(t / block_us)), F.lit(0))
        width = F.call_function("shiftright", F.lit(block_us), halved.cast("int"))
        return first + F.floor((t - first) / width) * width

    t = F.col(time_us)
    tagged = rows.join(F.broadcast(splits), list(keys), "left").withColumn(_START, start(t))
    blocks = F.array_distinct(F.array(F.col(_START), start(t + look_back_us)))
    return (
        tagged.withColumn(block, F.explode(blocks))
        .withColumn(own, F.col(_START) == F.col(block))
        .drop(_SPLITS, _START)
    )
