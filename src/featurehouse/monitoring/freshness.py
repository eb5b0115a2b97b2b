"""Whether each feature table keeps up with its data, checked by monitoring.

The feature job checks its own freshness when it runs; a feature job that stopped running
says nothing. So the monitoring workflow compares, before scoring, each feature table's
newest row with the newest event of the sources it is computed from (those that carry
all of its keys and are not known in advance): a table that lags them by more than its
lookup TTL gives point-in-time lookups at the newest data no features, and raises a
`stale_features` alert. With `quality.max_staleness` set (production), a table whose
newest row is older than that, by the clock, is stale too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyspark.sql.functions as F

from featurehouse.io import Lakehouse
from featurehouse.monitoring.alerts import Alert
from featurehouse.usecase import FeatureTable


@dataclass(frozen=True)
class TableFreshness:
    table: str
    newest: datetime | None  # the table's newest row
    source_newest: datetime | None  # the newest event of its sources
    stale: str | None  # why it is stale, or None


def staleness(
    newest: datetime | None,
    source_newest: datetime | None,
    ttl: timedelta | None,
    now: datetime,
    max_age: timedelta | None,
) -> str | None:
    """Why a table whose newest row is `newest` is stale, or None when it is not."""
    if source_newest is None:
        return None
    if newest is None:
        return f"no rows, while its sources have events up to {source_newest:%Y-%m-%d %H:%M}"
    behind = source_newest - newest
    if ttl is not None and behind > ttl:
        return (
            f"its newest row ({newest:%Y-%m-%d %H:%M}) is {_hours(behind)} behind its sources"
            f" ({source_newest:%Y-%m-%d %H:%M}), beyond its lookup TTL of {_hours(ttl)}:"
            " has the feature job run?"
        )
    if max_age is not None and now - newest > max_age:
        return f"its newest row ({newest:%Y-%m-%d %H:%M}) is {_hours(now - newest)} old"
    return None


def _hours(value: timedelta) -> str:
    return f"{value.total_seconds() / 3600:,.1f} h"


def table_freshness(
    lake: Lakehouse, table: FeatureTable, now: datetime, max_age: timedelta | None
) -> TableFreshness | None:
    """None for a table with no source that has event times and all of its keys."""
    sources = [
        s
        for s in table.sources
        if s.timestamp and not s.lead and all(k in s.dataset.bronze_columns for k in table.keys)
    ]
    if not sources or not all(lake.exists(s.name) for s in sources):
        return None
    source_newest = max(
        (lake.read(s.name).agg(F.max(s.timestamp)).first()[0] for s in sources),
        key=lambda t: t or datetime.min,
    )
    newest = None
    if lake.exists(table.name):
        newest = lake.read(table.name).agg(F.max(table.timestamp)).first()[0]
    why = staleness(newest, source_newest, table.ttl, now, max_age)
    return TableFreshness(table.name, newest, source_newest, why)


def stale_feature_alerts(
    lake: Lakehouse, tables: Sequence[FeatureTable], now: datetime, max_age: timedelta | None
) -> list[Alert]:
    """One alert per stale feature table of the lakehouse's use case, identified by its
    newest row (so a table that stays stale alerts once, and again if it moves on and falls
    behind again)."""
    alerts = []
    for table in tables:
        freshness = table_freshness(lake, table, now, max_age)
        if freshness is not None and freshness.stale is not None:
            alerts.append(
                Alert(
                    lake.use_case,
                    "stale_features",
                    f"{lake.name(table.name)} at {freshness.newest}",
                    f"feature table {lake.name(table.name)} is stale: {freshness.stale}",
                )
            )
    return alerts
