"""Drift statistics computed from histograms: pure numpy/scipy, no Spark.

Spark reduces each window of a numeric column to counts (and sums of the values) in bins
whose edges are the reference window's quantiles (`featurehouse.monitoring.spark_drift`), and
each window of a categorical column to counts per category. Everything here works on those
small arrays, so the statistics are tested against scipy on small samples without a cluster.

Bins are closed on the right: with sorted edges ``e_1 < ... < e_k``, bin 0 is ``(-inf, e_1]``,
bin ``j`` is ``(e_j, e_{j+1}]`` and bin ``k`` is ``(e_k, +inf)``. So the cumulative count up to
bin ``j`` is exactly the number of values ``<= e_{j+1}``: the empirical CDF at every edge is
exact, only what happens strictly between two edges is unknown.

How close the binned statistics are to the ones on the raw values:

- **KS statistic.** ``D_grid = max_j |F_r(e_j) - F_c(e_j)|`` is the exact CDF gap at every edge,
  hence a lower bound of the two-sample statistic ``D``. Inside a bin both CDFs are monotone, so
  ``D <= D_grid + max_j min(p_r,j, p_c,j)``, where ``p_r,j`` and ``p_c,j`` are the reference's
  and current's shares of bin ``j`` (the gap can grow inside a bin by no more than the smaller
  mass that enters it). `ks_on_grid` returns ``D_grid`` and the tighter per-bin version of that
  bound. With edges at the reference's percentiles (100 bins) the bound is about 0.01 for a
  continuous column, and 0 for a discrete one whose values are all edges.
- **Wasserstein distance.** ``W = integral |F_r - F_c| dx``. With each bin's count and sum of
  values, ``integral F`` over any bin is exact (sum of ``(edge - x_i) / n`` over its values),
  so ``sum_bins |integral_bin (F_r - F_c) dx|`` is exact whenever ``F_r - F_c`` keeps its sign
  within each bin (a shift, a change of scale away from the crossing point) and otherwise a
  lower bound, low by twice the smaller signed area inside the bins where the sign changes.
- **PSI, KL divergence, Jensen-Shannon distance** are defined on bins in the first place: here
  the reference's deciles (``bins`` quantile bins), the usual choice for PSI.
- **Categorical statistics** are exact: the counts per category are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial import distance

EMPTY_BIN_SHARE = 1e-4
"""Share given to an empty bin in PSI and KL divergence so ln(c / r) stays finite: small enough
not to mask real drift (the value Evidently uses above 1e-4)."""

WASSERSTEIN_MIN_SCALE = 1e-3
"""Floor of the reference's standard deviation that normalises the Wasserstein distance, as in
Evidently: a constant reference column would otherwise divide by zero."""


@dataclass(frozen=True)
class KsResult:
    statistic: float
    """Largest gap between the empirical CDFs over the bin edges: exact at the edges, a lower
    bound of the two-sample KS statistic."""
    error_bound: float
    """The two-sample statistic is at most ``statistic + error_bound``."""
    pvalue: float


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total (all zeros stay zeros)."""
    counts = np.asarray(counts, dtype="float64")
    total = counts.sum()
    return counts / total if total > 0 else counts


def ks_on_grid(reference_counts, current_counts) -> KsResult:
    """KS statistic, its error bound and p-value from counts in the same right-closed bins.

    The p-value is the two-sided asymptotic one (Smirnov's distribution with ``n m / (n + m)``
    observations, what `scipy.stats.ks_2samp` uses with ``method="asymp"`` and, above 10,000
    values per side, by default).
    """
    reference = np.asarray(reference_counts, dtype="float64")
    current = np.asarray(current_counts, dtype="float64")
    _require_same_bins(reference, current)
    n, m = reference.sum(), current.sum()
    _require_values(n, m)
    p_r, p_c = reference / n, current / m
    # CDF gap at the right edge of every bin; the last bin's right edge is +inf (gap 0).
    gap_right = np.cumsum(p_r) - np.cumsum(p_c)
    gap_right[-1] = 0.0
    gap_left = np.concatenate([[0.0], gap_right[:-1]])
    statistic = float(np.max(np.abs(gap_right)))
    # Inside bin j: F_r - F_c <= min(gap_right + p_c, gap_left + p_r), and symmetrically.
    above = np.minimum(gap_right + p_c, gap_left + p_r)
    below = np.minimum(-gap_right + p_r, -gap_left + p_c)
    upper = max(statistic, float(np.max(np.maximum(above, below))))
    return KsResult(statistic, upper - statistic, ks_pvalue(statistic, int(n), int(m)))


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Two-sided asymptotic p-value of a two-sample KS statistic for samples of n and m values."""
    big, small = max(n, m), min(n, m)
    effective = round(big * small / (big + small))
    return float(stats.kstwo.sf(statistic, max(effective, 1)))


def wasserstein_on_grid(
    edges, reference_counts, reference_sums, current_counts, current_sums
) -> float:
    """Wasserstein-1 distance from counts and sums of values in right-closed bins on `edges`.

    Exact when ``F_r - F_c`` keeps its sign inside every bin, a lower bound otherwise (see the
    module docstring).
    """
    edges = np.asarray(edges, dtype="float64")
    area_r = _cdf_areas(edges, reference_counts, reference_sums)
    area_c = _cdf_areas(edges, current_counts, current_sums)
    return float(np.sum(np.abs(area_r - area_c)))


def _cdf_areas(edges: np.ndarray, counts, sums) -> np.ndarray:
    """Per bin, the integral of the empirical CDF F over the bin (for the last, open bin: the
    integral of F - 1, so every entry is finite and differences of two windows are exact).

    Bin 0 = (-inf, e_1]: sum over its values of (e_1 - x) / n.
    Bin j = (e_j, e_j+1]: F(e_j) (e_j+1 - e_j) + sum over its values of (e_j+1 - x) / n.
    Bin k = (e_k, +inf): -(sum over its values of (x - e_k)) / n.
    """
    counts = np.asarray(counts, dtype="float64")
    sums = np.asarray(sums, dtype="float64")
    if counts.size != edges.size + 1 or sums.size != counts.size:
        raise ValueError(
            f"{edges.size} edges need {edges.size + 1} bins, got {counts.size} counts"
            f" and {sums.size} sums"
        )
    n = counts.sum()
    _require_values(n, n)
    areas = np.empty(counts.size)
    if edges.size == 0:
        # One bin holds everything: both CDFs' areas are measured from 0.
        areas[0] = -sums[0] / n
        return areas
    cdf_left = np.concatenate([[0.0], np.cumsum(counts)[:-1]]) / n
    right = edges
    left = np.concatenate([[right[0]], right[:-1]])
    areas[:-1] = cdf_left[:-1] * (right - left) + (counts[:-1] * right - sums[:-1]) / n
    areas[-1] = -(sums[-1] - counts[-1] * edges[-1]) / n
    return areas


def normalised_wasserstein(distance_value: float, reference_std: float) -> float:
    """The Wasserstein distance in units of the reference's standard deviation (population),
    floored at `WASSERSTEIN_MIN_SCALE` as Evidently does."""
    return float(distance_value / max(reference_std, WASSERSTEIN_MIN_SCALE))


def population_stability_index(reference_counts, current_counts) -> float:
    """``sum_i (c_i - r_i) ln(c_i / r_i)`` over the bins' shares, empty bins at `EMPTY_BIN_SHARE`.

    It is the symmetric KL divergence of the binned distributions: 0 when they match.
    """
    r, c = _floored_shares(reference_counts, current_counts)
    return float(np.sum((c - r) * np.log(c / r)))


def kl_divergence(reference_counts, current_counts) -> float:
    """KL divergence of the current binned distribution from the reference's,
    ``sum_i r_i ln(r_i / c_i)`` (as `scipy.stats.entropy(r, c)`), empty bins at
    `EMPTY_BIN_SHARE`."""
    r, c = _floored_shares(reference_counts, current_counts)
    return float(np.sum(r * np.log(r / c)))


def jensenshannon_distance(reference_counts, current_counts) -> float:
    """Jensen-Shannon distance (the square root of the divergence, natural log): 0 for equal
    distributions, at most sqrt(ln 2) for disjoint ones. Needs no flooring of empty bins."""
    r, c = _shares_pair(reference_counts, current_counts)
    return float(distance.jensenshannon(r, c))


@dataclass(frozen=True)
class CategoricalResult:
    chi2_statistic: float
    chi2_pvalue: float
    total_variation: float
    l_infinity: float
    jensenshannon: float


def categorical_drift(reference_counts, current_counts) -> CategoricalResult:
    """Statistics of two windows' counts over the same categories (absent: count 0).

    Chi-square is the test of homogeneity of the 2 x k table (both windows sampled, no
    continuity correction), so a category never seen in the reference is fine: its expected
    count comes from both windows. Total variation is half the L1 distance of the shares,
    L-infinity their largest difference.
    """
    reference = np.asarray(reference_counts, dtype="float64")
    current = np.asarray(current_counts, dtype="float64")
    _require_same_bins(reference, current)
    _require_values(reference.sum(), current.sum())
    statistic, pvalue = chi_square_homogeneity(reference, current)
    r, c = shares(reference), shares(current)
    return CategoricalResult(
        chi2_statistic=statistic,
        chi2_pvalue=pvalue,
        total_variation=float(0.5 * np.abs(r - c).sum()),
        l_infinity=float(np.abs(r - c).max()),
        jensenshannon=float(distance.jensenshannon(r, c)),
    )


def chi_square_homogeneity(reference_counts, current_counts) -> tuple[float, float]:
    """Pearson's chi-square statistic and p-value of the 2 x k table of counts, as
    `scipy.stats.chi2_contingency(..., correction=False)`; categories empty in both windows are
    left out. With one category there is nothing to compare: statistic 0, p-value 1."""
    table = np.vstack([reference_counts, current_counts]).astype("float64")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, table.shape[1] - 1))


def coarsen(counts, fine_edges, coarse_edges) -> np.ndarray:
    """Counts in the bins of `fine_edges`, summed into the bins of `coarse_edges`, a subset of
    them: fine bin j (closing at fine edge j, or open) lies in coarse bin #(coarse edges < its
    right edge)."""
    counts = np.asarray(counts, dtype="float64")
    fine_edges = np.asarray(fine_edges, dtype="float64")
    coarse_edges = np.asarray(coarse_edges, dtype="float64")
    if not np.isin(coarse_edges, fine_edges).all():
        raise ValueError("coarse edges must be a subset of the fine edges")
    right_edges = np.concatenate([fine_edges, [np.inf]])
    target = np.searchsorted(coarse_edges, right_edges, side="left")
    return np.bincount(target, weights=counts, minlength=coarse_edges.size + 1)


def _floored_shares(reference_counts, current_counts) -> tuple[np.ndarray, np.ndarray]:
    r, c = _shares_pair(reference_counts, current_counts)
    return np.where(r == 0, EMPTY_BIN_SHARE, r), np.where(c == 0, EMPTY_BIN_SHARE, c)


def _shares_pair(reference_counts, current_counts) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference_counts, dtype="float64")
    current = np.asarray(current_counts, dtype="float64")
    _require_same_bins(reference, current)
    _require_values(reference.sum(), current.sum())
    return shares(reference), shares(current)


def _require_same_bins(reference: np.ndarray, current: np.ndarray) -> None:
    if reference.shape != current.shape or reference.ndim != 1:
        raise ValueError(
            f"reference and current counts must be two vectors over the same bins, got"
            f" shapes {reference.shape} and {current.shape}"
        )


def _require_values(n: float, m: float) -> None:
    for name, total in (("reference", n), ("current", m)):
        if total <= 0:
            raise ValueError(f"{name} has no non-null values")
