"""Component age (hours since each component was last replaced) and days since its last failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from featurehouse.features.quality import in_range
from featurehouse.usecase import (
    EVENT_TIMESTAMP,
    Feature,
    FeatureTable,
    Source,
)
from featurehouse.usecases.predictive_maintenance.datasets import (
    FAILURES,
    MACHINE,
    MACHINE_ID,
    MAINTENANCE,
    TELEMETRY,
)
from featurehouse.usecases.predictive_maintenance.errors import telemetry_grid

COMPONENTS = ("comp1", "comp2", "comp3", "comp4")
_MICROS_PER_HOUR = 3600 * 1_000_000
_MICROS_PER_DAY = 24 * _MICROS_PER_HOUR

# What each row of the union below is.
_GRID, _MAINTENANCE, _FAILURE = "grid", "maintenance", "failure"


def hours_since_maint_name(component: str) -> str:
    return f"hours_since_maint_{component}"


def days_since_failure_name(component: str) -> str:
    return f"days_since_failure_{component}"


def with_component_history(
    grid: DataFrame,
    maintenance: DataFrame | None,
    failures: DataFrame | None,
    *,
    components: Sequence[str] = COMPONENTS,
) -> DataFrame:
    """For each grid row and component: hours since its newest replacement and days since its
    newest failure, both at or before the row's time.

    Null when the component has no such record yet. A record at exactly the grid time
    counts (0): it says the replacement or failure happened by then. Grid rows,
    maintenance and failures are unioned and read with one running window per machine,
    so there is no join of every event to every grid row. A None source gives no columns.
    """
    hours_since = {}
    if maintenance is not None:
        hours_since = {
            hours_since_maint_name(c): (_MAINTENANCE, c, _MICROS_PER_HOUR) for c in components
        }
    days_since = {}
    if failures is not None:
        days_since = {
            days_since_failure_name(c): (_FAILURE, c, _MICROS_PER_DAY) for c in components
        }
    events = grid.select(MACHINE_ID, "timestamp", F.lit(None).cast("string").alias("component"))
    events = events.withColumn("_kind", F.lit(_GRID))
    for kind, frame in ((_MAINTENANCE, maintenance), (_FAILURE, failures)):
        if frame is not None:
            events = events.unionByName(
                frame.select(MACHINE_ID, "timestamp", "component").withColumn("_kind", F.lit(kind))
            )
    micros = F.unix_micros("timestamp")
    until_now = (
        Window.partitionBy(MACHINE_ID).orderBy(micros).rangeBetween(Window.unboundedPreceding, 0)
    )

    def since(kind: str, component: str, unit_micros: int) -> Column:
        is_record = (F.col("_kind") == kind) & (F.col("component") == component)
        last = F.max(F.when(is_record, micros)).over(until_now)
        return (micros - last) / float(unit_micros)

    measures = {**hours_since, **days_since}
    return (
        events.select(
            MACHINE_ID,
            "timestamp",
            "_kind",
            *[since(*spec).alias(name) for name, spec in measures.items()],
        )
        .where(F.col("_kind") == _GRID)
        .select(
            F.col(MACHINE_ID).cast("bigint").alias(MACHINE_ID),
            F.col("timestamp").alias(EVENT_TIMESTAMP),
            *measures,
        )
    )


def with_hours_since_maintenance(
    grid: DataFrame, maintenance: DataFrame, *, components: Sequence[str] = COMPONENTS
) -> DataFrame:
    """Component age only: hours since the newest replacement at or before each grid row."""
    return with_component_history(grid, maintenance, None, components=components)


def _features() -> tuple[Feature, ...]:
    ages = [
        Feature(
            hours_since_maint_name(c),
            "double",
            f"Age of {c}: hours since it was last replaced (scheduled or after a failure); "
            "null if never",
            {"source": "maintenance", "component": c, "unit": "hours"},
        )
        for c in COMPONENTS
    ]
    since_failure = [
        Feature(
            days_since_failure_name(c),
            "double",
            f"Days since {c} last failed, at or before this time; null if it never has",
            {"source": "failures", "component": c, "unit": "days"},
        )
        for c in COMPONENTS
    ]
    return (*ages, *since_failure)


_FEATURES = _features()

MAINTENANCE_FEATURES = FeatureTable(
    name="machine_maintenance_features",
    view_name="machine_maintenance",
    description=(
        "Age of each component (hours since it was last replaced) and days since it last failed."
    ),
    entity=MACHINE,
    features=_FEATURES,
    sources=(
        Source(TELEMETRY),
        # Both look back without limit: the last replacement or failure may be long ago.
        Source(MAINTENANCE, history=None),
        Source(FAILURES, history=None),
    ),
    build=lambda bronze: with_component_history(
        telemetry_grid(bronze["telemetry"]), bronze["maintenance"], bronze["failures"]
    ),
    ttl=timedelta(days=2),
    expectations=tuple(in_range(f.name, 0, severity="warn") for f in _FEATURES),
)
