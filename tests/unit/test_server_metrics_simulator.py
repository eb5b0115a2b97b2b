from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featurehouse.usecases.anomaly_detection.simulator import (
    ServerMetricsSpec,
    SimulatedMetrics,
    write_server_metrics,
)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
WINDOW_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
SPEC = ServerMetricsSpec()
# Samples in a day and in two hours at the default 5 minutes.
PER_DAY = 24 * 60 // SPEC.every_minutes
TWO_HOURS = 2 * 60 // SPEC.every_minutes


def read_series(folder: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(folder / "data" / "simulated" / f"{name}.csv")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format=TIMESTAMP_FORMAT)
    return frame


def read_windows(folder: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    raw = json.loads((folder / "combined_windows.json").read_text())
    return {
        key: [
            (datetime.strptime(s, WINDOW_FORMAT), datetime.strptime(e, WINDOW_FORMAT))
            for s, e in pairs
        ]
        for key, pairs in raw.items()
    }


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulatedMetrics]:
    folder = tmp_path_factory.mktemp("nab")
    return folder, write_server_metrics(SPEC, folder)


@pytest.fixture(scope="module")
def studied(written) -> list[dict]:
    """Per anomaly: its kind, the series' values, the window as a mask, and the series'
    normal statistics: the median at each time of day and the MAD, outside all windows."""
    folder, result = written
    out = []
    for name in result.series:
        frame = read_series(folder, name)
        value = frame["value"].to_numpy()
        in_any = np.zeros(len(frame), dtype=bool)
        masks = []
        for kind, start, end in result.anomalies[name]:
            mask = ((frame["timestamp"] >= start) & (frame["timestamp"] <= end)).to_numpy()
            in_any |= mask
            masks.append((kind, mask))
        normal = value[~in_any]
        mad = float(np.median(np.abs(normal - np.median(normal))))
        slot = np.arange(len(frame)) % PER_DAY
        by_slot = pd.Series(normal).groupby(slot[~in_any]).median()
        typical = by_slot.reindex(slot).to_numpy()
        for kind, mask in masks:
            out.append(dict(name=name, kind=kind, value=value, mask=mask, in_any=in_any,
                            mad=mad, robust_sd=1.4826 * mad, typical=typical))  # fmt: skip
    return out


def anomalies_of(studied: list[dict], kind: str) -> list[dict]:
    chosen = [a for a in studied if a["kind"] == kind]
    assert chosen, f"no {kind} with the default spec"
    return chosen


def test_files_have_the_nab_layout_and_formats(written) -> None:
    folder, result = written
    assert result.series == (
        "ec2_cpu_utilization_01",
        "network_in_02",
        "request_count_03",
        "disk_write_bytes_04",
        "ec2_cpu_utilization_05",
        "network_in_06",
    )
    assert sorted(files(folder)) == sorted(
        ["combined_windows.json"] + [f"data/simulated/{n}.csv" for n in result.series]
    )
    rows = SPEC.days * 24 * 60 // SPEC.every_minutes
    for name in result.series:
        text = (folder / "data" / "simulated" / f"{name}.csv").read_text()
        lines = text.splitlines()
        assert lines[0] == "timestamp,value"
        assert len(lines) == rows + 1
        # Plain decimals with at most 6 significant digits, never an exponent.
        for line in lines[1:]:
            stamp, value = line.split(",")
            assert re.fullmatch(r"\d+(\.\d+)?", value), line
            assert len(value.replace(".", "").lstrip("0").rstrip("0")) <= 6, line
        frame = read_series(folder, name)
        assert list(frame.columns) == ["timestamp", "value"]
        expected = pd.date_range(SPEC.start, periods=rows, freq="5min")
        assert (frame["timestamp"] == expected).all()
    windows = read_windows(folder)
    assert set(windows) == {f"simulated/{n}.csv" for n in result.series}
    for name in result.series:
        assert windows[f"simulated/{name}.csv"] == [(s, e) for _, s, e in result.anomalies[name]]
    raw = json.loads((folder / "combined_windows.json").read_text())
    assert raw["simulated/network_in_02.csv"][0][0].endswith(":00.000000")


def test_metric_kinds_have_their_own_ranges_and_scales(written) -> None:
    folder, result = written
    medians = {}
    for name in result.series:
        value = read_series(folder, name)["value"]
        assert value.min() > 0, name  # clipping never needed below: no stuck zeros
        medians[name] = value.median()
        if name.startswith("ec2_cpu_utilization"):
            assert value.max() <= 100
    assert medians["network_in_02"] > 1e4 * medians["ec2_cpu_utilization_01"]
    assert medians["disk_write_bytes_04"] > 1e3 * medians["request_count_03"]
    assert medians["request_count_03"] > 5 * medians["ec2_cpu_utilization_01"]


def test_normal_behaviour_has_a_daily_cycle_and_quieter_weekends(written) -> None:
    folder, result = written
    frame = read_series(folder, "request_count_03")
    hour = frame["timestamp"].dt.hour
    weekday = frame["timestamp"].dt.dayofweek < 5
    afternoon = frame["value"][weekday & hour.between(14, 16)].median()
    night = frame["value"][weekday & hour.between(2, 4)].median()
    weekend = frame["value"][~weekday & hour.between(14, 16)].median()
    assert afternoon > 1.5 * night
    assert weekend < 0.8 * afternoon


def test_writing_is_deterministic_and_the_seed_matters(tmp_path: Path) -> None:
    small = ServerMetricsSpec(series=3, days=10)
    first = write_server_metrics(small, tmp_path / "a")
    write_server_metrics(small, tmp_path / "b")
    before = files(tmp_path / "a")
    assert before == files(tmp_path / "b")
    # Rewriting in place overwrites with the same bytes.
    assert write_server_metrics(small, tmp_path / "a") == first
    assert files(tmp_path / "a") == before
    write_server_metrics(ServerMetricsSpec(series=3, days=10, seed=8), tmp_path / "c")
    other = files(tmp_path / "c")
    assert other.keys() == before.keys()
    assert all(other[k] != before[k] for k in before)


def test_windows_lie_after_the_first_week_inside_the_series_and_apart(written) -> None:
    folder, result = written
    first, last = SPEC.start, SPEC.start + timedelta(days=SPEC.days, minutes=-SPEC.every_minutes)
    for name in result.series:
        windows = read_windows(folder)[f"simulated/{name}.csv"]
        assert len(windows) == SPEC.anomalies_per_series
        for start, end in windows:
            assert first + timedelta(days=7) <= start < end <= last
        for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
            # Sorted, apart, and with two clean hours before each window.
            assert end + timedelta(hours=2) <= start


def test_all_four_kinds_appear_with_the_default_spec(written) -> None:
    _, result = written
    kinds = [k for anomalies in result.anomalies.values() for k, _, _ in anomalies]
    assert set(kinds) == {"spike", "level_shift", "drift", "stuck"}
    assert len(kinds) == SPEC.series * SPEC.anomalies_per_series


def test_spikes_rise_far_above_the_same_time_of_day(studied) -> None:
    for a in anomalies_of(studied, "spike"):
        excess = (a["value"] - a["typical"])[a["mask"]]
        assert excess.max() > 4 * a["robust_sd"], a["name"]
        # A few points, not a sustained stretch.
        assert (excess > 4 * a["robust_sd"]).sum() <= 3


def test_blips_and_noise_outside_windows_never_look_like_a_spike(studied) -> None:
    for a in studied:
        excess = (a["value"] - a["typical"])[~a["in_any"]]
        assert excess.max() < 4 * a["robust_sd"], a["name"]


def longest_constant_run(values: np.ndarray) -> int:
    changes = np.flatnonzero(np.diff(values) != 0)
    edges = np.concatenate([[-1], changes, [len(values) - 1]])
    return int(np.diff(edges).max())


def test_stuck_values_are_constant_while_normal_stretches_never_are(studied) -> None:
    for a in anomalies_of(studied, "stuck"):
        assert longest_constant_run(a["value"][a["mask"]]) >= TWO_HOURS, a["name"]
    for a in studied:
        stretches = np.lib.stride_tricks.sliding_window_view(a["value"], TWO_HOURS)
        clean = ~np.lib.stride_tricks.sliding_window_view(a["in_any"], TWO_HOURS).any(axis=1)
        assert (stretches[clean].std(axis=1) > 0).all(), a["name"]


def test_level_shifts_move_the_median_by_several_mads(studied) -> None:
    for a in anomalies_of(studied, "level_shift"):
        first = int(np.flatnonzero(a["mask"])[0])
        before = np.median(a["value"][first - TWO_HOURS : first])
        assert abs(np.median(a["value"][a["mask"]]) - before) > 3 * a["mad"], a["name"]


def test_drifts_ramp_up_slowly(studied) -> None:
    for a in anomalies_of(studied, "drift"):
        excess = (a["value"] - a["typical"])[a["mask"]]
        half = len(excess) // 2
        assert excess.max() > 4 * a["robust_sd"], a["name"]
        assert int(np.argmax(excess)) >= half
        assert excess[half:].mean() > excess[:half].mean() + 2 * a["robust_sd"]
        # No single step carries the rise: that would be a level shift.
        rise = excess.max() - excess[0]
        assert np.diff(a["value"][a["mask"]]).max() < 0.5 * rise


def test_other_cadence_and_start_forms(tmp_path: Path) -> None:
    spec = ServerMetricsSpec(series=5, days=9, every_minutes=15, start="2024-03-01T02:00:00+02:00")
    assert spec.start == datetime(2024, 3, 1)
    result = write_server_metrics(spec, tmp_path)
    frame = read_series(tmp_path, result.series[-1])
    assert result.series[-1] == "ec2_cpu_utilization_05"
    assert len(frame) == 9 * 24 * 4
    assert frame["timestamp"].iloc[0] == datetime(2024, 3, 1)
    assert (frame["timestamp"].diff().dropna() == timedelta(minutes=15)).all()
    assert ServerMetricsSpec(start=date(2024, 5, 6)).start == datetime(2024, 5, 6)
    assert ServerMetricsSpec(start="2024-05-06").start == datetime(2024, 5, 6)
    aware = datetime(2024, 5, 6, 1, tzinfo=timezone(timedelta(hours=1)))
    assert ServerMetricsSpec(start=aware).start == datetime(2024, 5, 6)
    assert ServerMetricsSpec(start=datetime(2024, 5, 6, tzinfo=UTC)).start.tzinfo is None


def test_series_without_anomalies_still_appear_in_the_windows(tmp_path: Path) -> None:
    result = write_server_metrics(ServerMetricsSpec(series=2, anomalies_per_series=0), tmp_path)
    raw = json.loads((tmp_path / "combined_windows.json").read_text())
    assert raw == {f"simulated/{n}.csv": [] for n in result.series}


@pytest.mark.parametrize(
    "settings",
    [
        {"series": 0},
        {"series": True},
        {"days": 7},
        {"days": 10.5},
        {"seed": -1},
        {"every_minutes": 0},
        {"every_minutes": 7},
        {"every_minutes": 120},
        {"anomalies_per_series": -1},
        {"days": 8},  # one day after the first week cannot hold three anomalies
        {"start": "first of January"},
        {"start": 20240101},
    ],
)
def test_bad_specs_are_refused(settings: dict) -> None:
    with pytest.raises(ValueError):
        ServerMetricsSpec(**settings)
