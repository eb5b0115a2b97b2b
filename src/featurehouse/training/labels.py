"""The entity frame: which entity rows to learn from (the spine), and their labels.

Both are read from a use case's declarations (`Spine`, `Label`); nothing here knows what
an entity or an event is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from featurehouse.usecase import EVENT_TIMESTAMP, Label, Spine, micros

_VALUE = "_label_value"
_IS_SPINE = "_is_spine"


def spine_rows(
    source: DataFrame,
    spine: Spine,
    key_types: dict[str, str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> DataFrame:
    """One row per entity every `spine.every` (on the UTC grid) where the source has a row,
    within [start, end]: (keys..., event_timestamp).

    Rows off the grid (a reading at 12:30 for an hourly spine) are not entity rows.
    """
    ts = F.col(spine.source.event_time)
    rows = source.where(F.unix_micros(ts) % F.lit(micros(spine.every)) == 0)
    if start is not None:
        rows = rows.where(ts >= F.lit(start))
    if end is not None:
        rows = rows.where(ts <= F.lit(end))
    return rows.select(
        *[F.col(k).cast(t).alias(k) for k, t in key_types.items()],
        ts.alias(EVENT_TIMESTAMP),
    ).distinct()


def _frame(label: Label) -> tuple[int, int]:
    """The window's bounds after t, in microseconds, for the label's closed ends."""
    horizon = micros(label.horizon)
    return {
        "right": (1, horizon),  # (t, t + h]
        "both": (0, horizon),  # [t, t + h]
        "left": (0, horizon - 1),  # [t, t + h)
    }[label.closed]


def _in_window(entities: DataFrame, windows: DataFrame, label: Label, keys: list[str]) -> DataFrame:
    """1 when the row's time is inside one of its entity's [start, end] windows. Windows are
    few (labelled incidents), so they are broadcast and joined by entity."""
    key_types = dict(entities.select(*keys).dtypes)
    spans = windows.select(
        *[F.col(k).cast(key_types[k]).alias(k) for k in keys],
        F.col(label.source.event_time).alias("_start"),
        F.col(label.column).alias("_end"),
    )
    inside = F.col(EVENT_TIMESTAMP).between(F.col("_start"), F.col("_end"))
    return (
        entities.join(F.broadcast(spans), on=keys, how="left")
        .groupBy(*keys, EVENT_TIMESTAMP)
        .agg(F.max(F.coalesce(inside, F.lit(False)).cast("int")).alias(label.name))
    )


def with_label(
    entities: DataFrame,
    events: DataFrame,
    label: Label,
    keys: Sequence[str],
    *,
    observed_until: datetime,
) -> DataFrame:
    """The entity rows with `label.name`: over the entity's events in the horizon after t,
    1 if there is one (kind "event", an int) or the sum of `label.column` (kind "sum", a
    double; 0 when there are none).

    Rows whose horizon reaches past `observed_until` are dropped: we cannot know their
    outcome yet, and calling it 0 would teach the model that nothing happened.

    Entity rows and events are unioned and each entity row reads its horizon with one
    range window per entity: no join of every event to every row.
    """
    keys = list(keys)
    ts = label.source.event_time
    horizon = micros(label.horizon)
    known = entities.where(
        F.unix_micros(EVENT_TIMESTAMP) + horizon <= F.unix_micros(F.lit(observed_until))
    )
    if label.kind == "window":
        return _in_window(known, events, label, keys)
    value = F.lit(1.0) if label.kind == "event" else F.col(label.column).cast("double")
    key_types = dict(known.select(*keys).dtypes)
    union = known.select(
        *keys,
        EVENT_TIMESTAMP,
        F.lit(None).cast("double").alias(_VALUE),
        F.lit(True).alias(_IS_SPINE),
    ).unionByName(
        events.select(
            *[F.col(k).cast(key_types[k]).alias(k) for k in keys],
            F.col(ts).alias(EVENT_TIMESTAMP),
            value.alias(_VALUE),
            F.lit(False).alias(_IS_SPINE),
        )
    )
    lower, upper = _frame(label)
    horizon_window = (
        Window.partitionBy(*keys).orderBy(F.unix_micros(EVENT_TIMESTAMP)).rangeBetween(lower, upper)
    )
    if label.kind == "event":
        target = (F.count(_VALUE).over(horizon_window) > 0).cast("int")
    else:
        target = F.coalesce(F.sum(_VALUE).over(horizon_window), F.lit(0.0))
    return (
        union.select(*keys, EVENT_TIMESTAMP, _IS_SPINE, target.alias(label.name))
        .where(F.col(_IS_SPINE))
        .drop(_IS_SPINE)
    )
