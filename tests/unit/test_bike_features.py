"""Bike-sharing transforms on a hand-worked hourly frame: lags, windows and the same hours a
week ago, with a missing hour."""

from __future__ import annotations

from datetime import datetime

import pytest

from featurehouse.usecases.bike_sharing.features import HOURLY_FEATURES, with_rental_features
from tests.frames import H

START = datetime(2011, 1, 1)
GAP = 100  # hour 100 is missing, as 165 hours are in the published file
CONDITIONS = "holiday bigint, weekday bigint, workingday bigint, weathersit bigint"
WEATHER = "temp double, atemp double, hum double, windspeed double"


@pytest.fixture(scope="module")
def features(spark):
    rows = [
        ("capital_bikeshare", START + h * H, h % 24, h, 0, 6, 0, 1, 0.2, 0.3, 0.8, 0.1)
        for h in range(192)
        if h != GAP
    ]
    rentals = spark.createDataFrame(
        rows,
        f"system string, timestamp timestamp, hour bigint, cnt bigint, {CONDITIONS}, {WEATHER}",
    )
    frame = with_rental_features(rentals)
    return frame, {int((r["event_timestamp"] - START) / H): r for r in frame.collect()}


def test_the_same_six_hours_a_week_ago_are_the_seasonal_naive_forecast(features):
    _, by_hour = features
    # At t = 180 h: (t - 168h, t - 162h] holds hours 13..18.
    assert by_hour[180]["rentals_next_6h_week_ago"] == sum(range(13, 19))
    assert by_hour[180]["rentals_lag_168h"] == 12
    assert by_hour[167]["rentals_next_6h_week_ago"] == sum(range(0, 6))  # (-1h, 5h]
    assert by_hour[160]["rentals_next_6h_week_ago"] is None  # no hours a week back yet


def test_windows_and_lags_skip_the_missing_hour(features):
    _, by_hour = features
    assert by_hour[GAP + 1]["rentals_lag_1h"] is None
    assert by_hour[GAP + 1]["rentals_lag_24h"] == GAP + 1 - 24
    # (t - 6h, t] at t = 103 holds 98, 99, 101, 102, 103: hour 100 is missing.
    assert by_hour[103]["rentals_sum_6h"] == 98 + 99 + 101 + 102 + 103
    assert by_hour[180]["rentals_mean_24h"] == pytest.approx(sum(range(157, 181)) / 24)


def test_the_hourly_table_builds_its_declared_columns_in_order(features):
    frame, by_hour = features
    assert frame.columns == HOURLY_FEATURES.columns
    assert by_hour[30]["hour_of_day"] == 6
