"""Classical per-entity forecasters (Holt-Winters, seasonal ARIMA) as feature columns.

The forecast on a row at day d is the sum of the model's forecasts for the `horizon` days
after d, made from the entity's series up to and including d. Parameters are fitted by
maximum likelihood every `refit_every` days, each time on the history before that day
only; between refits the fitted model runs forward over each new day with its parameters
fixed (the Kalman filter). So no forecast uses a later observation, not even through its
parameters, and a full build, an incremental one and a backfill give the same values.

Days with no row are missing observations (the filter skips them), not zeros. An entity
with less than `min_history` days before a refit, or whose fit fails (a constant series,
a likelihood that does not converge to finite values), has no forecast until the next
refit that succeeds: the column is null there, never a guess.

The entities are fitted in parallel on Spark with a grouped pandas function, one group
per entity; the per-entity work is plain statsmodels on numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import DataFrame

# Imported here, not in the model functions: statsmodels turns its convergence warnings
# back on when first imported, which would undo the filter around a fit.
from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
from statsmodels.tsa.statespace.sarimax import SARIMAX

from featurehouse.usecase import EVENT_TIMESTAMP


def holt_winters(values: np.ndarray, season: int):
    """Additive Holt-Winters (level, trend, season) in its state-space form. Its initial
    states come from the first seasons of the series ("simple"), so running it forward on a
    longer series starts from the same states: estimated or concentrated initial states
    would be re-estimated from the days after the fit."""
    return ExponentialSmoothing(values, trend=True, seasonal=season, initialization_method="simple")


def seasonal_arima(values: np.ndarray, season: int):
    """The "airline" seasonal ARIMA (0,1,1)(0,1,1)_season: one day's and one season's
    difference, each with a moving-average term."""
    return SARIMAX(
        values, order=(0, 1, 1), seasonal_order=(0, 1, 1, season), concentrate_scale=True
    )


@dataclass(frozen=True)
class SeriesForecaster:
    """One forecast column: its name and the statsmodels state-space model it fits."""

    name: str
    model: Callable[[np.ndarray, int], object]


@dataclass(frozen=True)
class ForecastSettings:
    horizon: int  # days summed after d
    season: int  # the seasonal period, in days
    refit_every: int  # days between fits
    min_history: int  # days of history a fit needs


def horizon_sums(results, horizon: int) -> np.ndarray:
    """For every day t of a fitted state-space model's sample, the sum of its forecasts of
    days t+1 .. t+horizon made at t.

    From the filter's one-step predicted state a(t+1|t) and the system matrices (constant
    over time): a(t+h|t) = T^(h-1) a(t+1|t) + sum_{j<h-1} T^j c, forecast Z a(t+h|t) + d.
    One matrix product for all days, where calling `forecast` from each day would refilter
    the series once per day.
    """
    f = results.filter_results
    design, transition = _constant(f.design), _constant(f.transition)
    state_intercept, obs_intercept = _constant(f.state_intercept), _constant(f.obs_intercept)
    k = transition.shape[0]
    power, pending, states, intercepts = np.eye(k), np.zeros(k), np.zeros((k, k)), np.zeros(k)
    for _ in range(horizon):
        states += power
        intercepts += pending
        pending = pending + power @ state_intercept
        power = transition @ power
    ahead = states @ f.predicted_state[:, 1:] + intercepts[:, None]
    return (design @ ahead)[0] + horizon * obs_intercept[0]


def _constant(matrix: np.ndarray) -> np.ndarray:
    """A system matrix's value, which must not change over time (its last axis)."""
    if not np.allclose(matrix, matrix[..., :1]):
        raise ValueError("the state-space system changes over time")
    return matrix[..., 0]


def rolling_forecasts(
    values: np.ndarray, forecaster: SeriesForecaster, settings: ForecastSettings
) -> np.ndarray:
    """`horizon_sums` at every day of a daily series (NaN where a day has no value), with
    the parameters refitted every `refit_every` days on the days before only."""
    out = np.full(len(values), np.nan)
    observed = np.cumsum(~np.isnan(values))
    for start in range(settings.min_history, len(values), settings.refit_every):
        end = min(start + settings.refit_every, len(values))
        if observed[start - 1] < settings.min_history:
            continue
        try:
            with warnings.catch_warnings():
                # Convergence and starting-value warnings: a failed fit shows as non-finite
                # sums below, and the column stays null.
                warnings.simplefilter("ignore")
                fitted = forecaster.model(values[:start], settings.season).fit(disp=False)
                sums = horizon_sums(fitted.apply(values[:end]), settings.horizon)
        except (ValueError, np.linalg.LinAlgError):
            continue
        block = sums[start:end]
        out[start:end] = np.where(np.isfinite(block), block, np.nan)
    return out


def entity_forecasts(
    rows: pd.DataFrame,
    keys: Sequence[str],
    value: str,
    forecasters: Sequence[SeriesForecaster],
    settings: ForecastSettings,
) -> pd.DataFrame:
    """One entity's rows (keys, event timestamp, value; one row per day) -> the same rows
    with a column per forecaster. Missing days are missing observations, not zeros."""
    rows = rows.sort_values(EVENT_TIMESTAMP).drop_duplicates(EVENT_TIMESTAMP, keep="last")
    day = rows[EVENT_TIMESTAMP].dt.normalize()
    days = pd.date_range(day.iloc[0], day.iloc[-1], freq="D")
    series = pd.Series(rows[value].to_numpy(dtype=float), index=day).reindex(days).to_numpy()
    position = days.get_indexer(day)
    out = rows[[*keys, EVENT_TIMESTAMP]].reset_index(drop=True)
    for forecaster in forecasters:
        out[forecaster.name] = rolling_forecasts(series, forecaster, settings)[position]
    return out


def with_series_forecasts(
    daily: DataFrame,
    keys: Sequence[str],
    value: str,
    forecasters: Sequence[SeriesForecaster],
    settings: ForecastSettings,
) -> DataFrame:
    """Per entity in parallel (a grouped pandas function): `daily` (keys, event timestamp,
    value; one row per day) -> (keys, event timestamp, one forecast column per forecaster)."""
    schema = ", ".join(
        [
            *(f"{k} {daily.schema[k].dataType.simpleString()}" for k in keys),
            f"{EVENT_TIMESTAMP} timestamp",
            *(f"{f.name} double" for f in forecasters),
        ]
    )

    def compute(rows: pd.DataFrame) -> pd.DataFrame:
        return entity_forecasts(rows, keys, value, forecasters, settings)

    rows = daily.select(*keys, EVENT_TIMESTAMP, F.col(value).cast("double").alias(value))
    return rows.groupBy(*keys).applyInPandas(compute, schema)
