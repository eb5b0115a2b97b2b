"""The classical per-entity forecasters: every day's 7-day sum equals statsmodels' own
forecast from that day, no forecast reads a later day, and a series with gaps, duplicate
days, a constant stretch or too little history gets nulls where it cannot be forecast,
not a crash."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from featurehouse.features.forecasts import (
    ForecastSettings,
    SeriesForecaster,
    entity_forecasts,
    holt_winters,
    rolling_forecasts,
    seasonal_arima,
)
from featurehouse.training.models import ColumnForecast
from featurehouse.usecase import EVENT_TIMESTAMP

SETTINGS = ForecastSettings(horizon=7, season=7, refit_every=70, min_history=42)
FORECASTERS = {
    "holt_winters": SeriesForecaster("hw", holt_winters),
    "seasonal_arima": SeriesForecaster("arima", seasonal_arima),
}


def weekly_series(days: int = 182, seed: int = 1) -> np.ndarray:
    """Daily units with a weekly pattern, a slow trend and Poisson noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    mean = 20 + 0.02 * t + 6 * np.sin(2 * np.pi * t / 7)
    return rng.poisson(mean).astype(float)


def next_days_sum(values: np.ndarray, horizon: int) -> np.ndarray:
    return np.array(
        [values[t + 1 : t + 1 + horizon].sum() if t + horizon < len(values) else np.nan
         for t in range(len(values))]
    )  # fmt: skip


@pytest.mark.parametrize("name", FORECASTERS)
def test_each_days_sum_is_statsmodels_forecast_from_that_day(name):
    values = weekly_series()
    forecaster = FORECASTERS[name]

    sums = rolling_forecasts(values, forecaster, SETTINGS)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for start in (42, 112):  # a refit day: fitted on the days before it only
            fitted = forecaster.model(values[:start], 7).fit(disp=False)
            for day in (start, start + 1, start + 33, min(start + 69, len(values) - 1)):
                direct = fitted.apply(values[: day + 1]).forecast(7).sum()
                assert sums[day] == pytest.approx(direct, rel=1e-9), (start, day)
    assert np.isnan(sums[:42]).all()  # less history than a fit needs
    assert np.isfinite(sums[42:]).all()


@pytest.mark.parametrize("name", FORECASTERS)
def test_a_forecast_never_reads_a_later_day(name):
    values = weekly_series()
    changed = values.copy()
    changed[120:] *= 3  # everything after day 119 is different

    before = rolling_forecasts(values, FORECASTERS[name], SETTINGS)
    after = rolling_forecasts(changed, FORECASTERS[name], SETTINGS)

    np.testing.assert_array_equal(before[:120], after[:120])
    assert not np.allclose(before[120:], after[120:])


@pytest.mark.parametrize("name", FORECASTERS)
def test_the_forecasters_beat_the_same_days_last_week_on_a_seasonal_series(name):
    values = weekly_series(days=364)
    actual = next_days_sum(values, 7)
    naive = pd.Series(values).rolling(7, min_periods=1).sum().to_numpy()

    sums = rolling_forecasts(values, FORECASTERS[name], SETTINGS)

    known = np.isfinite(sums) & np.isfinite(actual)
    model_rmse = np.sqrt(np.mean((sums[known] - actual[known]) ** 2))
    naive_rmse = np.sqrt(np.mean((naive[known] - actual[known]) ** 2))
    assert model_rmse < naive_rmse


def entity_rows(values: np.ndarray, start: str = "2024-01-01") -> pd.DataFrame:
    days = pd.date_range(start, periods=len(values), freq="D")
    return pd.DataFrame({"store_id": 1, "item_id": 2, EVENT_TIMESTAMP: days, "units": values})


def forecasts_of(rows: pd.DataFrame) -> pd.DataFrame:
    return entity_forecasts(
        rows, ["store_id", "item_id"], "units", list(FORECASTERS.values()), SETTINGS
    )


def test_missing_days_are_missing_observations_and_get_no_row():
    values = weekly_series()
    rows = entity_rows(values)
    gappy = rows.drop(index=range(60, 65))  # five days without a row

    out = forecasts_of(gappy)

    assert list(out[EVENT_TIMESTAMP]) == list(gappy[EVENT_TIMESTAMP])
    assert list(out.columns) == ["store_id", "item_id", EVENT_TIMESTAMP, "hw", "arima"]
    with_gap = values.copy()
    with_gap[60:65] = np.nan
    expected = rolling_forecasts(with_gap, FORECASTERS["holt_winters"], SETTINGS)
    np.testing.assert_allclose(out["hw"].to_numpy(), np.delete(expected, range(60, 65)))
    assert out.loc[out[EVENT_TIMESTAMP] >= "2024-02-12", ["hw", "arima"]].notna().all().all()


def test_a_duplicate_day_keeps_one_row_and_the_order_of_rows_does_not_matter():
    rows = entity_rows(weekly_series())
    shuffled = pd.concat([rows, rows.iloc[[100]]]).sample(frac=1, random_state=0)

    out = forecasts_of(shuffled)

    pd.testing.assert_frame_equal(out, forecasts_of(rows))


def test_too_little_history_gives_nulls_not_an_error():
    out = forecasts_of(entity_rows(weekly_series(days=30)))

    assert len(out) == 30
    assert out[["hw", "arima"]].isna().all().all()


def test_a_constant_series_does_not_stop_the_job():
    out = forecasts_of(entity_rows(np.full(120, 5.0)))

    assert len(out) == 120
    assert np.allclose(out.loc[42:, ["hw", "arima"]], 35.0)


def test_a_column_forecast_predicts_its_column_and_falls_back_where_it_is_null():
    features = pd.DataFrame({"hw": [10.0, np.nan, 12.0], "naive": [9.0, 8.0, 7.0]})

    model = ColumnForecast("hw", fallback="naive").fit(features, [1.0, 2.0, 3.0])

    np.testing.assert_array_equal(model.predict(features), [10.0, 8.0, 12.0])
    assert list(model.feature_names_in_) == ["hw", "naive"]
