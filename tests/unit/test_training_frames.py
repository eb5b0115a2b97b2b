"""Training frames on hand-worked inputs: spine rows, labels, splits, metrics, promotion."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from featurehouse.errors import FeaturehouseError
from featurehouse.training.labels import spine_rows, with_label
from featurehouse.training.metrics import (
    best_f1_threshold,
    classification_metrics,
    regression_metrics,
    symmetric_mape,
)
from featurehouse.training.registry import should_promote
from featurehouse.training.split import split_frame
from featurehouse.usecase import EVENT_TIMESTAMP, Column, Label, RawDataset, Spine, Split
from tests.frames import COMPONENT_SCHEMA

ENTITY_KEY = "machine_id"
LABEL = "failure_within_horizon"
READINGS = RawDataset(
    "readings",
    "readings*.csv",
    (Column("timestamp", "timestamp"), Column(ENTITY_KEY, "bigint"), Column("volt", "double")),
    keys=(ENTITY_KEY, "timestamp"),
    time="timestamp",
)
FAILURES = RawDataset(
    "failures",
    "failures*.csv",
    (Column("timestamp", "timestamp"), Column(ENTITY_KEY, "bigint"), Column("component", "string")),
    keys=(ENTITY_KEY, "timestamp", "component"),
    time="timestamp",
)

# 2024-01-01 00:00 UTC is epoch hour 473352 = 3 * 157784 = 24 * 19723: on the 3 h and 24 h grids.
DAY1 = datetime(2024, 1, 1)
H = timedelta(hours=1)
S = timedelta(seconds=1)

TELEMETRY_SCHEMA = "machine_id bigint, timestamp timestamp, volt double"
ENTITY_SCHEMA = "machine_id bigint, event_timestamp timestamp"
FAILURE_SCHEMA = COMPONENT_SCHEMA
LABELLED_SCHEMA = f"machine_id bigint, event_timestamp timestamp, {LABEL} int"


def entity_rows(telemetry, *, stride_hours, start=None, end=None):
    spine = Spine(READINGS, every=timedelta(hours=stride_hours))
    return spine_rows(telemetry, spine, {ENTITY_KEY: "bigint"}, start=start, end=end)


def with_failure_label(entities, failures, *, horizon_hours, observed_until, closed="right"):
    label = Label(LABEL, "event", FAILURES, horizon=timedelta(hours=horizon_hours), closed=closed)
    return with_label(entities, failures, label, [ENTITY_KEY], observed_until=observed_until)


def split_by_time(frame, *, validation_fraction, test_fraction, gap):
    return split_frame(
        frame,
        Split("time"),
        keys=["row"],
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        gap=gap,
    )


# --- entity rows ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def telemetry(spark):
    rows = [(1, DAY1 + h * H, 170.0) for h in range(6)]  # machine 1 at 00:00 .. 05:00
    rows += [(1, DAY1 + 3 * H, 171.0)]  # a second reading in the same hour
    rows += [(2, DAY1 + 3 * H, None), (2, DAY1 + 4 * H, 160.0)]
    return spark.createDataFrame(rows, TELEMETRY_SCHEMA)


def test_entity_rows_keep_one_row_per_machine_on_the_stride_grid(spark, telemetry):
    # stride 3: hours 00:00 and 03:00 (epoch hour divisible by 3); 03:00 read twice -> one row
    expected = spark.createDataFrame(
        [(1, DAY1), (1, DAY1 + 3 * H), (2, DAY1 + 3 * H)], ENTITY_SCHEMA
    )

    actual = entity_rows(telemetry, stride_hours=3)

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    ("start", "end", "expected_hours"),
    [
        pytest.param(None, None, [0, 1, 2, 3, 4, 5], id="no_bounds"),
        pytest.param(DAY1 + 2 * H, DAY1 + 4 * H, [2, 3, 4], id="bounds_are_inclusive"),
        pytest.param(DAY1 + 2 * H + S, DAY1 + 4 * H - S, [3], id="just_inside_bounds"),
        pytest.param(DAY1 + 5 * H, None, [5], id="start_only"),
        pytest.param(None, DAY1, [0], id="end_only"),
        pytest.param(DAY1 + 4 * H, DAY1 + 2 * H, [], id="empty_when_start_after_end"),
    ],
)
def test_entity_rows_keep_timestamps_within_start_and_end(telemetry, start, end, expected_hours):
    actual = entity_rows(
        telemetry.where(F.col(ENTITY_KEY) == 1), stride_hours=1, start=start, end=end
    )

    times = sorted(r[EVENT_TIMESTAMP] for r in actual.collect())
    assert times == [DAY1 + h * H for h in expected_hours]


# --- failure labels ---------------------------------------------------------------------------


def test_failure_labels_match_hand_worked_frame(spark):
    observed_until = DAY1 + 48 * H
    entities = spark.createDataFrame(
        [
            (1, DAY1),
            (1, DAY1 + 24 * H),  # t + 24 h == observed_until: kept
            (1, DAY1 + 25 * H),  # t + 24 h > observed_until: dropped, although a failure follows
            (2, DAY1),
            (3, DAY1),
        ],
        ENTITY_SCHEMA,
    )
    failures = spark.createDataFrame(
        [
            (1, DAY1, "comp1"),  # exactly at t of (1, DAY1): not in (t, t+24h]
            (1, DAY1 + 24 * H, "comp2"),  # t+24h of (1, DAY1): counts; t of (1, DAY1+24h): not
            (1, DAY1 + 36 * H, "comp1"),  # two failures at once: still one row for (1, DAY1+24h)
            (1, DAY1 + 36 * H, "comp3"),
            (3, DAY1 + 6 * H, "comp4"),
        ],
        FAILURE_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            (1, DAY1, 1),  # comp2 at DAY1 + 24h
            (1, DAY1 + 24 * H, 1),  # comp1/comp3 at DAY1 + 36h
            (2, DAY1, 0),  # machine 1's failures are not machine 2's
            (3, DAY1, 1),  # comp4 at DAY1 + 6h
        ],
        LABELLED_SCHEMA,
    )

    actual = with_failure_label(entities, failures, horizon_hours=24, observed_until=observed_until)

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    ("failure_offset", "failure_machine", "expected_label"),
    [
        pytest.param(timedelta(0), 1, 0, id="failure_exactly_at_t_not_counted"),
        pytest.param(S, 1, 1, id="failure_1s_after_t_counted"),
        pytest.param(24 * H, 1, 1, id="failure_exactly_at_t_plus_24h_counted"),
        pytest.param(24 * H + S, 1, 0, id="failure_1s_after_horizon_not_counted"),
        pytest.param(-H, 1, 0, id="failure_before_t_not_counted"),
        pytest.param(H, 2, 0, id="other_machine_failure_not_counted"),
    ],
)
def test_failure_label_is_one_iff_same_machine_fails_in_open_closed_horizon(
    spark, failure_offset, failure_machine, expected_label
):
    t = DAY1 + 12 * H
    entities = spark.createDataFrame([(1, t)], ENTITY_SCHEMA)
    failures = spark.createDataFrame(
        [(failure_machine, t + failure_offset, "comp1")], FAILURE_SCHEMA
    )

    actual = with_failure_label(entities, failures, horizon_hours=24, observed_until=t + 48 * H)

    assert [tuple(r) for r in actual.collect()] == [(1, t, expected_label)]


@pytest.mark.parametrize(
    ("observed_until", "kept"),
    [
        pytest.param(DAY1 + 24 * H, True, id="horizon_ends_exactly_at_observed_until_kept"),
        pytest.param(DAY1 + 24 * H - S, False, id="horizon_ends_1s_after_observed_until_dropped"),
    ],
)
def test_failure_label_drops_rows_whose_horizon_is_not_yet_observed(spark, observed_until, kept):
    entities = spark.createDataFrame([(1, DAY1)], ENTITY_SCHEMA)
    failures = spark.createDataFrame([], FAILURE_SCHEMA)

    actual = with_failure_label(entities, failures, horizon_hours=24, observed_until=observed_until)

    assert actual.collect() == ([(1, DAY1, 0)] if kept else [])


# --- time split -------------------------------------------------------------------------------


def _hourly_frame(hours: int) -> pd.DataFrame:
    """Rows at hours 0 .. hours, shuffled, so the split cannot rely on input order."""
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(hours + 1), unit="h")
    frame = pd.DataFrame({EVENT_TIMESTAMP: stamps, "row": np.arange(hours + 1)})
    return frame.sample(frac=1.0, random_state=7)


def _hours(part: pd.DataFrame) -> list[int]:
    return sorted(part["row"].tolist())


def test_split_by_time_cuts_span_fractions_and_purges_gap_before_each_boundary():
    # Hours 0..100: span 100 h. test_start = 100 - 0.2 * 100 = 80 h;
    # validation_start = 80 - 0.2 * 100 = 60 h. gap 5 h:
    #   train      t < 60 - 5 = 55        -> 0..54 (55 is exactly gap before the boundary: out)
    #   validation 60 <= t < 80 - 5 = 75  -> 60..74
    #   test       t >= 80                -> 80..100
    split = split_by_time(
        _hourly_frame(100), validation_fraction=0.2, test_fraction=0.2, gap=timedelta(hours=5)
    )

    assert split.validation_start == pd.Timestamp("2024-01-01") + pd.Timedelta(hours=60)
    assert split.test_start == pd.Timestamp("2024-01-01") + pd.Timedelta(hours=80)
    assert _hours(split.train) == list(range(0, 55))
    assert _hours(split.validation) == list(range(60, 75))
    assert _hours(split.test) == list(range(80, 101))


@pytest.mark.parametrize("gap_hours", [0, 1, 5])
def test_split_by_time_parts_do_not_overlap_and_are_ordered_in_time(gap_hours):
    split = split_by_time(
        _hourly_frame(100),
        validation_fraction=0.25,
        test_fraction=0.25,
        gap=timedelta(hours=gap_hours),
    )
    train, validation, test = (_hours(p) for p in (split.train, split.validation, split.test))

    assert not set(train) & set(validation)
    assert not set(validation) & set(test)
    assert not set(train) & set(test)
    assert max(train) < min(validation) and max(validation) < min(test)
    # Exactly the 2 * gap purged hours go missing: 101 rows in all.
    assert len(train) + len(validation) + len(test) == 101 - 2 * gap_hours


@pytest.mark.parametrize(
    ("hour", "expected_part"),
    [
        pytest.param(54, "train", id="gap_plus_1h_before_validation_in_train"),
        pytest.param(55, None, id="exactly_gap_before_validation_dropped"),
        pytest.param(59, None, id="1h_before_validation_dropped"),
        pytest.param(60, "validation", id="validation_boundary_in_validation"),
        pytest.param(74, "validation", id="gap_plus_1h_before_test_in_validation"),
        pytest.param(75, None, id="exactly_gap_before_test_dropped"),
        pytest.param(80, "test", id="test_boundary_in_test"),
    ],
)
def test_split_by_time_places_rows_near_boundaries(hour, expected_part):
    split = split_by_time(
        _hourly_frame(100), validation_fraction=0.2, test_fraction=0.2, gap=timedelta(hours=5)
    )
    parts = {"train": split.train, "validation": split.validation, "test": split.test}

    found = [name for name, part in parts.items() if hour in set(part["row"])]
    assert found == ([expected_part] if expected_part else [])


# --- threshold and metrics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        # Thresholds 0.1, 0.35, 0.4, 0.8 predict {all}, {.35,.4,.8}, {.4,.8}, {.8}:
        #   P/R/F1 = .5/1/.667, .667/1/.8, .5/.5/.5, 1/.5/.667 -> best 0.35
        pytest.param([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.35, id="hand_worked"),
        # Perfect separation: threshold 0.6 gives P = R = 1
        pytest.param([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.9], 0.6, id="separable"),
        # Threshold 0.2 (all positive): P 2/3, R 1, F1 0.8; 0.7: P 1/2, R 1/2; 0.9: P 1, R 1/2,
        # F1 2/3 -> 0.2
        pytest.param([1, 0, 1], [0.2, 0.7, 0.9], 0.2, id="best_is_lowest_threshold"),
        pytest.param([0, 0, 0], [0.1, 0.5, 0.9], 0.5, id="only_negatives_give_default"),
        pytest.param([1, 1], [0.1, 0.9], 0.5, id="only_positives_give_default"),
    ],
)
def test_best_f1_threshold(labels, scores, expected):
    assert best_f1_threshold(np.array(labels), np.array(scores)) == pytest.approx(expected)


def test_classification_metrics_match_hand_worked_example():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    # threshold 0.35 predicts [0, 1, 1, 1]: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8.
    # ROC AUC: positive/negative pairs (.35>.1), (.35<.4), (.8>.1), (.8>.4) -> 3/4.
    # PR AUC (average precision): .8 (R .5, P 1), then .35 (R 1, P 2/3) -> .5 * 1 + .5 * 2/3.
    # Accuracy: 3 of the 4 predictions are right.
    metrics = classification_metrics(labels, scores, 0.35)

    assert metrics == pytest.approx(
        {
            "accuracy": 0.75,
            "precision": 2 / 3,
            "recall": 1.0,
            "f1": 0.8,
            "roc_auc": 0.75,
            "pr_auc": 0.5 + 0.5 * 2 / 3,
            "positive_rate": 0.5,
            "rows": 4.0,
        }
    )


def test_classification_metrics_threshold_is_inclusive():
    # score == threshold predicts positive: [1, 1] -> P 1/2, R 1
    metrics = classification_metrics(np.array([0, 1]), np.array([0.5, 0.5]), 0.5)

    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # all negative, predicted [0, 1, 1]: no TP -> P, R, F1 0 (zero_division=0)
        pytest.param([0, 0, 0], {"precision": 0.0, "recall": 0.0, "f1": 0.0, "positive_rate": 0.0}),
        # all positive, predicted [0, 1, 1]: P 1, R 2/3, F1 2 * (2/3) / (5/3) = 0.8
        pytest.param(
            [1, 1, 1], {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "positive_rate": 1.0}
        ),
    ],
    ids=["only_negatives", "only_positives"],
)
def test_classification_metrics_of_one_class_labels_have_nan_aucs(labels, expected):
    metrics = classification_metrics(np.array(labels), np.array([0.1, 0.5, 0.9]), 0.5)

    assert math.isnan(metrics["roc_auc"])
    assert math.isnan(metrics["pr_auc"])
    assert metrics["rows"] == 3.0
    assert {k: metrics[k] for k in expected} == pytest.approx(expected)


# --- promotion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenger", "champion", "min_improvement", "promoted"),
    [
        pytest.param(0.5, None, 0.0, True, id="no_champion"),
        pytest.param(0.5, float("nan"), 0.0, True, id="nan_champion"),
        pytest.param(float("nan"), None, 0.0, True, id="nan_challenger_without_champion"),
        pytest.param(float("nan"), 0.5, 0.0, False, id="nan_challenger_vs_champion"),
        pytest.param(0.75, 0.5, 0.0, True, id="better"),
        pytest.param(0.5, 0.5, 0.0, False, id="equal_is_not_promoted"),
        pytest.param(0.25, 0.5, 0.0, False, id="worse"),
        # 0.5 + 0.25 = 0.75 exactly in binary floating point
        pytest.param(0.75, 0.5, 0.25, False, id="improvement_equal_to_minimum_not_promoted"),
        pytest.param(0.8125, 0.5, 0.25, True, id="improvement_above_minimum"),
        pytest.param(0.625, 0.5, 0.25, False, id="better_but_below_minimum"),
        pytest.param(0.25, None, 0.5, True, id="no_champion_ignores_minimum"),
    ],
)
def test_should_promote(challenger, champion, min_improvement, promoted):
    assert should_promote("pr_auc", challenger, champion, min_improvement) is promoted


@pytest.mark.parametrize(
    ("challenger", "champion", "promoted"),
    [
        pytest.param(9.0, 10.0, True, id="lower_error_is_better"),
        pytest.param(11.0, 10.0, False, id="higher_error_is_worse"),
        pytest.param(10.0, 10.0, False, id="equal_error_is_not_promoted"),
    ],
)
def test_should_promote_on_an_error_metric_wants_it_lower(challenger, champion, promoted):
    assert should_promote("rmse", challenger, champion, 0.0) is promoted
    assert should_promote("mae", challenger, champion, 0.5) is (promoted and challenger < 9.5)


# --- labels: closed ends, sums, composite keys ---------------------------------------------


@pytest.mark.parametrize(
    ("closed", "offset", "expected"),
    [
        pytest.param("right", timedelta(0), 0, id="right_excludes_t"),
        pytest.param("right", 24 * H, 1, id="right_includes_t_plus_h"),
        pytest.param("both", timedelta(0), 1, id="both_includes_t"),
        pytest.param("both", 24 * H, 1, id="both_includes_t_plus_h"),
        pytest.param("left", timedelta(0), 1, id="left_includes_t"),
        pytest.param("left", 24 * H, 0, id="left_excludes_t_plus_h"),
        pytest.param("left", 24 * H - timedelta(microseconds=1), 1, id="left_includes_just_before"),
    ],
)
def test_a_labels_closed_ends_decide_whether_an_event_at_the_edge_counts(
    spark, closed, offset, expected
):
    t = DAY1 + 12 * H
    entities = spark.createDataFrame([(1, t)], ENTITY_SCHEMA)
    failures = spark.createDataFrame([(1, t + offset, "comp1")], FAILURE_SCHEMA)

    actual = with_failure_label(
        entities, failures, horizon_hours=24, observed_until=t + 48 * H, closed=closed
    )

    assert [tuple(r) for r in actual.collect()] == [(1, t, expected)]


SALES = RawDataset(
    "sales",
    "sales*.parquet",
    (
        Column("date", "timestamp"),
        Column("store_id", "bigint"),
        Column("item_id", "bigint"),
        Column("units", "bigint"),
    ),
    keys=("store_id", "item_id", "date"),
    time="date",
)
D = timedelta(days=1)


def test_a_sum_label_adds_the_next_days_of_the_same_composite_key(spark):
    """Units over (t, t + 3d] per (store, item): the day itself is not in it, day t + 3 is."""
    sales = spark.createDataFrame(
        [
            (DAY1 + d * D, 1, 1, units)
            for d, units in enumerate([5, 1, 2, 3, 4, 100])  # days 0..5
        ]
        + [(DAY1 + D, 1, 2, 7), (DAY1 + D, 2, 1, 11)],  # other items / stores
        "date timestamp, store_id bigint, item_id bigint, units bigint",
    )
    entities = spark.createDataFrame(
        [(1, 1, DAY1), (1, 1, DAY1 + D), (1, 2, DAY1), (2, 2, DAY1)],
        "store_id bigint, item_id bigint, event_timestamp timestamp",
    )
    label = Label("units_next_3d", "sum", SALES, horizon=3 * D, column="units")
    expected = spark.createDataFrame(
        [
            (1, 1, DAY1, 1.0 + 2 + 3),  # days 1, 2, 3
            (1, 1, DAY1 + D, 2.0 + 3 + 4),  # days 2, 3, 4
            (1, 2, DAY1, 7.0),  # only its own item's sales
            (2, 2, DAY1, 0.0),  # no sales in the horizon: 0, not null
        ],
        "store_id bigint, item_id bigint, event_timestamp timestamp, units_next_3d double",
    )

    actual = with_label(
        entities, sales, label, ["store_id", "item_id"], observed_until=DAY1 + 5 * D
    )

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


# --- regression metrics --------------------------------------------------------------------


def test_regression_metrics_match_hand_worked_example():
    actual = np.array([10.0, 0.0, 4.0, 6.0])
    predicted = np.array([8.0, 0.0, 5.0, 9.0])
    # errors 2, 0, 1, 3: MAE 6/4, RMSE sqrt(14/4); mean 5, SS_tot 25+25+1+1 = 52, SS_res 14.
    # sMAPE terms |e| / mean(|a|, |p|): 2/9, 0 (0/0 counts as exact), 1/4.5, 3/7.5.
    metrics = regression_metrics(actual, predicted)

    assert metrics == pytest.approx(
        {
            "mse": 3.5,
            "mae": 1.5,
            "rmse": math.sqrt(3.5),
            "smape": 100 * (2 / 9 + 0 + 1 / 4.5 + 3 / 7.5) / 4,
            "r2": 1 - 14 / 52,
            "mean_actual": 5.0,
            "rows": 4.0,
        }
    )


def test_smape_is_200_when_one_side_is_zero_and_0_when_both_are():
    assert symmetric_mape(np.array([0.0, 0.0]), np.array([0.0, 0.0])) == 0.0
    assert symmetric_mape(np.array([0.0]), np.array([5.0])) == pytest.approx(200.0)


def test_r2_of_a_constant_target_is_nan_not_an_error():
    metrics = regression_metrics(np.array([3.0, 3.0]), np.array([2.0, 4.0]))
    assert math.isnan(metrics["r2"]) and metrics["mae"] == 1.0


# --- splits by entity ------------------------------------------------------------------------


def _entity_frame(entities: int, hours: int) -> pd.DataFrame:
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(hours), unit="h")
    return pd.DataFrame(
        [(e, t) for e in range(entities) for t in stamps], columns=["unit", EVENT_TIMESTAMP]
    )


def test_split_by_entity_holds_whole_entities_out_and_is_stable():
    frame = _entity_frame(200, 5)

    split = split_frame(
        frame, Split("entity"), keys=["unit"], validation_fraction=0.2, test_fraction=0.25,
        gap=timedelta(hours=1),
    )  # fmt: skip
    again = split_frame(
        frame.sample(frac=1.0, random_state=3), Split("entity"), keys=["unit"],
        validation_fraction=0.2, test_fraction=0.25, gap=timedelta(hours=1),
    )  # fmt: skip

    units = {name: set(part["unit"]) for name, part in split.parts().items()}
    assert not units["train"] & units["test"] and not units["train"] & units["validation"]
    assert not units["validation"] & units["test"]
    assert sum(len(u) for u in units.values()) == 200  # every entity somewhere, whole
    assert all(len(part) == 5 * len(units[n]) for n, part in split.parts().items())
    assert 30 <= len(units["test"]) <= 70 and 20 <= len(units["validation"]) <= 60
    assert {n: set(p["unit"]) for n, p in again.parts().items()} == units


def test_split_by_time_and_entity_tests_held_out_entities_in_the_later_period():
    frame = _entity_frame(200, 101)

    split = split_frame(
        frame, Split("time_and_entity"), keys=["unit"], validation_fraction=0.2,
        test_fraction=0.2, gap=timedelta(hours=5),
    )  # fmt: skip

    start = pd.Timestamp("2024-01-01")
    assert split.test[EVENT_TIMESTAMP].min() == start + pd.Timedelta(hours=80)
    assert split.train[EVENT_TIMESTAMP].max() == start + pd.Timedelta(hours=54)
    assert not set(split.train["unit"]) & set(split.test["unit"])


def test_split_by_entity_with_too_few_entities_says_so():
    with pytest.raises(FeaturehouseError, match="a split by entity needs entities in train"):
        split_frame(
            _entity_frame(1, 10), Split("entity"), keys=["unit"], validation_fraction=0.2,
            test_fraction=0.2, gap=timedelta(hours=1),
        )  # fmt: skip
