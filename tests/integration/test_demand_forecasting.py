"""Demand forecasting end to end: late and corrected sales, unknown items, composite keys,
the classical forecasters and the demand segments (the shared checks are in
test_pipeline.py)."""

from __future__ import annotations

import mlflow
import numpy as np
import pyspark.sql.functions as F
import pytest

from featurehouse.features.forecasts import entity_forecasts
from featurehouse.io import Lakehouse
from featurehouse.training.registry import configure_mlflow
from featurehouse.training.train import CANDIDATES_ARTIFACT
from featurehouse.usecase import EVENT_TIMESTAMP
from featurehouse.usecases.demand_forecasting.features import (
    FORECASTERS,
    FORECASTS,
    SEGMENT,
    SEGMENTATION,
)
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


def test_the_forecast_table_holds_the_per_entity_forecasts_statsmodels_gives(lake):
    """The feature job's grouped pandas function gives, for one (store, item), what the
    forecasters give on its series in a plain pandas call."""
    keys = {"store_id": 2, "item_id": 3}
    sales = (
        lake.read("sales")
        .where((F.col("store_id") == 2) & (F.col("item_id") == 3))
        .select("store_id", "item_id", F.col("date").alias(EVENT_TIMESTAMP), "units")
        .toPandas()
    )
    expected = entity_forecasts(sales, list(keys), "units", FORECASTERS, FORECASTS)
    table = (
        lake.read("store_item_forecasts")
        .where((F.col("store_id") == 2) & (F.col("item_id") == 3))
        .toPandas()
        .sort_values(EVENT_TIMESTAMP)
        .reset_index(drop=True)
    )

    assert len(table) == len(sales)
    for forecaster in FORECASTERS:
        np.testing.assert_allclose(
            table[forecaster.name].to_numpy(), expected[forecaster.name].to_numpy(), rtol=1e-9
        )
        assert table[forecaster.name].iloc[FORECASTS.min_history :].notna().all()


def test_every_entity_is_segmented_each_month_and_the_segmentation_is_registered(
    lake, pipeline_run
):
    spec = E2E_USE_CASES[NAME]["simulation"]
    segments = lake.read("store_item_segments").where(F.col(SEGMENT).isNotNull()).toPandas()
    per_month = segments.groupby(EVENT_TIMESTAMP)

    assert (per_month.size() == spec["stores"] * spec["items"]).all()
    assert (segments[EVENT_TIMESTAMP].dt.day == 1).all()
    assert (per_month[SEGMENT].nunique() == SEGMENTATION.clusters).all()
    # Numbered by volume: segment 0 sells least.
    means = segments.groupby(SEGMENT)["units_mean_91d"].mean()
    assert means.is_monotonic_increasing

    (result,) = pipeline_run.outcome(NAME).training[0].segmentations
    assert result.agreement == 1.0
    assert sum(result.sizes) == result.entities == spec["stores"] * spec["items"]
    configure_mlflow(pipeline_run.settings)
    model = mlflow.sklearn.load_model(result.model.uri)
    newest = segments[segments[EVENT_TIMESTAMP] == result.fitted_at]
    profile = list(SEGMENTATION.profile)
    np.testing.assert_array_equal(model.predict(newest[profile]), newest[SEGMENT].to_numpy())


def test_the_classical_forecasters_and_the_trees_are_compared_on_the_test_window(pipeline_run):
    """Every candidate, measured on the same test rows: the classical forecasters beat the
    same days last week, and the registered model is the one chosen on validation."""
    training = pipeline_run.outcome(NAME).training[0]
    table = training.candidate_metrics

    assert set(table) == {c.name for c in pipeline_run.use_cases[NAME].candidates}
    assert len({m["rows"] for m in table.values()}) == 1  # the same rows
    for classical in ("holt_winters", "seasonal_arima"):
        assert table[classical]["rmse"] < training.baseline_metrics["rmse"], classical
    assert table[training.candidate] == training.test_metrics
    configure_mlflow(pipeline_run.settings)
    logged = mlflow.artifacts.load_dict(f"runs:/{training.run_id}/{CANDIDATES_ARTIFACT}")
    assert {c: m["rmse"] for c, m in logged.items()} == {c: m["rmse"] for c, m in table.items()}
