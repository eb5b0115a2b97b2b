from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from featurehouse.monitoring.drift import (
    ColumnDrift,
    DriftThresholds,
    column_drift,
    compare_frames,
    dataset_drifted,
    ks_test,
    population_stability_index,
)

THRESHOLDS = DriftThresholds()


def _normal(seed: int, size: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=shift, scale=1.0, size=size)


def _result(column: str, *, kind: str = "feature", drifted: bool) -> ColumnDrift:
    return ColumnDrift(
        column=column,
        kind=kind,
        reference_rows=100,
        current_rows=100,
        ks_statistic=0.5 if drifted else 0.01,
        ks_pvalue=0.0 if drifted else 0.9,
        psi=1.0 if drifted else 0.01,
        drifted=drifted,
    )


def test_psi_of_identical_sample_is_zero():
    sample = _normal(seed=1, size=5_000)

    assert population_stability_index(sample, sample) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_two_samples_from_one_distribution_is_near_zero():
    assert population_stability_index(_normal(1, 10_000), _normal(2, 10_000)) < 0.01


def test_psi_matches_hand_worked_example():
    # bins=4 on reference 1..8: interior quantiles (linear) are 2.75, 4.5, 6.25, giving bins
    # (-inf, 2.75], (2.75, 4.5], (4.5, 6.25], (6.25, inf).
    #   reference {1,2} {3,4} {5,6} {7,8}         -> r = 0.25, 0.25, 0.25, 0.25
    #   current   {1,1,1,1} {3,4} {5,6} {}        -> c = 0.5,  0.25, 0.25, 0 -> 1e-4 (epsilon)
    # PSI = (0.5 - 0.25) ln(0.5 / 0.25) + 0 + 0 + (1e-4 - 0.25) ln(1e-4 / 0.25)
    reference = [1, 2, 3, 4, 5, 6, 7, 8]
    current = [1, 1, 1, 1, 3, 4, 5, 6]
    expected = 0.25 * math.log(2) + (1e-4 - 0.25) * math.log(1e-4 / 0.25)

    assert population_stability_index(reference, current, bins=4) == pytest.approx(expected)
    assert expected == pytest.approx(2.128516, abs=1e-6)


def test_psi_grows_with_mean_shift():
    reference = _normal(seed=1, size=5_000)
    psi_by_shift = [
        population_stability_index(reference, _normal(seed=2, size=5_000, shift=shift))
        for shift in (0.0, 0.5, 1.0)
    ]

    assert psi_by_shift[0] < psi_by_shift[1] < psi_by_shift[2]
    assert psi_by_shift[2] > 0.2


def test_psi_with_constant_reference_is_finite():
    reference = np.full(1_000, 3.0)

    assert population_stability_index(reference, reference) == pytest.approx(0.0)
    assert math.isfinite(population_stability_index(reference, _normal(seed=1, size=1_000)))


def test_psi_works_on_low_cardinality_column():
    rng = np.random.default_rng(7)
    reference = rng.choice([0, 1], size=2_000, p=[0.7, 0.3])
    current = rng.choice([0, 1], size=2_000, p=[0.3, 0.7])

    assert population_stability_index(reference, current) > 0.2


def test_psi_and_ks_ignore_nans():
    reference = _normal(seed=1, size=1_000)
    current = _normal(seed=2, size=1_000, shift=0.3)
    with_nans = np.concatenate([reference, np.full(50, np.nan)])
    current_with_nans = np.concatenate([np.full(30, np.nan), current])

    assert population_stability_index(with_nans, current_with_nans) == pytest.approx(
        population_stability_index(reference, current)
    )
    assert ks_test(with_nans, current_with_nans) == pytest.approx(ks_test(reference, current))


def test_psi_rejects_sample_without_values():
    with pytest.raises(ValueError, match="current has no non-null values"):
        population_stability_index([1.0, 2.0], [np.nan])


def test_ks_of_identical_samples_has_statistic_zero_and_pvalue_one():
    sample = _normal(seed=1, size=1_000)

    statistic, pvalue = ks_test(sample, sample)

    assert statistic == 0.0
    assert pvalue == pytest.approx(1.0)


def test_ks_detects_a_shift():
    statistic, pvalue = ks_test(_normal(1, 2_000), _normal(2, 2_000, shift=0.5))

    assert statistic > 0.1
    assert pvalue < 1e-6


def test_column_drift_flags_a_one_sigma_shift():
    result = column_drift(
        pd.Series(_normal(1, 2_000)),
        pd.Series(_normal(2, 2_000, shift=1.0)),
        column="x",
        kind="feature",
        thresholds=THRESHOLDS,
    )

    assert result.drifted
    assert result.psi is not None and result.psi > THRESHOLDS.psi


def test_tiny_significant_shift_on_large_sample_is_not_drift():
    result = column_drift(
        pd.Series(_normal(1, 200_000)),
        pd.Series(_normal(2, 200_000, shift=0.03)),
        column="x",
        kind="feature",
        thresholds=THRESHOLDS,
    )

    assert result.ks_pvalue is not None and result.ks_pvalue < THRESHOLDS.ks_pvalue
    assert result.ks_statistic is not None and result.ks_statistic < THRESHOLDS.ks_statistic
    assert result.psi is not None and result.psi < THRESHOLDS.psi
    assert not result.drifted


def test_all_null_current_gives_no_statistics_and_no_drift():
    result = column_drift(
        pd.Series([1.0, 2.0, 3.0, None]),
        pd.Series([None, None], dtype="float64"),
        column="x",
        kind="prediction",
        thresholds=THRESHOLDS,
    )

    assert result == ColumnDrift(
        column="x",
        kind="prediction",
        reference_rows=3,
        current_rows=0,
        ks_statistic=None,
        ks_pvalue=None,
        psi=None,
        drifted=False,
    )


def test_column_drift_counts_non_null_rows_of_nullable_dtype():
    result = column_drift(
        pd.Series([1, 2, None, 4], dtype="Int64"),
        pd.Series([1, 2, 3, 4, None], dtype="Int64"),
        column="x",
        kind="feature",
        thresholds=THRESHOLDS,
    )

    assert (result.reference_rows, result.current_rows) == (3, 4)


def test_column_drift_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        column_drift(
            pd.Series([1.0]), pd.Series([1.0]), column="x", kind="label", thresholds=THRESHOLDS
        )


def test_compare_frames_reports_features_in_order_then_prediction():
    reference = pd.DataFrame({"a": _normal(1, 500), "b": _normal(2, 500), "p": _normal(3, 500)})
    current = pd.DataFrame(
        {"a": _normal(4, 500), "b": _normal(5, 500, shift=1.0), "p": _normal(6, 500)}
    )

    results = compare_frames(
        reference, current, feature_columns=["b", "a"], prediction_column="p", thresholds=THRESHOLDS
    )

    assert [(r.column, r.kind) for r in results] == [
        ("b", "feature"),
        ("a", "feature"),
        ("p", "prediction"),
    ]
    assert [r.drifted for r in results] == [True, False, False]


def test_compare_frames_without_prediction_column():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})

    results = compare_frames(
        frame, frame, feature_columns=["a"], prediction_column=None, thresholds=THRESHOLDS
    )

    assert [r.column for r in results] == ["a"]


@pytest.mark.parametrize(
    ("reference_columns", "current_columns", "message"),
    [
        (["a"], ["a", "b"], r"missing from the reference frame: \['b'\]"),
        (["a", "b"], ["b"], r"missing from the current frame: \['a'\]"),
    ],
)
def test_compare_frames_names_missing_column_and_frame(reference_columns, current_columns, message):
    reference = pd.DataFrame({name: [1.0, 2.0] for name in reference_columns})
    current = pd.DataFrame({name: [1.0, 2.0] for name in current_columns})

    with pytest.raises(ValueError, match=message):
        compare_frames(
            reference,
            current,
            feature_columns=["a", "b"],
            prediction_column=None,
            thresholds=THRESHOLDS,
        )


def test_compare_frames_names_missing_prediction_column():
    frame = pd.DataFrame({"a": [1.0, 2.0]})

    with pytest.raises(ValueError, match=r"missing from the reference frame: \['score'\]"):
        compare_frames(
            frame, frame, feature_columns=["a"], prediction_column="score", thresholds=THRESHOLDS
        )


def test_dataset_drifted_at_share_threshold():
    results = [_result(f"f{i}", drifted=i < 3) for i in range(10)]

    assert dataset_drifted(results, DriftThresholds(drift_share=0.3))


def test_dataset_not_drifted_below_share_threshold():
    results = [_result(f"f{i}", drifted=i < 2) for i in range(10)]

    assert not dataset_drifted(results, DriftThresholds(drift_share=0.3))


def test_dataset_drifted_when_only_prediction_drifted():
    results = [_result(f"f{i}", drifted=False) for i in range(10)]
    results.append(_result("score", kind="prediction", drifted=True))

    assert dataset_drifted(results, THRESHOLDS)


def test_dataset_not_drifted_without_results():
    assert not dataset_drifted([], THRESHOLDS)
