from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featurehouse.usecases.predictive_maintenance.simulator import (
    COMPONENTS,
    ERROR_IDS,
    MODELS,
    RAW_FILE_NAMES,
    TELEMETRY_SIGNALS,
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)

# Header lines of the public Azure PdM files, copied verbatim (quotes included).
REAL_HEADERS = {
    "machines": '"machineID","model","age"',
    "telemetry": '"datetime","machineID","volt","rotate","pressure","vibration"',
    "errors": '"datetime","machineID","errorID"',
    "maintenance": '"datetime","machineID","comp"',
    "failures": '"datetime","machineID","failure"',
}
COLUMNS = {
    "machines": ["machineID", "model", "age"],
    "telemetry": ["datetime", "machineID", "volt", "rotate", "pressure", "vibration"],
    "errors": ["datetime", "machineID", "errorID"],
    "maintenance": ["datetime", "machineID", "comp"],
    "failures": ["datetime", "machineID", "failure"],
}
DATETIME_COLUMNS = {key: ["datetime"] for key in COLUMNS if key != "machines"}
# Direction in which each component's wear moves its telemetry signal.
SIGNAL_DIRECTION = {"comp1": 1.0, "comp2": -1.0, "comp3": 1.0, "comp4": 1.0}

SMALL = FleetSpec(machines=4, days=5, seed=3)
# Large enough for stable statistics, small enough to simulate in well under a second.
STUDY = FleetSpec(machines=120, days=120, seed=11)


@pytest.fixture(scope="module")
def default_fleet() -> dict[str, pd.DataFrame]:
    return simulate_fleet(FleetSpec())


@pytest.fixture(scope="module")
def study_fleet() -> dict[str, pd.DataFrame]:
    return simulate_fleet(STUDY)


def _window_mask(telemetry: pd.DataFrame, events: pd.DataFrame, hours: int) -> pd.Series:
    """True for telemetry rows in the `hours` hours up to and including an event's hour."""
    rows = [
        pd.DataFrame(
            {
                "machineID": events["machineID"],
                "datetime": events["datetime"] - pd.Timedelta(hours=lag),
            }
        )
        for lag in range(hours)
    ]
    window = pd.concat(rows).drop_duplicates()
    keys = pd.MultiIndex.from_frame(telemetry[["machineID", "datetime"]])
    return pd.Series(keys.isin(pd.MultiIndex.from_frame(window)), index=telemetry.index)


def test_same_seed_gives_identical_frames_and_another_seed_differs() -> None:
    first, again, other = (
        simulate_fleet(SMALL),
        simulate_fleet(SMALL),
        simulate_fleet(FleetSpec(machines=4, days=5, seed=4)),
    )

    for key in COLUMNS:
        pd.testing.assert_frame_equal(first[key], again[key])
    assert not np.array_equal(first["telemetry"]["volt"], other["telemetry"]["volt"])


def test_frames_have_the_real_columns_and_dtypes() -> None:
    frames = simulate_fleet(SMALL)

    assert set(frames) == set(COLUMNS)
    for key, columns in COLUMNS.items():
        frame = frames[key]
        assert list(frame.columns) == columns, key
        assert frame["machineID"].dtype == np.int64, key
        for column in DATETIME_COLUMNS.get(key, []):
            assert frame[column].dtype == "datetime64[ns]", key
    assert frames["machines"]["age"].dtype == np.int64
    assert all(frames["telemetry"][signal].dtype == np.float64 for signal in TELEMETRY_SIGNALS)


def test_telemetry_has_one_row_per_machine_hour_sorted_by_machine_then_time() -> None:
    telemetry = simulate_fleet(SMALL)["telemetry"]
    hours = pd.date_range(SMALL.start, periods=SMALL.days * 24, freq="h")

    assert len(telemetry) == SMALL.machines * SMALL.days * 24
    expected_ids = np.repeat(np.arange(1, SMALL.machines + 1), len(hours))
    np.testing.assert_array_equal(telemetry["machineID"], expected_ids)
    np.testing.assert_array_equal(telemetry["datetime"], np.tile(hours.values, SMALL.machines))


def test_telemetry_levels_match_the_real_data(default_fleet: dict[str, pd.DataFrame]) -> None:
    means = default_fleet["telemetry"][list(TELEMETRY_SIGNALS)].mean()

    assert means["volt"] == pytest.approx(170, rel=0.05)
    assert means["rotate"] == pytest.approx(450, rel=0.05)
    assert means["pressure"] == pytest.approx(100, rel=0.05)
    assert means["vibration"] == pytest.approx(40, rel=0.05)


def test_machines_and_event_names_use_the_real_vocabulary(
    default_fleet: dict[str, pd.DataFrame],
) -> None:
    machines = default_fleet["machines"]

    assert machines["machineID"].tolist() == list(range(1, 21))
    assert set(machines["model"]) <= set(MODELS)
    assert machines["age"].between(0, 20).all()
    assert set(default_fleet["errors"]["errorID"]) <= set(ERROR_IDS)
    assert set(default_fleet["maintenance"]["comp"]) <= set(COMPONENTS)
    assert set(default_fleet["failures"]["failure"]) <= set(COMPONENTS)


def test_events_fall_on_telemetry_hours_sorted_by_machine_then_time(
    default_fleet: dict[str, pd.DataFrame],
) -> None:
    spec = FleetSpec()
    end = spec.start + timedelta(days=spec.days)
    for key, name in (("errors", "errorID"), ("failures", "failure"), ("maintenance", "comp")):
        events = default_fleet[key]
        assert (events["datetime"] == events["datetime"].dt.floor("h")).all(), key
        assert events.equals(
            events.sort_values(["machineID", "datetime", name], ignore_index=True)
        ), key
        if key != "maintenance":
            assert events["datetime"].between(spec.start, end, inclusive="left").all(), key


def test_maintenance_history_has_one_record_per_component_in_the_180_days_before_start(
    default_fleet: dict[str, pd.DataFrame],
) -> None:
    start = FleetSpec().start
    maintenance = default_fleet["maintenance"]
    history = maintenance[maintenance["datetime"] < start]

    assert len(history) == 20 * len(COMPONENTS)
    assert not history.duplicated(["machineID", "comp"]).any()
    assert (history["datetime"] >= start - timedelta(days=180)).all()


def test_every_failure_is_repaired_by_a_maintenance_of_that_component_at_the_same_time(
    default_fleet: dict[str, pd.DataFrame],
) -> None:
    failures = default_fleet["failures"]
    repairs = failures.merge(
        default_fleet["maintenance"],
        left_on=["datetime", "machineID", "failure"],
        right_on=["datetime", "machineID", "comp"],
        how="left",
    )

    assert len(failures) > 0
    assert len(repairs) == len(failures)
    assert repairs["comp"].notna().all()


def test_default_fleet_fails_about_once_per_machine_every_one_to_three_months(
    default_fleet: dict[str, pd.DataFrame],
) -> None:
    spec = FleetSpec()
    per_machine_month = len(default_fleet["failures"]) / spec.machines / (spec.days / 30)

    assert 1 / 3 <= per_machine_month <= 1.0


def test_signals_drift_in_the_day_before_their_components_failure(
    study_fleet: dict[str, pd.DataFrame],
) -> None:
    telemetry, failures = study_fleet["telemetry"], study_fleet["failures"]
    for component, signal in zip(COMPONENTS, TELEMETRY_SIGNALS, strict=True):
        before = _window_mask(telemetry, failures[failures["failure"] == component], 24)
        values = telemetry[signal]
        shift = (values[before].mean() - values.mean()) / values.std()

        # The fleet-wide noise sd is the yardstick: a day-mean shift of one sd is clear.
        assert SIGNAL_DIRECTION[component] * shift > 1.0, (component, shift)


def test_errors_are_more_frequent_in_the_two_days_before_a_failure(
    study_fleet: dict[str, pd.DataFrame],
) -> None:
    telemetry, errors = study_fleet["telemetry"], study_fleet["errors"]
    hour_errors = errors.groupby(["machineID", "datetime"]).size().rename("errors")
    per_hour = telemetry[["machineID", "datetime"]].join(hour_errors, on=["machineID", "datetime"])
    per_hour = per_hour["errors"].fillna(0)
    before = _window_mask(telemetry, study_fleet["failures"], 48)

    assert per_hour[before].mean() > 5 * per_hour[~before].mean()


def test_failed_components_had_gone_longer_than_usual_without_maintenance(
    study_fleet: dict[str, pd.DataFrame],
) -> None:
    maintenance = study_fleet["maintenance"].sort_values("datetime")
    failures = study_fleet["failures"].rename(columns={"failure": "comp"})
    # Hours since the component's previous maintenance, at failures and at daily samples.
    daily = study_fleet["telemetry"].loc[
        lambda t: t["datetime"].dt.hour == 0, ["datetime", "machineID"]
    ]
    samples = daily.merge(pd.DataFrame({"comp": COMPONENTS}), how="cross")

    def age_hours(events: pd.DataFrame) -> pd.Series:
        joined = pd.merge_asof(
            events.sort_values("datetime"),
            maintenance.rename(columns={"datetime": "maintained"}),
            left_on="datetime",
            right_on="maintained",
            by=["machineID", "comp"],
            allow_exact_matches=False,
        )
        return (joined["datetime"] - joined["maintained"]) / pd.Timedelta(hours=1)

    assert age_hours(failures).median() > 1.5 * age_hours(samples).median()


def test_an_aware_start_is_taken_in_utc() -> None:
    aware = FleetSpec(machines=2, days=1, start=datetime(2015, 1, 1, 1, tzinfo=UTC), seed=5)
    naive = FleetSpec(machines=2, days=1, start=datetime(2015, 1, 1, 1), seed=5)

    pd.testing.assert_frame_equal(
        simulate_fleet(aware)["telemetry"], simulate_fleet(naive)["telemetry"]
    )


@pytest.mark.parametrize("field", ["machines", "days"])
def test_spec_rejects_an_empty_fleet_or_period(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FleetSpec(**{field: 0})


def test_write_raw_csv_writes_the_real_file_names_and_headers(tmp_path: Path) -> None:
    out_dir = tmp_path / "landing" / "raw"
    paths = write_raw_csv(simulate_fleet(SMALL), out_dir)

    assert {key: path.name for key, path in paths.items()} == RAW_FILE_NAMES
    assert set(RAW_FILE_NAMES.values()) == {
        "PdM_machines.csv",
        "PdM_telemetry.csv",
        "PdM_errors.csv",
        "PdM_maint.csv",
        "PdM_failures.csv",
    }
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(RAW_FILE_NAMES.values())
    for key, path in paths.items():
        assert path.parent == out_dir
        assert path.read_text().splitlines()[0] == REAL_HEADERS[key], key


def test_write_raw_csv_formats_rows_like_the_real_files(tmp_path: Path) -> None:
    paths = write_raw_csv(simulate_fleet(SMALL), tmp_path)

    telemetry_row = paths["telemetry"].read_text().splitlines()[1]
    machine_row = paths["machines"].read_text().splitlines()[1]
    assert telemetry_row.startswith("2015-01-01 00:00:00,1,")
    assert machine_row.startswith('1,"model')


def test_written_files_read_back_to_equal_frames(
    tmp_path: Path, default_fleet: dict[str, pd.DataFrame]
) -> None:
    paths = write_raw_csv(default_fleet, tmp_path)

    for key, path in paths.items():
        assert len(default_fleet[key]) > 0, key
        read = pd.read_csv(
            path, parse_dates=DATETIME_COLUMNS.get(key, False), float_precision="round_trip"
        )
        pd.testing.assert_frame_equal(read, default_fleet[key], check_exact=True)


def test_rewriting_and_resimulating_give_identical_bytes(tmp_path: Path) -> None:
    first = write_raw_csv(simulate_fleet(SMALL), tmp_path / "a")
    before = {key: path.read_bytes() for key, path in first.items()}
    again = write_raw_csv(simulate_fleet(SMALL), tmp_path / "a")
    other_dir = write_raw_csv(simulate_fleet(SMALL), tmp_path / "b")

    assert {key: path.read_bytes() for key, path in again.items()} == before
    assert {key: path.read_bytes() for key, path in other_dir.items()} == before
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(RAW_FILE_NAMES.values())
