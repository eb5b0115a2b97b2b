"""Feature transforms on small hand-worked frames: window edges, nulls, machines kept apart."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from featurehouse.usecase import EVENT_TIMESTAMP
from featurehouse.usecases.predictive_maintenance import USE_CASE
from featurehouse.usecases.predictive_maintenance.datasets import MACHINE_ID as ENTITY_KEY
from featurehouse.usecases.predictive_maintenance.errors import telemetry_grid, with_error_counts
from featurehouse.usecases.predictive_maintenance.machines import with_machine_attributes
from featurehouse.usecases.predictive_maintenance.maintenance import with_hours_since_maintenance
from featurehouse.usecases.predictive_maintenance.telemetry import with_rolling_telemetry_stats
from tests.frames import (
    COMPONENT_SCHEMA,
    ERRORS_SCHEMA,
    GRID_SCHEMA,
    PRECISION,
    TELEMETRY_SCHEMA,
    H,
    S,
    T,
)


def _telemetry(spark, rows):
    """Rows of (machine_id, timestamp, volt, rotate); pressure and vibration are constant."""
    return spark.createDataFrame(
        [(m, ts, volt, rotate, 100.0, 40.0) for m, ts, volt, rotate in rows], TELEMETRY_SCHEMA
    )


# --- rolling telemetry statistics -------------------------------------------------------------


def test_rolling_stats_match_hand_worked_frame_with_nulls_and_two_machines(spark):
    # Window 3 h: a row at t sees the machine's readings at t-2h, t-1h and t.
    telemetry = _telemetry(
        spark,
        [
            (1, T, 1.0, 10.0),
            (1, T + H, 2.0, None),
            (1, T + 2 * H, 4.0, 30.0),
            (1, T + 3 * H, None, 50.0),
            # Machine 2 reads at the same hours as machine 1: its values must not mix in.
            (2, T + H, 100.0, 7.0),
            (2, T + 2 * H, 200.0, 7.0),
        ],
    )
    expected = spark.createDataFrame(
        [
            # volt {1}; rotate {10}: one reading -> std null
            (1, T, 1.0, None, 10.0, None),
            # volt {1,2}: mean 1.5, std sqrt((0.25+0.25)/1) = sqrt(0.5); rotate {10, null} -> {10}
            (1, T + H, 1.5, math.sqrt(0.5), 10.0, None),
            # volt {1,2,4}: mean 7/3, squares 16/9+1/9+25/9 = 42/9, /2 -> std sqrt(7/3)
            # rotate {10, null, 30}: mean 20, std sqrt((100+100)/1) = sqrt(200)
            (1, T + 2 * H, 7 / 3, math.sqrt(7 / 3), 20.0, math.sqrt(200)),
            # 1 reading (T) is now out; volt {2,4,null}: mean 3, std sqrt(2); rotate {null,30,50}
            (1, T + 3 * H, 3.0, math.sqrt(2), 40.0, math.sqrt(200)),
            (2, T + H, 100.0, None, 7.0, None),
            # volt {100,200}: mean 150, std sqrt(2 * 50^2) = sqrt(5000); rotate {7,7}: std 0
            (2, T + 2 * H, 150.0, math.sqrt(5000), 7.0, 0.0),
        ],
        "machine_id bigint, event_timestamp timestamp, volt_mean_3h double, volt_std_3h double, "
        "rotate_mean_3h double, rotate_std_3h double",
    )

    actual = with_rolling_telemetry_stats(telemetry, sensors=("volt", "rotate"), windows_hours=(3,))

    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


@pytest.mark.parametrize("hours", [3, 24])
def test_rolling_stats_exclude_reading_exactly_window_hours_earlier(spark, hours):
    telemetry = _telemetry(spark, [(1, T - hours * H, 10.0, 0.0), (1, T, 30.0, 0.0)])

    actual = with_rolling_telemetry_stats(telemetry, sensors=("volt",), windows_hours=(hours,))

    # The window is (T - N h, T]: the earlier reading sits on the open end, so T sees {30} only.
    latest = actual.where(F.col(EVENT_TIMESTAMP) == T).collect()
    assert [tuple(r) for r in latest] == [(1, T, 30.0, None)]


@pytest.mark.parametrize("hours", [3, 24])
def test_rolling_stats_include_reading_one_second_inside_window(spark, hours):
    telemetry = _telemetry(spark, [(1, T - hours * H + S, 10.0, 0.0), (1, T, 30.0, 0.0)])
    expected = spark.createDataFrame(
        [
            (1, T - hours * H + S, 10.0, None),
            # {10, 30}: mean 20, std sqrt((100 + 100) / 1) = sqrt(200)
            (1, T, 20.0, math.sqrt(200)),
        ],
        f"machine_id bigint, event_timestamp timestamp, volt_mean_{hours}h double, "
        f"volt_std_{hours}h double",
    )

    actual = with_rolling_telemetry_stats(telemetry, sensors=("volt",), windows_hours=(hours,))

    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


def test_rolling_stats_of_only_null_readings_are_null(spark):
    telemetry = _telemetry(spark, [(1, T, None, 1.0), (1, T + H, None, 1.0)])
    expected = spark.createDataFrame(
        [(1, T, None, None), (1, T + H, None, None)],
        "machine_id bigint, event_timestamp timestamp, volt_mean_3h double, volt_std_3h double",
    )

    actual = with_rolling_telemetry_stats(telemetry, sensors=("volt",), windows_hours=(3,))

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_rolling_stats_cast_int_machine_id_to_bigint_and_name_columns_by_window_sensor_stat(
    spark,
):
    telemetry = spark.createDataFrame(
        [(7, T, 1.0, 2.0, 3.0, 4.0)],
        "machine_id int, timestamp timestamp, volt double, rotate double, pressure double, "
        "vibration double",
    )

    actual = with_rolling_telemetry_stats(
        telemetry, sensors=("volt", "rotate"), windows_hours=(1, 3)
    )

    assert actual.dtypes == [
        ("machine_id", "bigint"),
        ("event_timestamp", "timestamp"),
        ("volt_mean_1h", "double"),
        ("volt_std_1h", "double"),
        ("rotate_mean_1h", "double"),
        ("rotate_std_1h", "double"),
        ("volt_mean_3h", "double"),
        ("volt_std_3h", "double"),
        ("rotate_mean_3h", "double"),
        ("rotate_std_3h", "double"),
    ]


# --- error counts -----------------------------------------------------------------------------


def test_telemetry_grid_is_one_row_per_machine_and_hour(spark):
    telemetry = _telemetry(
        spark, [(1, T, 1.0, 1.0), (1, T, 2.0, 2.0), (1, T + H, 1.0, 1.0), (2, T, 1.0, 1.0)]
    )
    expected = spark.createDataFrame([(1, T), (1, T + H), (2, T)], GRID_SCHEMA)

    assert_df_equality(
        telemetry_grid(telemetry), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_error_counts_match_hand_worked_frame(spark):
    telemetry = _telemetry(
        spark,
        [
            (1, T - 24 * H, 1.0, 1.0),
            (1, T, 1.0, 1.0),
            (1, T, 1.0, 1.0),  # duplicate reading: still one grid row
            (1, T + H, 1.0, 1.0),
            (2, T, 1.0, 1.0),
            (3, T, 1.0, 1.0),  # no errors at all
        ],
    )
    errors = spark.createDataFrame(
        [
            (1, T - 24 * H, "error2"),  # exactly 24 h before T
            (1, T - 24 * H + S, "error2"),  # 24 h - 1 s before T
            (1, T - 23 * H, "error3"),  # between grid hours; exactly 24 h before T + 1 h
            (1, T, "error1"),  # exactly at T
            (1, T + 30 * timedelta(minutes=1), "error1"),  # after T, before T + 1 h
            (2, T, "error1"),
        ],
        ERRORS_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            # (T-48h, T-24h]: error2 at T-24h (an error at t itself counts)
            (1, T - 24 * H, 1, 0, 1, 0, 0, 0),
            # (T-24h, T]: error2 at T-24h+1s, error3 at T-23h, error1 at T; error2 at T-24h out
            (1, T, 3, 1, 1, 1, 0, 0),
            # (T-23h, T+1h]: error1 at T and T+30min; error3 at T-23h is exactly 24 h back: out
            (1, T + H, 2, 2, 0, 0, 0, 0),
            # machine 2 sees only its own error
            (2, T, 1, 1, 0, 0, 0, 0),
            # machine 3: zeros, not nulls
            (3, T, 0, 0, 0, 0, 0, 0),
        ],
        "machine_id bigint, event_timestamp timestamp, errors_count_24h bigint, "
        "error1_count_24h bigint, error2_count_24h bigint, error3_count_24h bigint, "
        "error4_count_24h bigint, error5_count_24h bigint",
    )

    actual = with_error_counts(telemetry_grid(telemetry), errors, windows_hours=(24,))

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    ("error_offset", "expected_count"),
    [
        pytest.param(timedelta(0), 1, id="exactly_at_t_counts"),
        pytest.param(-24 * H + S, 1, id="24h_minus_1s_before_t_counts"),
        pytest.param(-24 * H, 0, id="exactly_24h_before_t_does_not_count"),
        pytest.param(S, 0, id="1s_after_t_does_not_count"),
    ],
)
def test_error_counts_window_is_open_at_24h_back_and_closed_at_t(
    spark, error_offset, expected_count
):
    grid = spark.createDataFrame([(1, T)], GRID_SCHEMA)
    errors = spark.createDataFrame([(1, T + error_offset, "error4")], ERRORS_SCHEMA)

    (row,) = with_error_counts(grid, errors).collect()

    assert row["errors_count_24h"] == expected_count
    assert row["error4_count_24h"] == expected_count
    assert row["error1_count_24h"] == 0


def test_error_counts_with_custom_ids_and_hours_count_other_types_in_total_only(spark):
    grid = spark.createDataFrame([(1, T)], GRID_SCHEMA)
    errors = spark.createDataFrame(
        [
            (1, T, "error1"),
            (1, T - 30 * timedelta(minutes=1), "error2"),  # in (T-1h, T]
            (1, T - H, "error1"),  # exactly 1 h back: out
        ],
        ERRORS_SCHEMA,
    )
    # total counts error1 at T and error2 at T-30min = 2; error1 only the one at T = 1
    expected = spark.createDataFrame(
        [(1, T, 2, 1)],
        "machine_id bigint, event_timestamp timestamp, errors_count_1h bigint, "
        "error1_count_1h bigint",
    )

    actual = with_error_counts(grid, errors, error_ids=("error1",), windows_hours=(1,))

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_error_counts_are_zero_when_there_are_no_errors_at_all(spark):
    grid = spark.createDataFrame([(1, T), (2, T)], GRID_SCHEMA)
    errors = spark.createDataFrame([], ERRORS_SCHEMA)
    expected = spark.createDataFrame(
        [(1, T, 0, 0), (2, T, 0, 0)],
        "machine_id bigint, event_timestamp timestamp, errors_count_24h bigint, "
        "error1_count_24h bigint",
    )

    actual = with_error_counts(grid, errors, error_ids=("error1",), windows_hours=(24,))

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


# --- hours since maintenance ------------------------------------------------------------------


def test_hours_since_maintenance_match_hand_worked_frame(spark):
    grid = spark.createDataFrame([(1, T), (1, T + 6 * H), (2, T)], GRID_SCHEMA)
    maintenance = spark.createDataFrame(
        [
            (1, T - 30 * H, "comp1"),
            (1, T - 2 * H, "comp1"),  # newer: wins over T-30h
            (1, T + 7 * H, "comp1"),  # after every grid row: must not leak backwards
            (1, T, "comp2"),  # exactly at T: 0 hours
            (1, T - 5 * H, "comp3"),  # component not asked for
            (2, T - 90 * timedelta(minutes=1), "comp2"),
        ],
        COMPONENT_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            (1, T, 2.0, 0.0),
            # comp1 last at T-2h -> 6 + 2 = 8; comp2 at T -> 6 (the T+7h record is in the future)
            (1, T + 6 * H, 8.0, 6.0),
            # machine 2: comp1 never serviced (machine 1's records do not count) -> null;
            # comp2 90 min ago -> 1.5
            (2, T, None, 1.5),
        ],
        "machine_id bigint, event_timestamp timestamp, hours_since_maint_comp1 double, "
        "hours_since_maint_comp2 double",
    )

    actual = with_hours_since_maintenance(grid, maintenance, components=("comp1", "comp2"))

    assert_approx_df_equality(
        actual, expected, PRECISION, ignore_row_order=True, ignore_nullable=True
    )


@pytest.mark.parametrize(
    ("maintenance_offset", "expected_hours"),
    [
        pytest.param(timedelta(0), 0.0, id="exactly_at_t_is_zero"),
        pytest.param(-S, 1 / 3600, id="1s_before_t"),
        pytest.param(-1000 * H, 1000.0, id="long_ago_has_no_window_limit"),
        pytest.param(S, None, id="1s_after_t_is_null"),
    ],
)
def test_hours_since_maintenance_counts_records_at_or_before_t_only(
    spark, maintenance_offset, expected_hours
):
    grid = spark.createDataFrame([(1, T)], GRID_SCHEMA)
    maintenance = spark.createDataFrame([(1, T + maintenance_offset, "comp4")], COMPONENT_SCHEMA)

    (row,) = with_hours_since_maintenance(grid, maintenance, components=("comp4",)).collect()

    if expected_hours is None:
        assert row["hours_since_maint_comp4"] is None
    else:
        assert row["hours_since_maint_comp4"] == pytest.approx(expected_hours, abs=1e-12)


def test_hours_since_maintenance_is_null_when_machine_has_no_records(spark):
    grid = spark.createDataFrame([(1, T)], GRID_SCHEMA)
    maintenance = spark.createDataFrame([], COMPONENT_SCHEMA)
    expected = spark.createDataFrame(
        [(1, T, None, None, None, None)],
        "machine_id bigint, event_timestamp timestamp, hours_since_maint_comp1 double, "
        "hours_since_maint_comp2 double, hours_since_maint_comp3 double, "
        "hours_since_maint_comp4 double",
    )

    actual = with_hours_since_maintenance(grid, maintenance)

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


# --- machine attributes -----------------------------------------------------------------------


def test_machine_attributes_hold_from_epoch_with_bigint_keys_and_age(spark):
    machines = spark.createDataFrame(
        [(1, "model3", 18), (2, "model4", 0), (3, None, None)],
        "machine_id int, model string, age int",
    )
    epoch = datetime(1970, 1, 1)
    expected = spark.createDataFrame(
        [(1, epoch, "model3", 18), (2, epoch, "model4", 0), (3, epoch, None, None)],
        "machine_id bigint, event_timestamp timestamp, model string, age bigint",
    )

    actual = with_machine_attributes(machines)

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


# --- declarations -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bronze(spark):
    """One or two rows of each bronze table, with the ingest bookkeeping columns."""
    extra = (T, "raw/file.csv")
    bookkeeping = ", ingested_at timestamp, source_file string"
    return {
        "telemetry": spark.createDataFrame(
            [
                (1, T, 170.0, 450.0, 100.0, 40.0, *extra),
                (1, T + H, None, 440.0, 99.0, 41.0, *extra),
            ],
            TELEMETRY_SCHEMA + bookkeeping,
        ),
        "errors": spark.createDataFrame([(1, T, "error1", *extra)], ERRORS_SCHEMA + bookkeeping),
        "maintenance": spark.createDataFrame(
            [(1, T - H, "comp1", *extra)], COMPONENT_SCHEMA + bookkeeping
        ),
        "failures": spark.createDataFrame(
            [(1, T + H, "comp1", *extra)], COMPONENT_SCHEMA + bookkeeping
        ),
        "machines": spark.createDataFrame(
            [(1, "model3", 18, *extra)], "machine_id bigint, model string, age bigint" + bookkeeping
        ),
    }


@pytest.mark.parametrize("table", USE_CASE.tables, ids=lambda t: t.name)
def test_feature_table_build_gives_declared_columns_and_types(bronze, table):
    frame = table.build({key: bronze[key] for key in table.source_names})

    assert frame.columns == table.columns
    types = dict(frame.dtypes)
    assert types[ENTITY_KEY] == "bigint"
    assert types[EVENT_TIMESTAMP] == "timestamp"
    assert {f.name: types[f.name] for f in table.features} == {
        f.name: f.dtype for f in table.features
    }
    assert frame.count() > 0
