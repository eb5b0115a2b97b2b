"""Bike sharing end to end on the published UCI data (the shared checks are in
test_pipeline.py). Skipped, with the reason, when ../shared/data is absent."""

from __future__ import annotations

from datetime import datetime

import pyspark.sql.functions as F
import pytest

from featurehouse.io import Lakehouse

NAME = "bike_sharing"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lake(spark, pipeline_run):
    pipeline_run.outcome(NAME)
    return Lakehouse(spark, pipeline_run.settings, NAME)


def test_every_published_hour_is_ingested_with_its_derived_time(lake, pipeline_run):
    (report,) = pipeline_run.outcome(NAME).ingest
    rentals = lake.read("rentals")
    span = rentals.agg(F.min("timestamp"), F.max("timestamp"), F.sum("cnt")).first()

    assert (report.rows_read, report.accepted, report.quarantined) == (17_379, 17_379, 0)
    assert (span[0], span[1]) == (datetime(2011, 1, 1, 0), datetime(2012, 12, 31, 23))
    assert span[2] == 3_292_679  # every rental of the two years
    assert rentals.select("system").distinct().collect()[0][0] == "capital_bikeshare"


def test_a_missing_hour_leaves_its_lag_null_instead_of_borrowing_a_neighbour(lake):
    # 2011-01-02 05:00 is one of the 165 hours missing from the published file.
    features = lake.read("rentals_hourly_features")
    after_gap = features.where(F.col("event_timestamp") == datetime(2011, 1, 2, 6)).first()

    assert lake.read("rentals").where(F.col("timestamp") == datetime(2011, 1, 2, 5)).count() == 0
    assert after_gap["rentals_lag_1h"] is None
    assert after_gap["rentals_lag_24h"] is not None
