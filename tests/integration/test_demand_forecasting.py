"""Demand forecasting end to end: late and corrected sales, unknown items, composite keys
(the shared checks are in test_pipeline.py)."""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest

from featurehouse.io import Lakehouse
from featurehouse.usecases.demand_forecasting.simulator import DemandSpec, simulate_demand
from tests.integration.conftest import E2E_USE_CASES

NAME = "demand_forecasting"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def simulated():
    return simulate_demand(DemandSpec(**E2E_USE_CASES[NAME]["simulation"]))


@pytest.fixture(scope="module")
def lake(spark, pipeline_run):
    pipeline_run.outcome(NAME)
    return Lakehouse(spark, pipeline_run.settings, NAME)


def test_bronze_sales_hold_the_newest_version_of_every_sale(spark, lake, simulated):
    """Late rows landed, corrections replaced the first version, nothing is doubled."""
    truth = simulated["sales"][["date", "store_id", "item_id", "units"]]
    expected = spark.createDataFrame(truth).withColumn("date", F.col("date").cast("timestamp"))
    bronze = lake.read("sales").select("date", "store_id", "item_id", "units")

    assert bronze.count() == len(truth)
    differing = bronze.join(expected, ["date", "store_id", "item_id"], "full_outer").where(
        ~bronze["units"].eqNullSafe(expected["units"])
    )
    assert differing.count() == 0


def test_sales_of_unknown_items_are_quarantined_with_the_reason(lake, simulated):
    drops = simulated["drops"]
    known = set(simulated["items"]["item_id"])
    unknown = drops[~drops["item_id"].isin(known)]

    quarantined = lake.read("quarantine").where(F.col("dataset") == "sales").collect()

    assert len(unknown) > 0
    assert len(quarantined) == len(unknown)
    assert all(r["reason"].startswith("unknown item_id") for r in quarantined)


def test_store_and_item_attributes_are_keyed_by_their_part_of_the_key(lake, pipeline_run):
    spec = E2E_USE_CASES[NAME]["simulation"]
    assert lake.read("store_attributes").select("store_id").distinct().count() == spec["stores"]
    assert lake.read("item_attributes").select("item_id").distinct().count() == spec["items"]
    assert lake.read("predictions").count() == spec["stores"] * spec["items"]
