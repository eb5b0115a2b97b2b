"""Hours since each component was last serviced (maintenance or repair after a failure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from featurehouse.features.declaration import ENTITY_KEY, EVENT_TIMESTAMP, Feature, FeatureTable
from featurehouse.features.errors import telemetry_grid

COMPONENTS = ("comp1", "comp2", "comp3", "comp4")


def with_hours_since_maintenance(
    grid: DataFrame, maintenance: DataFrame, *, components: Sequence[str] = COMPONENTS
) -> DataFrame:
    """For each grid row, hours since the newest maintenance of each component at or before it.

    Null when the component has no maintenance record yet. Maintenance at exactly the
    grid hour counts (0 hours): the record says the work was done by then.
    """
    events = grid.select(ENTITY_KEY, "timestamp", F.lit(None).cast("string").alias("component"))
    events = events.withColumn("_grid", F.lit(True)).unionByName(
        maintenance.select(ENTITY_KEY, "timestamp", "component").withColumn("_grid", F.lit(False))
    )
    until_now = (
        Window.partitionBy(ENTITY_KEY)
        .orderBy(F.col("timestamp").cast("long"))
        .rangeBetween(Window.unboundedPreceding, 0)
    )
    last_service = {
        comp: F.max(F.when(F.col("component") == comp, F.col("timestamp"))).over(until_now)
        for comp in components
    }
    hours_since = [
        ((F.col("timestamp").cast("long") - last.cast("long")) / 3600.0).alias(
            f"hours_since_maint_{comp}"
        )
        for comp, last in last_service.items()
    ]
    return (
        events.select(ENTITY_KEY, "timestamp", "_grid", *hours_since)
        .where("_grid")
        .select(
            F.col(ENTITY_KEY).cast("bigint").alias(ENTITY_KEY),
            F.col("timestamp").alias(EVENT_TIMESTAMP),
            *[f"hours_since_maint_{c}" for c in components],
        )
    )


MAINTENANCE_FEATURES = FeatureTable(
    table_key="maintenance_features",
    view_name="machine_maintenance",
    description="Hours since the last maintenance or repair of each component.",
    features=tuple(
        Feature(
            f"hours_since_maint_{c}", "double", f"Hours since {c} was last maintained or replaced"
        )
        for c in COMPONENTS
    ),
    sources=("telemetry", "maintenance"),
    build=lambda bronze: with_hours_since_maintenance(
        telemetry_grid(bronze["telemetry"]), bronze["maintenance"]
    ),
    ttl=timedelta(days=2),
)
