"""Drift statistics between a reference sample and a current sample.

Pure numpy/scipy code on bounded samples: callers collect the windows from Spark into pandas
first, so these functions stay cheap to test and independent of any cluster.

Each column gets two complementary tests. The population stability index (PSI) measures how far
the mass moved between the reference's quantile bins, which stays meaningful on large samples.
The two-sample Kolmogorov-Smirnov test catches shape changes PSI's coarse bins can hide, but on
big samples its p-value flags shifts too small to matter, so a column only counts as KS-drifted
when the statistic itself (the largest CDF gap) is also large.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

PSI_EPSILON = 1e-4
"""Proportion given to empty bins so ln(c / r) stays finite; small enough not to mask real drift."""

KINDS = ("feature", "prediction")


@dataclass(frozen=True)
class DriftThresholds:
    """When a column, and the dataset as a whole, counts as drifted."""

    psi: float = 0.2
    """PSI at or above this means the column drifted."""
    ks_pvalue: float = 0.01
    """KS p-value below this, together with ``ks_statistic``, means the column drifted."""
    ks_statistic: float = 0.1
    """KS statistic at or above this is required too: p-values alone flag trivial shifts on big
    samples."""
    drift_share: float = 0.3
    """The dataset drifted when at least this share of feature columns drifted, or the prediction
    column drifted."""

    def __post_init__(self) -> None:
        if self.psi < 0:
            raise ValueError(f"psi threshold must be non-negative, got {self.psi}")
        if not 0 < self.ks_pvalue < 1:
            raise ValueError(f"ks_pvalue threshold must be in (0, 1), got {self.ks_pvalue}")
        if not 0 <= self.ks_statistic <= 1:
            raise ValueError(f"ks_statistic threshold must be in [0, 1], got {self.ks_statistic}")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")


@dataclass(frozen=True)
class ColumnDrift:
    """Drift verdict for one column.

    Statistics are None when either side has no non-null values: such a column cannot be assessed,
    so it is reported (an empty column is itself worth seeing) but not counted as drifted.
    """

    column: str
    kind: str
    """"feature" or "prediction"."""
    reference_rows: int
    """Non-null reference values used."""
    current_rows: int
    """Non-null current values used."""
    ks_statistic: float | None
    ks_pvalue: float | None
    psi: float | None
    drifted: bool


def population_stability_index(reference: Any, current: Any, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)``, where ``r_i`` and ``c_i`` are the proportions of
    the reference and current values falling in bin ``i``. It is the symmetric KL divergence
    between the binned distributions: 0 when they match, growing as mass moves between bins.
    Empty bins get proportion ``PSI_EPSILON`` (1e-4) instead of 0 so the log stays finite.

    The bins come from the reference alone so that the measure is anchored to what the model was
    trained or validated on: the edges are the reference's ``1/bins`` quantiles, deduplicated so
    constant and low-cardinality columns still yield valid (just fewer) bins, and the outer bins
    are open, ``(-inf, q_1]`` and ``(q_last, +inf)``, so current values outside the reference range
    are counted rather than dropped. Bins are closed on the right, like ``pandas.cut``, so a value
    equal to an edge falls in the lower bin.

    NaN (and other nulls) are ignored on both sides.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    reference_values = _non_null(reference)
    current_values = _non_null(current)
    _require_values(reference_values, current_values)
    inner_edges = _quantile_edges(reference_values, bins)
    reference_share = _bin_proportions(reference_values, inner_edges)
    current_share = _bin_proportions(current_values, inner_edges)
    return float(
        np.sum((current_share - reference_share) * np.log(current_share / reference_share))
    )


def ks_test(reference: Any, current: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value, ignoring NaN.

    The statistic is the largest gap between the two empirical CDFs, so unlike PSI it does not
    depend on a binning choice.
    """
    reference_values = _non_null(reference)
    current_values = _non_null(current)
    _require_values(reference_values, current_values)
    result = stats.ks_2samp(reference_values, current_values)
    return float(result.statistic), float(result.pvalue)


def column_drift(
    reference: pd.Series,
    current: pd.Series,
    *,
    column: str,
    kind: str,
    thresholds: DriftThresholds,
) -> ColumnDrift:
    """PSI and KS statistics for one column, and whether they cross ``thresholds``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    reference_values = _non_null(reference)
    current_values = _non_null(current)
    if reference_values.size == 0 or current_values.size == 0:
        return ColumnDrift(
            column=column,
            kind=kind,
            reference_rows=int(reference_values.size),
            current_rows=int(current_values.size),
            ks_statistic=None,
            ks_pvalue=None,
            psi=None,
            drifted=False,
        )
    ks_statistic, ks_pvalue = ks_test(reference_values, current_values)
    psi = population_stability_index(reference_values, current_values)
    return ColumnDrift(
        column=column,
        kind=kind,
        reference_rows=int(reference_values.size),
        current_rows=int(current_values.size),
        ks_statistic=ks_statistic,
        ks_pvalue=ks_pvalue,
        psi=psi,
        drifted=_is_drifted(psi, ks_statistic, ks_pvalue, thresholds),
    )


def compare_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    feature_columns: Sequence[str],
    prediction_column: str | None,
    thresholds: DriftThresholds,
) -> list[ColumnDrift]:
    """One ``ColumnDrift`` per feature column, in the given order, then the prediction column.

    Every column is checked against both frames before any statistic is computed, so a
    misconfigured column list fails fast instead of after a partial report.
    """
    columns = [(name, "feature") for name in feature_columns]
    if prediction_column is not None:
        columns.append((prediction_column, "prediction"))
    names = [name for name, _ in columns]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        # A repeated feature would be counted twice in the dataset drift share.
        raise ValueError(f"columns requested more than once: {duplicated}")
    for frame_name, frame in (("reference", reference), ("current", current)):
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise ValueError(f"columns missing from the {frame_name} frame: {missing}")
    return [
        column_drift(reference[name], current[name], column=name, kind=kind, thresholds=thresholds)
        for name, kind in columns
    ]


def dataset_drifted(results: Sequence[ColumnDrift], thresholds: DriftThresholds) -> bool:
    """Whether the dataset as a whole drifted.

    A drifted prediction column is enough on its own: it is what the business consumes. Otherwise
    at least ``thresholds.drift_share`` of all feature columns must have drifted; columns that could
    not be assessed (no non-null values) count in the denominator, not as drifted.
    """
    if any(result.drifted for result in results if result.kind == "prediction"):
        return True
    features = [result for result in results if result.kind == "feature"]
    if not features:
        return False
    drifted = sum(result.drifted for result in features)
    # Compare the share, not drifted >= share * n: 0.3 * 10 is 3.0000000000000004 in floating point.
    return drifted / len(features) >= thresholds.drift_share


def _is_drifted(
    psi: float, ks_statistic: float, ks_pvalue: float, thresholds: DriftThresholds
) -> bool:
    ks_drifted = ks_pvalue < thresholds.ks_pvalue and ks_statistic >= thresholds.ks_statistic
    return psi >= thresholds.psi or ks_drifted


def _non_null(values: Any) -> np.ndarray:
    """Values as float64 without nulls; pandas handles nullable dtypes (pd.NA) on the way."""
    array = pd.Series(values).to_numpy(dtype="float64", na_value=np.nan)
    return array[~np.isnan(array)]


def _require_values(reference: np.ndarray, current: np.ndarray) -> None:
    for name, values in (("reference", reference), ("current", current)):
        if values.size == 0:
            raise ValueError(f"{name} has no non-null values")


def _quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's interior quantiles, sorted and deduplicated.

    The minimum and maximum are left out because the outer bins are open-ended.
    """
    interior = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.unique(np.quantile(reference, interior))


def _bin_proportions(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each right-closed bin, with empty bins raised to ``PSI_EPSILON``."""
    # side="left" puts a value equal to an edge in the bin that edge closes: (edge_prev, edge].
    bin_index = np.searchsorted(inner_edges, values, side="left")
    counts = np.bincount(bin_index, minlength=inner_edges.size + 1)
    proportions = counts / values.size
    return np.where(proportions == 0, PSI_EPSILON, proportions)
