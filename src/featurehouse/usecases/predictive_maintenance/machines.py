"""Static machine attributes: model and age."""

from __future__ import annotations

from datetime import datetime

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from featurehouse.usecase import (
    EVENT_TIMESTAMP,
    Feature,
    FeatureTable,
    Source,
)
from featurehouse.usecases.predictive_maintenance.datasets import MACHINE, MACHINE_ID, MACHINES

# The attributes are a snapshot with no history: they hold from the start of time,
# so a point-in-time lookup at any entity timestamp finds them.
ATTRIBUTES_VALID_FROM = datetime(1970, 1, 1)


def with_machine_attributes(machines: DataFrame) -> DataFrame:
    return machines.select(
        F.col(MACHINE_ID).cast("bigint").alias(MACHINE_ID),
        F.lit(ATTRIBUTES_VALID_FROM).cast("timestamp").alias(EVENT_TIMESTAMP),
        F.col("model").alias("model"),
        F.col("age").cast("bigint").alias("age"),
    )


MACHINE_ATTRIBUTES = FeatureTable(
    name="machine_attributes",
    view_name="machine_attributes",
    description="Static attributes of each machine.",
    entity=MACHINE,
    features=(
        Feature("model", "string", "Machine model (model1 to model4)"),
        Feature("age", "bigint", "Machine age in years"),
    ),
    sources=(Source(MACHINES),),
    build=lambda bronze: with_machine_attributes(bronze["machines"]),
    ttl=None,
)
