"""A seeded simulator of server metrics with labelled anomalies, laid out like NAB.

The anomaly-detection demo and its tests must run on a fresh clone, where the published
Numenta Anomaly Benchmark (NAB) data are absent, and they need a known truth. This
module writes the same layout NAB ships: `data/simulated/<series>.csv` with
`timestamp,value` rows, and `combined_windows.json`, which maps each file to its
labelled anomaly windows, so the code that reads the real NAB reads these unchanged.

Each series is a server metric of one kind (CPU utilisation in percent, network bytes
in, ELB request count, disk write bytes), with a kind-specific level, a daily cycle
that peaks at 15:00, quieter weekends, Gaussian noise and rare small blips that are
not anomalies. After the first week (so that features looking a week back exist),
non-overlapping anomalies are injected, their kinds cycling over `ANOMALY_KINDS`:
a spike, a level shift, a slow drift up, or a value stuck at a constant. Like NAB's,
a labelled window is a few samples wider than the anomaly on each side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
WINDOW_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
ANOMALY_KINDS = ("spike", "level_shift", "drift", "stuck")
# name: (level, daily amplitude and noise sd as shares of the level, weekend factor, maximum)
METRIC_KINDS = {
    "ec2_cpu_utilization": (25.0, 0.30, 0.06, 0.85, 100.0),
    "network_in": (4.0e6, 0.40, 0.08, 0.70, np.inf),
    "request_count": (350.0, 0.45, 0.07, 0.65, np.inf),
    "disk_write_bytes": (1.5e6, 0.25, 0.10, 0.80, np.inf),
}
WARMUP_DAYS = 7
# Hours an anomaly lasts (a spike lasts 1 to 3 samples), at least and at most.
_DURATION_HOURS = {"level_shift": (2, 6), "drift": (3, 8), "stuck": (2, 6)}
_MAX_ANOMALY = timedelta(hours=max(high for _, high in _DURATION_HOURS.values()))
# Kept free of anomalies before each window: a detector's recent baseline.
_CLEAN_BEFORE = timedelta(hours=2)
_PAD_SAMPLES = (2, 5)  # per side, upper bound exclusive
_BLIP_RATE = 0.003


@dataclass(frozen=True)
class ServerMetricsSpec:
    """What to simulate. `start` is naive UTC; a date, an aware datetime or an ISO string
    (as YAML may give) is converted. `anomalies_per_series` may be 0 (no labels)."""

    series: int = 6
    days: int = 21
    seed: int = 7
    start: datetime = datetime(2024, 1, 1)
    every_minutes: int = 5
    anomalies_per_series: int = 3

    def __post_init__(self) -> None:
        for name, least in (
            ("series", 1),
            ("days", WARMUP_DAYS + 1),
            ("every_minutes", 1),
            ("anomalies_per_series", 0),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
                raise ValueError(
                    f"{name} must be a whole number of at least {least}, got {value!r}"
                )
            object.__setattr__(self, name, int(value))
        if 60 % self.every_minutes:
            raise ValueError(f"every_minutes must divide an hour, got {self.every_minutes}")
        object.__setattr__(self, "start", _as_datetime(self.start))
        if (
            self.anomalies_per_series
            and self.slot_samples
            < self._samples(_CLEAN_BEFORE + _MAX_ANOMALY) + 2 * _PAD_SAMPLES[1]
        ):
            raise ValueError(
                f"days={self.days} leaves {self.days - WARMUP_DAYS} day(s) after the first week, "
                f"too few for {self.anomalies_per_series} anomalies per series (each needs its own "
                f"slot); raise days or lower anomalies_per_series"
            )

    def _samples(self, span: timedelta) -> int:
        return int(span.total_seconds()) // (60 * self.every_minutes)

    @property
    def samples(self) -> int:
        return self._samples(timedelta(days=self.days))

    @property
    def slot_samples(self) -> int:
        """Each anomaly gets its own slot after the first week, so none overlap."""
        return self._samples(timedelta(days=self.days - WARMUP_DAYS)) // max(
            1, self.anomalies_per_series
        )

    def series_names(self) -> tuple[str, ...]:
        kinds = list(METRIC_KINDS)
        return tuple(f"{kinds[i % len(kinds)]}_{i + 1:02d}" for i in range(self.series))


def _as_datetime(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise ValueError(f"start is not an ISO date or datetime: {value!r}") from e
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise ValueError(f"start must be a date, a datetime or an ISO string, got {value!r}")


@dataclass(frozen=True)
class SimulatedMetrics:
    """The series written and, per series, its anomalies as (kind, window start, window end)."""

    series: tuple[str, ...]
    anomalies: dict[str, list[tuple[str, datetime, datetime]]]


def _normal(rng, metric: str, level: float, times: pd.DatetimeIndex) -> np.ndarray:
    _, amplitude, noise, weekend, _ = METRIC_KINDS[metric]
    hour = np.asarray(times.hour + times.minute / 60)
    # Noise and blips scale with the cycle, as load does; blips stay well within the spread.
    value = level * (1 + amplitude * np.sin(2 * np.pi * (hour - 9) / 24))
    value *= np.where(np.asarray(times.dayofweek) >= 5, weekend, 1.0)
    blips = (rng.random(len(times)) < _BLIP_RATE) * rng.uniform(2.0, 3.0, len(times))
    return value * (1 + noise * (rng.standard_normal(len(times)) + blips))


def _inject(rng, spec, value, swing, first_kind) -> list[tuple[str, int, int]]:
    """Injects anomalies in place; returns (kind, first, last) sample of each window.

    Sizes are in units of the daily `swing`, which sets how much normal values spread,
    so that an anomaly stands out as clearly in a calm series as in a busy one.
    """
    windows = []
    for j in range(spec.anomalies_per_series):
        kind = ANOMALY_KINDS[(first_kind + j) % len(ANOMALY_KINDS)]
        if kind == "spike":
            size = int(rng.integers(1, 4))
        else:
            low, high = _DURATION_HOURS[kind]
            size = spec._samples(timedelta(minutes=int(rng.integers(60 * low, 60 * high + 1))))
        pad = int(rng.integers(*_PAD_SAMPLES))
        slot = spec._samples(timedelta(days=WARMUP_DAYS)) + j * spec.slot_samples
        lowest = slot + spec._samples(_CLEAN_BEFORE) + pad
        a = int(rng.integers(lowest, slot + spec.slot_samples - pad - size))
        b = a + size
        if kind == "spike":
            value[a:b] += swing * rng.uniform(6.0, 9.0, size)
        elif kind == "level_shift":
            value[a:b] += swing * rng.uniform(4.0, 5.5)
        elif kind == "drift":
            value[a:b] += swing * rng.uniform(6.0, 8.0) * np.linspace(0, 1, size + 1)[1:]
        else:  # the last reading before the sensor or agent froze
            value[a:b] = value[a - 1]
        windows.append((kind, a - pad, b - 1 + pad))
    return windows


def _format(value: float) -> str:
    return np.format_float_positional(value, precision=6, unique=False, fractional=False, trim="-")


def write_server_metrics(spec: ServerMetricsSpec, folder: Path) -> SimulatedMetrics:
    """Writes `data/simulated/<series>.csv` and `combined_windows.json` under `folder`."""
    folder = Path(folder)
    data = folder / "data" / "simulated"
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    times = pd.date_range(spec.start, periods=spec.samples, freq=f"{spec.every_minutes}min")
    stamps = times.strftime(TIMESTAMP_FORMAT)
    names = spec.series_names()
    anomalies, labels = {}, {}
    for i, name in enumerate(names):
        metric = name.rsplit("_", 1)[0]
        level = METRIC_KINDS[metric][0] * rng.uniform(0.8, 1.25)  # servers differ in load
        value = _normal(rng, metric, level, times)
        swing = level * METRIC_KINDS[metric][1]
        windows = _inject(rng, spec, value, swing, i * spec.anomalies_per_series)
        np.clip(value, 0.0, METRIC_KINDS[metric][-1], out=value)
        rows = (f"{t},{_format(v)}\n" for t, v in zip(stamps, value, strict=True))
        (data / f"{name}.csv").write_text("timestamp,value\n" + "".join(rows), newline="")
        anomalies[name] = [
            (k, times[a].to_pydatetime(), times[b].to_pydatetime()) for k, a, b in windows
        ]
        labels[f"simulated/{name}.csv"] = [
            [s.strftime(WINDOW_FORMAT), e.strftime(WINDOW_FORMAT)] for _, s, e in anomalies[name]
        ]
    text = json.dumps(labels, indent=4, sort_keys=True) + "\n"
    (folder / "combined_windows.json").write_text(text, newline="")
    return SimulatedMetrics(series=names, anomalies=anomalies)
