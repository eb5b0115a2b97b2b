"""Drift verdicts: every statistic per column, window comparison and slice, the verdict of
each column, and the verdict of the dataset.

The statistics come from `featurehouse.monitoring.statistics` on what
`featurehouse.monitoring.spark_drift.measure` counted over the whole windows. Which statistic
decides a column's verdict is configurable (`DriftThresholds.numeric_test`,
`categorical_test`); every statistic is reported either way.

Default verdicts. A numeric column drifted when its PSI (reference deciles) reaches `psi`, or
when the KS test is significant (p below `ks_pvalue`) *and* its statistic reaches
`ks_statistic`: on whole windows of many thousand rows, p-values alone flag shifts too small
to matter. A categorical column drifted when the chi-square test is significant and the total
variation distance reaches `total_variation`, for the same reason.

Columns that cannot be compared get a status instead of statistics, never a silent pass:

- ``no_rows``: the current window (or slice) has no rows; ``no_reference_rows``: the reference
  has none. Not assessed (``drifted`` is None).
- ``all_null``: null in every row of both windows. Not assessed.
- ``all_null_current`` / ``all_null_reference``: null in every row of one window while the
  other has values. Drifted: a feature that stops (or starts) arriving is drift.

A constant column is compared like any other (its one bin edge is its value), with a note; a
category the reference never had is listed in ``unseen_categories``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from featurehouse.monitoring import statistics as st
from featurehouse.monitoring.spark_drift import (
    ALL,
    CATEGORICAL,
    NUMERIC,
    Measurements,
    MonitoredColumn,
    SliceId,
)

NUMERIC_TESTS = ("psi_or_ks", "ks", "wasserstein", "psi", "kl_divergence", "jensenshannon")
CATEGORICAL_TESTS = ("chi2_and_tv", "chi2", "total_variation", "l_infinity", "jensenshannon")

ASSESSED = "assessed"
NO_ROWS = "no_rows"
NO_REFERENCE_ROWS = "no_reference_rows"
ALL_NULL = "all_null"
ALL_NULL_CURRENT = "all_null_current"
ALL_NULL_REFERENCE = "all_null_reference"


@dataclass(frozen=True)
class DriftThresholds:
    """When a column, and the dataset as a whole, counts as drifted."""

    psi: float = 0.2
    ks_pvalue: float = 0.01
    ks_statistic: float = 0.1
    """For "psi_or_ks": the KS statistic must reach this too."""
    wasserstein: float = 0.1
    """Normalised Wasserstein distance (in reference standard deviations)."""
    kl_divergence: float = 0.1
    jensenshannon: float = 0.1
    chi2_pvalue: float = 0.01
    total_variation: float = 0.1
    """For "chi2_and_tv" and "total_variation"."""
    l_infinity: float = 0.1
    drift_share: float = 0.3
    """The dataset drifted when at least this share of feature columns drifted, or the
    prediction column drifted."""
    numeric_test: str = "psi_or_ks"
    categorical_test: str = "chi2_and_tv"

    def __post_init__(self) -> None:
        for name in ("psi", "wasserstein", "kl_divergence", "jensenshannon"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} threshold must be positive, got {getattr(self, name)}")
        for name in ("ks_pvalue", "chi2_pvalue"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} threshold must be in (0, 1), got {getattr(self, name)}")
        for name in ("ks_statistic", "total_variation", "l_infinity"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} threshold must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.numeric_test not in NUMERIC_TESTS:
            raise ValueError(
                f"numeric_test must be one of {NUMERIC_TESTS}, got {self.numeric_test!r}"
            )
        if self.categorical_test not in CATEGORICAL_TESTS:
            raise ValueError(
                f"categorical_test must be one of {CATEGORICAL_TESTS}, got {self.categorical_test!r}"
            )

    def test_of(self, data_type: str) -> str:
        return self.numeric_test if data_type == NUMERIC else self.categorical_test


@dataclass(frozen=True)
class ColumnDrift:
    """One column of one slice, current window against a reference window."""

    column: str
    kind: str
    """"feature" or "prediction"."""
    data_type: str
    """"numeric" or "categorical"."""
    comparison: str
    """E.g. "baseline" (against the training reference) or "consecutive" (previous window)."""
    reference_window: str
    current_window: str
    slice_key: str | None
    slice_value: str | None
    reference_rows: int
    """Non-null reference values."""
    current_rows: int
    """Non-null current values."""
    status: str
    drifted: bool | None
    """None when the column could not be assessed (see the module docstring)."""
    test: str
    """The test that decides `drifted`."""
    note: str | None = None
    ks_statistic: float | None = None
    ks_error_bound: float | None = None
    ks_pvalue: float | None = None
    psi: float | None = None
    kl_divergence: float | None = None
    jensenshannon: float | None = None
    wasserstein: float | None = None
    wasserstein_normalised: float | None = None
    chi2_statistic: float | None = None
    chi2_pvalue: float | None = None
    total_variation: float | None = None
    l_infinity: float | None = None
    unseen_categories: tuple[str, ...] = field(default_factory=tuple)

    @property
    def assessed(self) -> bool:
        return self.drifted is not None


def compare(
    measurements: Measurements,
    *,
    reference: str,
    current: str,
    comparison: str,
    thresholds: DriftThresholds,
) -> list[ColumnDrift]:
    """Every column of every slice (the whole window first), `current` against `reference`,
    which must have been one of the measurement's reference windows."""
    results = []
    for slice_id in measurements.slice_ids([reference, current]):
        for column in measurements.columns:
            results.append(
                column_drift(
                    measurements,
                    column,
                    slice_id,
                    reference=reference,
                    current=current,
                    comparison=comparison,
                    thresholds=thresholds,
                )
            )
    return results


def column_drift(
    measurements: Measurements,
    column: MonitoredColumn,
    slice_id: SliceId = ALL,
    *,
    reference: str,
    current: str,
    comparison: str,
    thresholds: DriftThresholds,
) -> ColumnDrift:
    ref = measurements.profile(reference, slice_id, column.name)
    cur = measurements.profile(current, slice_id, column.name)
    base = {
        "column": column.name,
        "kind": column.kind,
        "data_type": column.data_type,
        "comparison": comparison,
        "reference_window": reference,
        "current_window": current,
        "slice_key": slice_id[0],
        "slice_value": slice_id[1],
        "reference_rows": ref.count,
        "current_rows": cur.count,
        "test": thresholds.test_of(column.data_type),
    }
    where = "" if slice_id == ALL else f" for {slice_id[0]} = {slice_id[1]}"
    if cur.rows == 0:
        return ColumnDrift(
            **base, status=NO_ROWS, drifted=None, note=f"the {current} window has no rows{where}"
        )
    if ref.rows == 0:
        return ColumnDrift(
            **base,
            status=NO_REFERENCE_ROWS,
            drifted=None,
            note=f"the {reference} window has no rows{where}",
        )
    if ref.count == 0 and cur.count == 0:
        return ColumnDrift(
            **base, status=ALL_NULL, drifted=None, note=f"null in every row of both windows{where}"
        )
    if cur.count == 0:
        return ColumnDrift(
            **base,
            status=ALL_NULL_CURRENT,
            drifted=True,
            note=f"null in all {cur.rows} rows of the {current} window{where};"
            f" the {reference} window has {ref.count} values",
        )
    if ref.count == 0:
        return ColumnDrift(
            **base,
            status=ALL_NULL_REFERENCE,
            drifted=True,
            note=f"null in all {ref.rows} rows of the {reference} window{where};"
            f" the {current} window has {cur.count} values",
        )
    if column.data_type == CATEGORICAL:
        return _categorical(measurements, column, slice_id, reference, current, base, thresholds)
    return _numeric(measurements, column, slice_id, reference, current, base, thresholds)


def _numeric(
    m: Measurements,
    column: MonitoredColumn,
    slice_id: SliceId,
    reference: str,
    current: str,
    base: dict,
    thresholds: DriftThresholds,
) -> ColumnDrift:
    ref_profile = m.profile(reference, slice_id, column.name)
    ref = m.histogram(reference, slice_id, column.name)
    cur = m.histogram(current, slice_id, column.name)
    edges = m.edges[column.name]
    ks = st.ks_on_grid(ref.counts, cur.counts)
    wasserstein = st.wasserstein_on_grid(edges, ref.counts, ref.sums, cur.counts, cur.sums)
    normalised = st.normalised_wasserstein(wasserstein, ref_profile.population_std)
    coarse = m.coarse_edges[(reference, column.name)]
    ref_coarse = st.coarsen(ref.counts, edges, coarse)
    cur_coarse = st.coarsen(cur.counts, edges, coarse)
    values = {
        "ks_statistic": ks.statistic,
        "ks_error_bound": ks.error_bound,
        "ks_pvalue": ks.pvalue,
        "psi": st.population_stability_index(ref_coarse, cur_coarse),
        "kl_divergence": st.kl_divergence(ref_coarse, cur_coarse),
        "jensenshannon": st.jensenshannon_distance(ref_coarse, cur_coarse),
        "wasserstein": wasserstein,
        "wasserstein_normalised": normalised,
    }
    note = None
    if ref_profile.min == ref_profile.max:
        note = f"constant in the {reference} window ({ref_profile.min:g})"
    return ColumnDrift(
        **base,
        status=ASSESSED,
        drifted=numeric_drifted(thresholds, **values),
        note=note,
        **values,
    )


def numeric_drifted(
    thresholds: DriftThresholds,
    *,
    ks_statistic: float,
    ks_pvalue: float,
    psi: float,
    kl_divergence: float,
    jensenshannon: float,
    wasserstein_normalised: float,
    **_: float,
) -> bool:
    """The numeric verdict by `thresholds.numeric_test` (p-values: below the threshold;
    distances: at or above it, as Evidently decides)."""
    t = thresholds
    return {
        "psi_or_ks": psi >= t.psi or (ks_pvalue < t.ks_pvalue and ks_statistic >= t.ks_statistic),
        "ks": ks_pvalue < t.ks_pvalue,
        "wasserstein": wasserstein_normalised >= t.wasserstein,
        "psi": psi >= t.psi,
        "kl_divergence": kl_divergence >= t.kl_divergence,
        "jensenshannon": jensenshannon >= t.jensenshannon,
    }[t.numeric_test]


def _categorical(
    m: Measurements,
    column: MonitoredColumn,
    slice_id: SliceId,
    reference: str,
    current: str,
    base: dict,
    thresholds: DriftThresholds,
) -> ColumnDrift:
    ref = m.categories.get((reference, slice_id, column.name), {})
    cur = m.categories.get((current, slice_id, column.name), {})
    keys = sorted(k for k in {*ref, *cur} if k is not None)
    ref_counts = np.asarray([ref.get(k, 0) for k in keys], dtype="float64")
    cur_counts = np.asarray([cur.get(k, 0) for k in keys], dtype="float64")
    result = st.categorical_drift(ref_counts, cur_counts)
    unseen = tuple(k for k in keys if ref.get(k, 0) == 0 and cur.get(k, 0) > 0)
    values = {
        "chi2_statistic": result.chi2_statistic,
        "chi2_pvalue": result.chi2_pvalue,
        "total_variation": result.total_variation,
        "l_infinity": result.l_infinity,
        "jensenshannon": result.jensenshannon,
    }
    note = None
    if unseen:
        shown = ", ".join(unseen[:10]) + (
            f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
        )
        note = f"categories never seen in the {reference} window: {shown}"
    return ColumnDrift(
        **base,
        status=ASSESSED,
        drifted=categorical_drifted(thresholds, **values),
        note=note,
        unseen_categories=unseen,
        **values,
    )


def categorical_drifted(
    thresholds: DriftThresholds,
    *,
    chi2_pvalue: float,
    total_variation: float,
    l_infinity: float,
    jensenshannon: float,
    **_: float,
) -> bool:
    """The categorical verdict by `thresholds.categorical_test`."""
    t = thresholds
    return {
        "chi2_and_tv": chi2_pvalue < t.chi2_pvalue and total_variation >= t.total_variation,
        "chi2": chi2_pvalue < t.chi2_pvalue,
        "total_variation": total_variation >= t.total_variation,
        "l_infinity": l_infinity >= t.l_infinity,
        "jensenshannon": jensenshannon >= t.jensenshannon,
    }[t.categorical_test]


@dataclass(frozen=True)
class DatasetVerdict:
    """The dataset's verdict from one comparison's whole-window results."""

    features: int
    drifted_features: tuple[str, ...]
    unassessed_features: tuple[str, ...]
    prediction: str | None
    prediction_drifted: bool | None
    drift_share: float
    drifted: bool
    reason: str | None = None
    """Why nothing could be assessed (then `drifted` is False), e.g. an empty window."""

    @property
    def assessed(self) -> bool:
        return self.reason is None

    @property
    def text(self) -> str:
        """E.g. "3 of 40 feature columns drifted (below the 30% threshold): no dataset drift"."""
        if self.reason is not None:
            return f"not assessed: {self.reason}"
        threshold = f"{self.drift_share * 100:g}%"
        share = len(self.drifted_features) / self.features if self.features else 0.0
        side = "at or above" if self.features and share >= self.drift_share else "below"
        text = (
            f"{len(self.drifted_features)} of {self.features} feature columns drifted"
            f" ({side} the {threshold} threshold"
        )
        if self.unassessed_features:
            text += f"; {len(self.unassessed_features)} could not be assessed"
        text += ")"
        if self.prediction_drifted:
            text += f", and the prediction ({self.prediction}) drifted"
        elif self.prediction is not None and self.prediction_drifted is None:
            text += f", the prediction ({self.prediction}) could not be assessed"
        return text + (": dataset drift" if self.drifted else ": no dataset drift")


def dataset_verdict(results: Sequence[ColumnDrift], thresholds: DriftThresholds) -> DatasetVerdict:
    """Whether the dataset drifted, from one comparison's whole-window (slice ALL) results.

    A drifted prediction column is enough on its own: it is what the business consumes.
    Otherwise at least `drift_share` of the feature columns must have drifted; columns that
    could not be assessed count in the denominator, not as drifted. When the current or the
    reference window has no rows at all, nothing is assessed and the verdict says so.
    """
    whole = [r for r in results if r.slice_key is None]
    features = [r for r in whole if r.kind == "feature"]
    predictions = [r for r in whole if r.kind == "prediction"]
    prediction = predictions[0] if predictions else None
    reason = None
    if whole and all(r.status in (NO_ROWS, NO_REFERENCE_ROWS) for r in whole):
        reason = whole[0].note
    drifted_features = tuple(r.column for r in features if r.drifted)
    prediction_drifted = prediction.drifted if prediction is not None else None
    # Compare the share, not drifted >= share * n: 0.3 * 10 is 3.0000000000000004.
    share_reached = (
        bool(features) and len(drifted_features) / len(features) >= thresholds.drift_share
    )
    return DatasetVerdict(
        features=len(features),
        drifted_features=drifted_features,
        unassessed_features=tuple(r.column for r in features if not r.assessed),
        prediction=prediction.column if prediction is not None else None,
        prediction_drifted=prediction_drifted,
        drift_share=thresholds.drift_share,
        drifted=reason is None and (share_reached or bool(prediction_drifted)),
        reason=reason,
    )
