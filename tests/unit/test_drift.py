"""Drift statistics and verdicts: every statistic against scipy or a hand-worked value, the
pass over every row against numpy, the Spark measurement against pandas and Evidently, a
planted shift against a resample of the baseline, and the bad inputs that must give a clear
verdict (an empty window, an all-null column, a constant column, an unseen category)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from featurehouse.monitoring import statistics as st
from featurehouse.monitoring.drift import (
    ALL_NULL,
    ALL_NULL_CURRENT,
    ASSESSED,
    NO_ROWS,
    ColumnDrift,
    DatasetVerdict,
    DriftThresholds,
    compare,
    dataset_verdict,
    numeric_drifted,
)
from featurehouse.monitoring.spark_drift import (
    ALL,
    CATEGORICAL,
    NUMERIC,
    KernelSpec,
    MonitoredColumn,
    hll_estimate,
    measure,
    merge_summaries,
    summarise_batches,
)

KS_TOLERANCE = 0.011
"""|D_grid - D| stays within the stated bound, about 1/100 with 100 reference-quantile bins."""


def _normal(seed: int, size: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=shift, scale=scale, size=size)


def _quantile_edges(reference: np.ndarray, bins: int = 100) -> np.ndarray:
    probabilities = np.arange(1, bins) / bins
    return np.unique(np.quantile(reference, probabilities, method="inverted_cdf"))


def _histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and sums per right-closed bin, the way the Spark pass counts them."""
    index = np.searchsorted(edges, values, side="left")
    counts = np.bincount(index, minlength=edges.size + 1).astype(float)
    return counts, np.bincount(index, weights=values, minlength=edges.size + 1)


# --- KS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shift", "scale"), [(0.0, 1.0), (0.1, 1.0), (0.5, 1.0), (0.0, 1.5), (1.0, 0.5), (3.0, 1.0)]
)
def test_ks_on_the_reference_quantile_grid_is_within_its_bound_of_scipy(shift, scale):
    reference, current = _normal(1, 4_000), _normal(2, 3_000, shift, scale)
    edges = _quantile_edges(reference)
    exact = stats.ks_2samp(reference, current, method="asymp")

    result = st.ks_on_grid(_histogram(reference, edges)[0], _histogram(current, edges)[0])

    assert result.statistic <= exact.statistic + 1e-12
    assert exact.statistic <= result.statistic + result.error_bound + 1e-12
    assert result.error_bound <= KS_TOLERANCE
    assert result.statistic == pytest.approx(exact.statistic, abs=KS_TOLERANCE)


def test_ks_pvalue_is_scipys_asymptotic_one_for_the_same_statistic():
    reference, current = _normal(1, 4_000), _normal(2, 3_000, 0.05)
    exact = stats.ks_2samp(reference, current, method="asymp")

    assert st.ks_pvalue(exact.statistic, 4_000, 3_000) == pytest.approx(exact.pvalue, rel=1e-9)


def test_ks_is_exact_when_every_value_is_an_edge():
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 6, 2_000).astype(float)
    current = rng.integers(1, 7, 1_500).astype(float)
    edges = np.unique(reference)
    exact = stats.ks_2samp(reference, current, method="asymp")

    result = st.ks_on_grid(_histogram(reference, edges)[0], _histogram(current, edges)[0])

    assert result.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert result.pvalue == pytest.approx(exact.pvalue, rel=1e-9)


def test_ks_hand_worked_two_bins():
    # Bins (-inf, 0], (0, inf): reference 3 | 1, current 1 | 3. CDF gap at 0: 0.75 - 0.25.
    # Inside bin 0 the gap can reach at most 0.5 + min(0.75, 0.25) = 0.75, same in bin 1.
    result = st.ks_on_grid([3, 1], [1, 3])

    assert result.statistic == pytest.approx(0.5)
    assert result.statistic + result.error_bound == pytest.approx(0.75)


def test_ks_rejects_counts_without_values():
    with pytest.raises(ValueError, match="current has no non-null values"):
        st.ks_on_grid([1, 2], [0, 0])


# --- Wasserstein ------------------------------------------------------------------------------


def test_wasserstein_from_bin_sums_is_exact_for_a_shift():
    reference, current = _normal(1, 4_000), _normal(2, 3_000, shift=0.7)
    edges = _quantile_edges(reference)
    ref_counts, ref_sums = _histogram(reference, edges)
    cur_counts, cur_sums = _histogram(current, edges)
    # Away from the crossing point F_r - F_c keeps its sign inside every bin.
    value = st.wasserstein_on_grid(edges, ref_counts, ref_sums, cur_counts, cur_sums)

    assert value == pytest.approx(stats.wasserstein_distance(reference, current), rel=2e-3)


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (0.0, 2.0), (0.2, 0.7)])
def test_wasserstein_from_bin_sums_is_a_close_lower_bound(shift, scale):
    reference, current = _normal(1, 4_000), _normal(2, 3_000, shift, scale)
    edges = _quantile_edges(reference)
    exact = stats.wasserstein_distance(reference, current)

    value = st.wasserstein_on_grid(
        edges, *_histogram(reference, edges), *_histogram(current, edges)
    )

    assert value <= exact + 1e-12
    assert value == pytest.approx(exact, rel=0.05, abs=0.003)


def test_wasserstein_against_a_constant_reference_is_the_mean_distance_to_it():
    reference = np.full(500, 2.0)
    current = np.array([1.0, 2.0, 4.0, 5.0])
    edges = np.array([2.0])

    value = st.wasserstein_on_grid(
        edges, *_histogram(reference, edges), *_histogram(current, edges)
    )

    assert value == pytest.approx(stats.wasserstein_distance(reference, current))
    assert value == pytest.approx((1 + 0 + 2 + 3) / 4)


def test_normalised_wasserstein_floors_the_scale_like_evidently():
    assert st.normalised_wasserstein(0.5, 2.0) == pytest.approx(0.25)
    assert st.normalised_wasserstein(0.5, 0.0) == pytest.approx(500.0)


# --- PSI, KL, JS ------------------------------------------------------------------------------


def test_psi_matches_hand_worked_example():
    # Reference 2 | 2 | 2 | 2, current 4 | 2 | 2 | 0 (empty bin at 1e-4):
    # PSI = (0.5 - 0.25) ln(0.5 / 0.25) + 0 + 0 + (1e-4 - 0.25) ln(1e-4 / 0.25)
    expected = 0.25 * math.log(2) + (1e-4 - 0.25) * math.log(1e-4 / 0.25)

    assert st.population_stability_index([2, 2, 2, 2], [4, 2, 2, 0]) == pytest.approx(expected)
    assert expected == pytest.approx(2.128516, abs=1e-6)


def test_psi_of_identical_counts_is_zero():
    assert st.population_stability_index([5, 1, 7], [10, 2, 14]) == pytest.approx(0.0, abs=1e-15)


def test_kl_divergence_matches_scipy_entropy():
    reference, current = np.array([10, 30, 40, 20]), np.array([25, 25, 25, 25])

    assert st.kl_divergence(reference, current) == pytest.approx(
        stats.entropy(reference / 100, current / 100)
    )


def test_kl_divergence_floors_empty_bins():
    expected = 0.5 * math.log(0.5 / 1e-4) + 0.5 * math.log(0.5 / 1.0)

    assert st.kl_divergence([1, 1], [0, 4]) == pytest.approx(expected)


def test_jensenshannon_matches_scipy_and_is_bounded():
    reference, current = np.array([10, 30, 40, 20]), np.array([0, 25, 25, 50])

    assert st.jensenshannon_distance(reference, current) == pytest.approx(
        distance.jensenshannon(reference / 100, current / 100)
    )
    assert st.jensenshannon_distance([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))


def test_coarsen_sums_fine_bins_into_the_coarse_ones():
    fine_edges = [1.0, 2.0, 3.0, 4.0]  # bins: <=1, (1,2], (2,3], (3,4], >4
    counts = [1, 2, 3, 4, 5]

    assert st.coarsen(counts, fine_edges, [2.0, 4.0]).tolist() == [3, 7, 5]
    assert st.coarsen(counts, fine_edges, []).tolist() == [15]
    with pytest.raises(ValueError, match="subset"):
        st.coarsen(counts, fine_edges, [2.5])


# --- categorical -----------------------------------------------------------------------------


def test_chi_square_matches_scipy_contingency_without_correction():
    reference, current = np.array([50, 30, 20]), np.array([30, 30, 40])
    expected = stats.chi2_contingency(np.vstack([reference, current]), correction=False)

    result = st.categorical_drift(reference, current)

    assert result.chi2_statistic == pytest.approx(expected.statistic)
    assert result.chi2_pvalue == pytest.approx(expected.pvalue)


def test_total_variation_and_l_infinity_hand_worked():
    # Shares 0.5 0.3 0.2 against 0.3 0.3 0.4: |diff| 0.2 0 0.2.
    result = st.categorical_drift([50, 30, 20], [30, 30, 40])

    assert result.total_variation == pytest.approx(0.2)
    assert result.l_infinity == pytest.approx(0.2)


def test_a_category_unseen_in_the_reference_gives_finite_statistics():
    result = st.categorical_drift([60, 40, 0], [40, 40, 20])
    expected = stats.chi2_contingency([[60, 40, 0], [40, 40, 20]], correction=False)

    assert math.isfinite(result.chi2_statistic)
    assert result.chi2_pvalue == pytest.approx(expected.pvalue)
    assert result.total_variation == pytest.approx(0.2)


def test_chi_square_with_a_single_category_finds_nothing():
    assert st.chi_square_homogeneity([10, 0], [5, 0]) == (0.0, 1.0)


# --- the pass over every row (numpy, no Spark) -------------------------------------------------


def _table(windows, slices, numbers, categories) -> pa.Table:
    return pa.table(
        {
            "_w": pa.array(windows, pa.int32()),
            "s0": pa.array(slices, pa.string()),
            "c0": pa.array(numbers, pa.float64()),
            "c1": pa.array(categories, pa.string()),
        }
    )


def test_summaries_of_every_row_match_numpy_across_chunks_and_partitions():
    rng = np.random.default_rng(5)
    n = 25_000
    numbers = rng.normal(100.0, 3.0, n)
    numbers[rng.random(n) < 0.05] = np.nan
    windows = rng.integers(0, 2, n)
    slices = rng.choice(["a", "b", None], n)
    categories = rng.choice(["x", "y", "z"], n).astype(object)
    categories[rng.random(n) < 0.1] = None
    table = _table(windows, slices, numbers, categories)
    edges = np.quantile(numbers[~np.isnan(numbers)], np.arange(1, 20) / 20)
    columns = (
        MonitoredColumn("n", "feature", NUMERIC),
        MonitoredColumn("c", "feature", CATEGORICAL),
    )
    spec = KernelSpec(columns, ("segment",), (edges, np.empty(0)), (100.0, 0.0), chunk_rows=4_000)
    # Two "partitions": each returns its rows, the driver merges them.
    parts = [table.slice(0, 11_000), table.slice(11_000)]
    rows = [
        row
        for part in parts
        for batch in summarise_batches(iter(part.to_batches(max_chunksize=3_000)), spec)
        for row in batch.to_pylist()
    ]

    merged = merge_summaries(rows, spec)

    for w in (0, 1):
        in_window = windows == w
        values = numbers[in_window]
        values = values[~np.isnan(values)]
        whole = merged[(w, -1, None, 0)]
        assert (whole.rows, whole.count) == (in_window.sum(), values.size)
        assert whole.mean + 100.0 == pytest.approx(values.mean(), rel=1e-12)
        assert math.sqrt(whole.m2 / (whole.count - 1)) == pytest.approx(values.std(ddof=1))
        assert (whole.min + 100.0, whole.max + 100.0) == (values.min(), values.max())
        index = np.searchsorted(edges, values, side="left")
        assert whole.bin_counts.tolist() == np.bincount(index, minlength=20).tolist()
        assert whole.bin_sums + 100.0 * whole.bin_counts == pytest.approx(
            np.bincount(index, weights=values, minlength=20)
        )
        assert hll_estimate(whole.hll) == pytest.approx(np.unique(values).size, rel=0.05)
        quantiles = whole.quantiles([0.1, 0.5, 0.9], shift=100.0)
        for p, q in quantiles.items():
            assert np.mean(values <= q) == pytest.approx(p, abs=0.01)
        for label in ("a", "b", None):
            mask = in_window & (slices == label if label else pd.isna(slices))
            part = merged[(w, 0, label, 0)]
            assert part.rows == mask.sum()
            assert part.count == np.count_nonzero(~np.isnan(numbers[mask]))
        counted = merged[(w, -1, None, 1)]
        found = pd.Series(categories[in_window]).value_counts().to_dict()
        assert counted.categories == found
        assert counted.count == sum(found.values())


def test_hll_counts_distinct_values_within_a_few_percent():
    from featurehouse.monitoring.spark_drift import HLL_PRECISION, _hll_hashes

    for n in (10, 1_000, 100_000):
        values = np.random.default_rng(n).permutation(n).astype(float) * 0.5
        registers, ranks = _hll_hashes(np.concatenate([values, values]))  # duplicates count once
        sketch = np.zeros(1 << HLL_PRECISION, np.uint8)
        np.maximum.at(sketch, registers, ranks)

        assert hll_estimate(sketch) == pytest.approx(n, rel=0.04)


# --- verdicts ---------------------------------------------------------------------------------


def _result(column, *, kind="feature", drifted=True, status=ASSESSED, slice_key=None):
    return ColumnDrift(
        column=column,
        kind=kind,
        data_type=NUMERIC,
        comparison="baseline",
        reference_window="baseline",
        current_window="current",
        slice_key=slice_key,
        slice_value=None,
        reference_rows=100,
        current_rows=100,
        status=status,
        drifted=drifted,
        test="psi_or_ks",
    )


def test_verdict_text_below_the_threshold():
    results = [_result(f"f{i}", drifted=i < 3) for i in range(40)]
    results.append(_result("score", kind="prediction", drifted=False))

    verdict = dataset_verdict(results, DriftThresholds(drift_share=0.3))

    assert not verdict.drifted
    assert (
        verdict.text
        == "3 of 40 feature columns drifted (below the 30% threshold): no dataset drift"
    )


def test_verdict_text_at_the_threshold():
    results = [_result(f"f{i}", drifted=i < 3) for i in range(10)]

    verdict = dataset_verdict(results, DriftThresholds(drift_share=0.3))

    assert verdict.drifted
    assert verdict.text == (
        "3 of 10 feature columns drifted (at or above the 30% threshold): dataset drift"
    )


def test_a_drifted_prediction_is_dataset_drift_on_its_own():
    results = [_result(f"f{i}", drifted=False) for i in range(10)]
    results.append(_result("score", kind="prediction", drifted=True))

    verdict = dataset_verdict(results, DriftThresholds())

    assert verdict.drifted
    assert verdict.text == (
        "0 of 10 feature columns drifted (below the 30% threshold), and the prediction (score)"
        " drifted: dataset drift"
    )


def test_unassessed_columns_count_in_the_denominator_and_are_named():
    results = [_result("a", drifted=True), _result("b", drifted=None, status=ALL_NULL)]
    results += [_result(f"f{i}", drifted=False) for i in range(8)]
    results.append(_result("a", drifted=True, slice_key="model"))  # slices never count

    verdict = dataset_verdict(results, DriftThresholds(drift_share=0.3))

    assert verdict.unassessed_features == ("b",)
    assert verdict.text == (
        "1 of 10 feature columns drifted (below the 30% threshold; 1 could not be assessed):"
        " no dataset drift"
    )


def test_numeric_tests_decide_by_their_own_statistic():
    values = {
        "ks_statistic": 0.05,
        "ks_pvalue": 0.001,
        "psi": 0.05,
        "kl_divergence": 0.2,
        "jensenshannon": 0.05,
        "wasserstein_normalised": 0.15,
    }
    decided = {
        test: numeric_drifted(DriftThresholds(numeric_test=test), **values)
        for test in ("psi_or_ks", "ks", "wasserstein", "psi", "kl_divergence", "jensenshannon")
    }

    assert decided == {
        "psi_or_ks": False,  # significant but small: the KS statistic is below 0.1
        "ks": True,
        "wasserstein": True,
        "psi": False,
        "kl_divergence": True,
        "jensenshannon": False,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("psi", 0.0), ("ks_pvalue", 1.0), ("drift_share", 0.0), ("numeric_test", "t_test")],
)
def test_thresholds_reject_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        DriftThresholds(**{field: value})


def test_verdict_of_a_dataset_not_assessed_says_why():
    verdict = DatasetVerdict(
        features=5,
        drifted_features=(),
        unassessed_features=("a",) * 5,
        prediction="score",
        prediction_drifted=None,
        drift_share=0.3,
        drifted=False,
        reason="the current window has no rows",
    )

    assert verdict.text == "not assessed: the current window has no rows"


# --- Spark: whole windows ------------------------------------------------------------------------

COLUMNS = [
    MonitoredColumn("shifted", "feature", NUMERIC),
    MonitoredColumn("steady", "feature", NUMERIC),
    MonitoredColumn("colour", "feature", CATEGORICAL),
    MonitoredColumn("score", "prediction", NUMERIC),
]


def _frames(spark, reference: pd.DataFrame, **windows: pd.DataFrame):
    frames = [reference.assign(window="baseline")]
    frames += [frame.assign(window=name) for name, frame in windows.items()]
    combined = pd.concat(frames, ignore_index=True)
    schema = ", ".join(
        f"`{c}` {'string' if combined[c].dtype == object else 'double'}" for c in combined.columns
    )
    return spark.createDataFrame(combined.astype(object).where(combined.notna(), None), schema)


def _measured(spark, reference, current, *, columns=COLUMNS, slices=(), windows=None, **kwargs):
    frame = _frames(spark, reference, **(windows or {"current": current}))
    return measure(
        frame,
        window_column="window",
        windows=["baseline", "current"],
        references=["baseline"],
        columns=columns,
        slices=slices,
        **kwargs,
    )


def _population(seed: int, n: int, *, shift: float = 0.0, colours=("red", "green", "blue")):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "shifted": rng.normal(shift, 1.0, n),
            "steady": rng.gamma(2.0, 3.0, n),
            "colour": rng.choice(colours, n, p=[0.5, 0.3, 0.2] if len(colours) == 3 else None),
            "score": rng.beta(2, 5, n),
            "segment": rng.choice(["north", "south"], n),
        }
    )


def _by_column(results):
    return {r.column: r for r in results if r.slice_key is None}


def test_a_planted_shift_is_flagged_and_a_resample_of_the_baseline_is_not(spark):
    reference = _population(1, 6_000)
    resample = reference.sample(n=6_000, replace=True, random_state=2).reset_index(drop=True)
    shifted = resample.assign(shifted=resample["shifted"] + 0.8)
    thresholds = DriftThresholds()

    for current, expected in ((resample, set()), (shifted, {"shifted"})):
        m = _measured(spark, reference, current)
        results = compare(
            m, reference="baseline", current="current", comparison="baseline", thresholds=thresholds
        )
        drifted = {r.column for r in results if r.drifted}
        assert drifted == expected
        assert all(r.status == ASSESSED for r in results)


def test_profiles_of_whole_windows_match_pandas(spark):
    reference = _population(1, 3_000)
    current = _population(2, 2_000, shift=0.5)
    current.loc[current.index[:100], "steady"] = np.nan
    current.loc[current.index[100:150], "colour"] = None

    m = _measured(spark, reference, current, slices=["segment"])

    steady = m.profile("current", ALL, "steady")
    values = current["steady"].dropna()
    assert (steady.rows, steady.count, steady.nulls) == (2_000, 1_900, 100)
    assert steady.mean == pytest.approx(values.mean(), rel=1e-12)
    assert steady.stddev == pytest.approx(values.std(), rel=1e-9)
    assert (steady.min, steady.max) == (values.min(), values.max())
    assert steady.distinct == pytest.approx(values.nunique(), rel=0.05)
    assert steady.quantiles[0.5] == pytest.approx(values.median(), rel=0.01)
    colour = m.profile("current", ALL, "colour")
    assert (colour.count, colour.nulls, colour.distinct) == (1_950, 50, 3)
    north = current[current["segment"] == "north"]
    sliced = m.profile("current", ("segment", "north"), "shifted")
    assert (sliced.rows, sliced.mean) == (len(north), pytest.approx(north["shifted"].mean()))
    histogram = m.histogram("current", ALL, "shifted")
    edges = m.edges["shifted"]
    expected = np.bincount(
        np.searchsorted(edges, current["shifted"], side="left"), minlength=edges.size + 1
    )
    assert histogram.counts.tolist() == expected.tolist()


def test_slices_are_compared_value_by_value(spark):
    reference = _population(1, 4_000)
    current = _population(2, 4_000)
    south = current["segment"] == "south"
    current.loc[south, "shifted"] += 2.0  # only the south drifted

    m = _measured(spark, reference, current, slices=["segment"])
    results = compare(
        m,
        reference="baseline",
        current="current",
        comparison="baseline",
        thresholds=DriftThresholds(),
    )

    shifted = {(r.slice_key, r.slice_value): r for r in results if r.column == "shifted"}
    assert shifted[("segment", "south")].drifted
    assert not shifted[("segment", "north")].drifted
    assert shifted[("segment", "south")].current_rows == south.sum()


def _evidently_verdicts(reference, current, columns, method, threshold, cat_method=None):
    """Per-column verdicts of Evidently's DataDriftPreset with one test and threshold."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(
        columns=columns,
        num_method=method,
        num_threshold=threshold,
        cat_method=cat_method,
        cat_threshold=threshold if cat_method else None,
    )
    snapshot = Report([preset]).run(current_data=current, reference_data=reference)
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            value, test = metric["value"], config["method"]
            # p-value tests drift at or below the threshold, distances at or above it.
            pvalue = test in ("ks", "chisquare")
            verdicts[config["column"]] = value <= threshold if pvalue else value >= threshold
    return verdicts


@pytest.mark.parametrize(
    ("test", "evidently_test", "threshold"),
    [("wasserstein", "wasserstein", 0.1), ("ks", "ks", 0.05)],
)
def test_spark_verdicts_equal_evidentlys_with_the_same_test_and_threshold(
    spark, test, evidently_test, threshold
):
    rng = np.random.default_rng(11)
    n = 5_000
    reference = pd.DataFrame({f"x{i}": rng.normal(0, 1 + i % 3, n) for i in range(12)})
    shifts = {0: 0.5, 1: 1.0, 2: 0.3, 3: 2.0}  # in standard deviations; the others stay
    current = pd.DataFrame(
        {f"x{i}": rng.normal(shifts.get(i, 0.0) * (1 + i % 3), 1 + i % 3, n) for i in range(12)}
    )
    current["x11"] = rng.normal(0, 1.5, n)  # a change of spread (from 3), not of location
    columns = [MonitoredColumn(c, "feature", NUMERIC) for c in reference.columns]
    thresholds = DriftThresholds(numeric_test=test, wasserstein=threshold, ks_pvalue=threshold)

    m = _measured(spark, reference, current, columns=columns)
    ours = {
        r.column: r.drifted
        for r in compare(
            m, reference="baseline", current="current", comparison="baseline", thresholds=thresholds
        )
    }
    theirs = _evidently_verdicts(
        reference, current, list(reference.columns), evidently_test, threshold
    )

    assert ours == theirs
    assert {c for c, drifted in ours.items() if drifted} >= {"x0", "x1", "x2", "x3", "x11"}


def test_a_window_with_no_rows_is_not_assessed_and_says_so(spark):
    reference = _population(1, 1_000)
    frame = _frames(spark, reference)  # no current rows at all

    m = measure(
        frame,
        window_column="window",
        windows=["baseline", "current"],
        references=["baseline"],
        columns=COLUMNS,
    )
    results = compare(
        m,
        reference="baseline",
        current="current",
        comparison="baseline",
        thresholds=DriftThresholds(),
    )
    verdict = dataset_verdict(results, DriftThresholds())

    assert {r.status for r in results} == {NO_ROWS}
    assert all(r.drifted is None for r in results)
    assert not verdict.drifted
    assert verdict.text == "not assessed: the current window has no rows"


def test_an_all_null_column_is_flagged_and_a_column_null_on_both_sides_is_not_assessed(spark):
    reference = _population(1, 1_000).assign(empty=np.nan)
    current = _population(2, 1_000).assign(empty=np.nan, steady=np.nan)
    columns = [*COLUMNS, MonitoredColumn("empty", "feature", NUMERIC)]

    m = _measured(spark, reference, current, columns=columns)
    results = _by_column(
        compare(
            m,
            reference="baseline",
            current="current",
            comparison="baseline",
            thresholds=DriftThresholds(),
        )
    )

    assert (results["steady"].status, results["steady"].drifted) == (ALL_NULL_CURRENT, True)
    assert "null in all 1000 rows of the current window" in results["steady"].note
    assert (results["empty"].status, results["empty"].drifted) == (ALL_NULL, None)
    assert results["empty"].note == "null in every row of both windows"


def test_a_constant_column_compares_like_any_other(spark):
    reference = _population(1, 2_000).assign(flag=1.0)
    same = _population(2, 2_000).assign(flag=1.0)
    moved = _population(3, 2_000).assign(flag=np.where(np.arange(2_000) < 500, 2.0, 1.0))
    columns = [*COLUMNS, MonitoredColumn("flag", "feature", NUMERIC)]

    for current, drifted in ((same, False), (moved, True)):
        m = _measured(spark, reference, current, columns=columns)
        flag = _by_column(
            compare(
                m,
                reference="baseline",
                current="current",
                comparison="baseline",
                thresholds=DriftThresholds(),
            )
        )["flag"]

        assert flag.status == ASSESSED and flag.drifted is drifted
        assert flag.note == "constant in the baseline window (1)"
        assert flag.ks_statistic == pytest.approx(0.25 if drifted else 0.0)


def test_a_category_unseen_in_the_baseline_is_listed_and_counts(spark):
    reference = _population(1, 3_000)
    current = _population(2, 3_000)
    current.loc[current.index[:600], "colour"] = "purple"

    m = _measured(spark, reference, current)
    colour = _by_column(
        compare(
            m,
            reference="baseline",
            current="current",
            comparison="baseline",
            thresholds=DriftThresholds(),
        )
    )["colour"]

    assert colour.unseen_categories == ("purple",)
    assert colour.note == "categories never seen in the baseline window: purple"
    assert colour.drifted
    assert colour.total_variation == pytest.approx(0.2, abs=0.02)
