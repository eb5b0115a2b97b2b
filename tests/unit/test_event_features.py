"""Event features on small hand-worked frames: error counts over 24/72/168 h, component age,
days since the last failure. Window edges, counts per type, machines kept apart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from featurehouse.features.quality import REASON, with_reasons
from featurehouse.usecase import EVENT_TIMESTAMP
from featurehouse.usecases.predictive_maintenance.datasets import MACHINE_ID as ENTITY_KEY
from featurehouse.usecases.predictive_maintenance.errors import (
    ERROR_FEATURES,
    ERROR_IDS,
    telemetry_grid,
    with_error_counts,
)
from featurehouse.usecases.predictive_maintenance.maintenance import (
    COMPONENTS,
    MAINTENANCE_FEATURES,
    with_component_history,
)
from tests.frames import COMPONENT_SCHEMA, ERRORS_SCHEMA, GRID_SCHEMA, PRECISION, US, D, H, S, T


def _grid(spark, rows):
    return spark.createDataFrame(rows, GRID_SCHEMA)


def _errors(spark, rows):
    return spark.createDataFrame(rows, ERRORS_SCHEMA)


def _components(spark, rows):
    return spark.createDataFrame(rows, COMPONENT_SCHEMA)


def _window_operators(frame) -> int:
    return frame._jdf.queryExecution().executedPlan().toString().count("Window [")


# --- error counts over 24, 72 and 168 hours ---------------------------------------------------


def test_error_counts_over_three_windows_per_type_and_machine(spark):
    grid = _grid(spark, [(1, T), (2, T), (3, T)])
    errors = _errors(
        spark,
        [
            (1, T, "error1"),  # at t: in every window
            (1, T - H, "error3"),  # not an asked-for type: totals only
            (1, T - 24 * H, "error2"),  # exactly 24 h back: out of 24h, in 72h and 168h
            (1, T - 72 * H + S, "error1"),  # 1 s inside 72h
            (1, T - 72 * H, "error2"),  # exactly 72 h back: in 168h only
            (1, T - 168 * H + S, "error2"),  # 1 s inside 168h
            (1, T - 168 * H, "error1"),  # exactly 168 h back: out of every window
            (1, T + S, "error1"),  # after t: out of every window
            (2, T - 100 * H, "error1"),  # machine 2: in its 168h window only
        ],
    )
    expected = spark.createDataFrame(
        [
            # 24h: error1@T, error3@T-1h
            # 72h: + error2@T-24h, error1@T-72h+1s
            # 168h: + error2@T-72h, error2@T-168h+1s
            (1, T, 2, 1, 0, 4, 2, 1, 6, 2, 3),
            # machine 2 sees only its own error, 100 h back
            (2, T, 0, 0, 0, 0, 0, 0, 1, 1, 0),
            # machine 3: zeros, not nulls
            (3, T, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ],
        "machine_id bigint, event_timestamp timestamp, "
        "errors_count_24h bigint, error1_count_24h bigint, error2_count_24h bigint, "
        "errors_count_72h bigint, error1_count_72h bigint, error2_count_72h bigint, "
        "errors_count_168h bigint, error1_count_168h bigint, error2_count_168h bigint",
    )

    actual = with_error_counts(grid, errors, error_ids=("error1", "error2"))

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(timedelta(0), (1, 1, 1), id="at_t_in_all"),
        pytest.param(US, (0, 0, 0), id="1us_after_t_in_none"),
        pytest.param(-24 * H + S, (1, 1, 1), id="24h_minus_1s_in_all"),
        pytest.param(-24 * H, (0, 1, 1), id="exactly_24h_out_of_24h"),
        pytest.param(-72 * H + S, (0, 1, 1), id="72h_minus_1s_in_72h"),
        pytest.param(-72 * H + US, (0, 1, 1), id="72h_minus_1us_in_72h"),
        pytest.param(-72 * H, (0, 0, 1), id="exactly_72h_out_of_72h"),
        pytest.param(-168 * H + S, (0, 0, 1), id="168h_minus_1s_in_168h"),
        pytest.param(-168 * H, (0, 0, 0), id="exactly_168h_out_of_168h"),
    ],
)
def test_error_count_windows_are_open_at_n_hours_back_and_closed_at_t(spark, offset, expected):
    errors = _errors(spark, [(1, T + offset, "error5")])

    (row,) = with_error_counts(_grid(spark, [(1, T)]), errors).collect()

    assert tuple(row[f"errors_count_{h}h"] for h in (24, 72, 168)) == expected
    assert tuple(row[f"error5_count_{h}h"] for h in (24, 72, 168)) == expected
    assert all(row[f"{e}_count_{h}h"] == 0 for e in ERROR_IDS[:4] for h in (24, 72, 168))


def test_error_counts_per_type_add_up_to_total_on_the_telemetry_grid(spark):
    telemetry = spark.createDataFrame(
        [(1, T, 1.0), (1, T, 2.0), (1, T + 48 * H, 1.0)],  # duplicate reading: one grid row
        "machine_id bigint, timestamp timestamp, volt double",
    )
    errors = _errors(
        spark,
        [(1, T - k * 7 * H, ERROR_IDS[k % len(ERROR_IDS)]) for k in range(30)],
    )

    rows = with_error_counts(telemetry_grid(telemetry), errors).collect()

    assert len(rows) == 2
    for row in rows:
        for h in (24, 72, 168):
            assert row[f"errors_count_{h}h"] == sum(row[f"{e}_count_{h}h"] for e in ERROR_IDS)
    at_t = next(r for r in rows if r[EVENT_TIMESTAMP] == T)
    # errors every 7 h back from T: k*7 < N -> 4 in 24h (0,7,14,21), 11 in 72h, 24 in 168h
    assert (at_t.errors_count_24h, at_t.errors_count_72h, at_t.errors_count_168h) == (4, 11, 24)


def test_error_counts_of_all_windows_are_one_window_operator(spark):
    grid = _grid(spark, [(1, T)])
    errors = _errors(spark, [(1, T, "error1")])

    frame = with_error_counts(grid, errors)

    # Every window shares the partitioning and ordering: one sort, one pass over the union.
    assert _window_operators(frame) == 1


def test_error_feature_declaration_windows_tags_history_and_expectations(spark):
    names = ERROR_FEATURES.feature_names
    assert names[:6] == ["errors_count_24h", *(f"{e}_count_24h" for e in ERROR_IDS)]
    assert len(names) == 3 * (1 + len(ERROR_IDS))
    tags = {f.name: dict(f.tags) for f in ERROR_FEATURES.features}
    assert tags["error1_count_72h"] == {"source": "errors", "window": "72h", "error_id": "error1"}
    assert tags["errors_count_168h"] == {"source": "errors", "window": "168h"}
    (errors_source,) = [s for s in ERROR_FEATURES.sources if s.name == "errors"]
    assert errors_source.history == timedelta(hours=168)
    assert ERROR_FEATURES.name == "machine_error_features"
    assert ERROR_FEATURES.view_name == "machine_errors"
    assert {e.severity for e in ERROR_FEATURES.expectations} == {"warn"}

    # The expectations flag a negative count and pass zero.
    batch = spark.createDataFrame([(1, 0), (2, -1)], "machine_id bigint, errors_count_72h bigint")
    (count_72h,) = [e for e in ERROR_FEATURES.expectations if "errors_count_72h" in e.name]
    reasons = {r[ENTITY_KEY]: r[REASON] for r in with_reasons(batch, [count_72h]).collect()}
    assert reasons == {1: None, 2: count_72h.name}


# --- component age and days since the last failure --------------------------------------------

HISTORY_SCHEMA = "machine_id bigint, event_timestamp timestamp, " + ", ".join(
    [f"hours_since_maint_{c} double" for c in COMPONENTS]
    + [f"days_since_failure_{c} double" for c in COMPONENTS]
)


def test_component_history_matches_hand_worked_frame(spark):
    grid = _grid(spark, [(1, T), (1, T + 48 * H), (2, T)])
    maintenance = _components(
        spark,
        [
            (1, T - 10 * H, "comp1"),
            (1, T + 24 * H, "comp3"),  # after T: counts only from T+24h on
        ],
    )
    failures = _components(
        spark,
        [
            (1, T - 5 * D, "comp1"),
            (1, T - D, "comp1"),  # newer: wins over T-5d
            (1, T, "comp2"),  # exactly at T: 0 days
            (1, T - 36 * H, "comp3"),
            (1, T + 72 * H, "comp2"),  # after every grid row: must not leak backwards
            (2, T - 12 * H, "comp1"),
        ],
    )
    expected = spark.createDataFrame(
        [
            # ages: comp1 10 h; a failure is not a replacement record -> comp2 null; comp3 later
            # failures: comp1 1 day, comp2 0 days, comp3 36 h = 1.5 days
            (1, T, 10.0, None, None, None, 1.0, 0.0, 1.5, None),
            # ages: comp1 58 h, comp3 replaced at T+24h -> 24 h
            # failures: comp1 3 days, comp2 2 days (T+72h is in the future), comp3 3.5 days
            (1, T + 48 * H, 58.0, None, 24.0, None, 3.0, 2.0, 3.5, None),
            # machine 2: machine 1's records do not count; its comp1 failed 12 h ago
            (2, T, None, None, None, None, 0.5, None, None, None),
        ],
        HISTORY_SCHEMA,
    )

    actual = with_component_history(grid, maintenance, failures)

    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


@pytest.mark.parametrize(
    ("failure_offset", "expected_days"),
    [
        pytest.param(timedelta(0), 0.0, id="exactly_at_t_is_zero"),
        pytest.param(-S, 1 / 86400, id="1s_before_t"),
        pytest.param(-36 * H, 1.5, id="36h_before_t"),
        pytest.param(-1000 * D, 1000.0, id="long_ago_has_no_window_limit"),
        pytest.param(US, None, id="1us_after_t_is_null"),
        pytest.param(S, None, id="1s_after_t_is_null"),
    ],
)
def test_days_since_failure_counts_failures_at_or_before_t_only(
    spark, failure_offset, expected_days
):
    grid = _grid(spark, [(1, T)])
    failures = _components(spark, [(1, T + failure_offset, "comp4")])

    (row,) = with_component_history(
        grid, _components(spark, []), failures, components=("comp4",)
    ).collect()

    assert row["hours_since_maint_comp4"] is None
    if expected_days is None:
        assert row["days_since_failure_comp4"] is None
    else:
        assert row["days_since_failure_comp4"] == pytest.approx(expected_days, abs=1e-12)


def test_days_since_failure_is_null_before_any_failure_while_age_is_known(spark):
    grid = _grid(spark, [(1, T), (1, T + H)])
    maintenance = _components(spark, [(1, T - 2 * H, "comp1")])
    failures = _components(spark, [(1, T + H, "comp1")])
    expected = spark.createDataFrame(
        [(1, T, 2.0, None), (1, T + H, 3.0, 0.0)],
        "machine_id bigint, event_timestamp timestamp, hours_since_maint_comp1 double, "
        "days_since_failure_comp1 double",
    )

    actual = with_component_history(grid, maintenance, failures, components=("comp1",))

    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


def test_component_history_is_one_window_operator(spark):
    records = _components(spark, [(1, T, "comp1")])

    frame = with_component_history(_grid(spark, [(1, T)]), records, records)

    assert _window_operators(frame) == 1


def test_maintenance_table_builds_age_and_failure_features_from_bronze(spark):
    bronze = {
        "telemetry": spark.createDataFrame(
            [(1, T, 170.0), (1, T + D, 171.0)],
            "machine_id int, timestamp timestamp, volt double",
        ),
        "maintenance": _components(spark, [(1, T - 6 * H, "comp2")]),
        "failures": _components(spark, [(1, T - 2 * D, "comp2")]),
    }
    assert MAINTENANCE_FEATURES.source_names == ["telemetry", "maintenance", "failures"]
    (failures_source,) = [s for s in MAINTENANCE_FEATURES.sources if s.name == "failures"]
    assert failures_source.history is None

    frame = MAINTENANCE_FEATURES.build(bronze)

    assert frame.columns == MAINTENANCE_FEATURES.columns
    rows = {r[EVENT_TIMESTAMP]: r for r in frame.collect()}
    assert rows[T]["hours_since_maint_comp2"] == pytest.approx(6.0)
    assert rows[T + D]["hours_since_maint_comp2"] == pytest.approx(30.0)
    assert rows[T]["days_since_failure_comp2"] == pytest.approx(2.0)
    assert rows[T + D]["days_since_failure_comp2"] == pytest.approx(3.0)
    assert rows[T]["days_since_failure_comp1"] is None


def test_maintenance_declaration_tags_descriptions_and_expectations(spark):
    features = {f.name: f for f in MAINTENANCE_FEATURES.features}
    assert MAINTENANCE_FEATURES.name == "machine_maintenance_features"
    assert MAINTENANCE_FEATURES.view_name == "machine_maintenance"
    assert "last replaced" in features["hours_since_maint_comp1"].description
    assert dict(features["days_since_failure_comp3"].tags) == {
        "source": "failures",
        "component": "comp3",
        "unit": "days",
    }
    assert dict(features["hours_since_maint_comp3"].tags)["source"] == "maintenance"
    assert {e.severity for e in MAINTENANCE_FEATURES.expectations} == {"warn"}

    # A negative age is flagged; a null (no failure yet) passes.
    batch = spark.createDataFrame(
        [(1, None), (2, 0.0), (3, -0.5)], "machine_id bigint, days_since_failure_comp1 double"
    )
    (check,) = [
        e for e in MAINTENANCE_FEATURES.expectations if "days_since_failure_comp1" in e.name
    ]
    reasons = {r[ENTITY_KEY]: r[REASON] for r in with_reasons(batch, [check]).collect()}
    assert reasons == {1: None, 2: None, 3: check.name}
