"""A seeded fleet simulator that writes raw data shaped like the Azure predictive-maintenance set.

The public data set is small and fixed; benchmarks and demos need any size, any
period and a known ground truth. The simulator follows the P-F curve of
reliability engineering, so that failures are predictable a day or so ahead,
as a model trained on the real data expects:

* every machine has four components; each component wears a little every hour
  since its last maintenance, faster on some models and on older machines;
* the hourly hazard that a wearing component develops a defect (the P point)
  rises steeply with wear; once a defect is there, it grows to a functional
  failure (the F point) within one to three days;
* wear shifts one telemetry signal slightly, and a growing defect shifts it
  clearly: comp1 raises volt, comp2 lowers rotate, comp3 raises pressure and
  comp4 raises vibration; both raise the hourly rate of that component's error
  (error1..error4), and a defect also raises the generic error5;
* scheduled maintenance arrives at exponential (so sometimes very long)
  intervals and renews a component, and so does the repair after a failure,
  which the data records as a maintenance of the failed component at the same
  timestamp.

Every random draw comes from one `numpy.random.Generator` in a fixed order, so
the same `FleetSpec` gives the same frames and byte-identical files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

COMPONENTS = ("comp1", "comp2", "comp3", "comp4")
ERROR_IDS = ("error1", "error2", "error3", "error4", "error5")
MODELS = ("model1", "model2", "model3", "model4")
# Telemetry signal i watches component i.
TELEMETRY_SIGNALS = ("volt", "rotate", "pressure", "vibration")

MACHINES_COLUMNS = ("machineID", "model", "age")
TELEMETRY_COLUMNS = ("datetime", "machineID", *TELEMETRY_SIGNALS)
ERRORS_COLUMNS = ("datetime", "machineID", "errorID")
MAINTENANCE_COLUMNS = ("datetime", "machineID", "comp")
FAILURES_COLUMNS = ("datetime", "machineID", "failure")

RAW_FILE_NAMES = {
    "machines": "PdM_machines.csv",
    "telemetry": "PdM_telemetry.csv",
    "errors": "PdM_errors.csv",
    "maintenance": "PdM_maint.csv",
    "failures": "PdM_failures.csv",
}
# How datetimes appear in the raw files (for readers; Arrow prints them so).
CSV_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

MAX_MACHINE_AGE = 20
HISTORY_DAYS = 180

# Shares of the models in the real fleet.
_MODEL_SHARES = (0.16, 0.17, 0.35, 0.32)
# Wear-rate multiplier per model (row) and component (column): each model has a
# weak spot, so the model is a useful feature but not a sufficient one.
_MODEL_WEAR = (
    (1.30, 0.90, 1.00, 0.90),
    (0.90, 1.30, 0.90, 1.00),
    (1.00, 0.90, 1.25, 1.00),
    (0.90, 1.00, 1.00, 1.30),
)
_AGE_WEAR_PER_YEAR = 0.03
# Hours for an average component to reach wear 1, the median wear at a defect.
_NOMINAL_LIFE_HOURS = 130 * 24
# Spread of the wear rate between maintenance cycles (log-normal sigma); the
# hourly rate also varies uniformly by +-_HOURLY_WEAR_JITTER around it.
_CYCLE_RATE_SIGMA = 0.35
_HOURLY_WEAR_JITTER = 0.5
# Defect hazard per unit of wear is ln2 * (k+1) * wear**k: cumulative hazard
# ln2 * wear**(k+1), a Weibull in wear whose median is at wear 1.
_DEFECT_SHAPE = 4
_PF_HOURS = (24.0, 72.0)
_MAINTENANCE_MEAN_HOURS = 80 * 24

_TELEMETRY_MEAN = (170.0, 450.0, 100.0, 40.0)
_TELEMETRY_NOISE = (15.0, 50.0, 10.0, 5.0)
# Machines differ a little in calibration, so a raw level alone proves nothing.
_MACHINE_OFFSET_FRACTION = 0.2
# Shift of each signal when its component's defect reaches failure.
_DEFECT_SHIFT = (35.0, -120.0, 25.0, 12.0)
# Wear moves the signal by this fraction of the defect shift per unit of wear,
# up to _WEAR_SIGNAL_CAP units: a slow drift that is hard to see under noise.
_WEAR_SIGNAL_FRACTION = 0.12
_WEAR_SIGNAL_CAP = 2.0

# Hourly error probabilities: a base rate per error, plus terms in wear and defect.
_ERROR_BASE_RATE = 0.0005
_ERROR_WEAR_RATE = 0.0005
_ERROR_DEFECT_RATE = 0.06
_GENERIC_ERROR_DEFECT_RATE = 0.02


@dataclass(frozen=True)
class FleetSpec:
    """What to simulate: fleet size, period and seed. `start` is the first telemetry hour."""

    machines: int = 20
    start: datetime = datetime(2015, 1, 1)  # naive, treated as UTC
    days: int = 60
    seed: int = 7

    def __post_init__(self) -> None:
        if self.machines < 1:
            raise ValueError(f"machines must be at least 1, got {self.machines}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")

    @property
    def hours(self) -> int:
        return self.days * 24


@dataclass
class _Events:
    """Events collected hour by hour as parallel index arrays, concatenated at the end."""

    hours: list[np.ndarray]
    machines: list[np.ndarray]
    kinds: list[np.ndarray]

    @classmethod
    def empty(cls) -> _Events:
        return cls([], [], [])

    def add(self, hour: int, mask: np.ndarray) -> None:
        machine, kind = np.nonzero(mask)
        if machine.size:
            self.hours.append(np.full(machine.size, hour, dtype=np.int64))
            self.machines.append(machine)
            self.kinds.append(kind)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.hours:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        return tuple(np.concatenate(parts) for parts in (self.hours, self.machines, self.kinds))


@dataclass
class _Run:
    """What the hourly loop produces: per-hour signal severities and the events."""

    severity: np.ndarray  # (components, machines, hours), float32
    errors: _Events
    maintenance: _Events
    failures: _Events


def simulate_fleet(spec: FleetSpec) -> dict[str, pd.DataFrame]:
    """Simulate a fleet and return its raw tables, keyed like `RAW_FILE_NAMES`."""
    rng = np.random.default_rng(spec.seed)
    start = _naive_utc(spec.start)
    model_index, ages = _draw_machines(rng, spec.machines)
    base_rate = _base_wear_rate(model_index, ages)
    history_hours, cycle_rate = _draw_history(rng, base_rate)
    run = _run_hours(rng, spec.hours, cycle_rate, base_rate, history_hours)
    telemetry = _telemetry_frame(rng, start, run.severity)
    pre_start = _pre_start_events(history_hours)
    return {
        "machines": _machines_frame(model_index, ages),
        "telemetry": telemetry,
        "errors": _events_frame(start, run.errors.arrays(), ERRORS_COLUMNS, ERROR_IDS),
        "maintenance": _events_frame(
            start,
            _concat_events(pre_start, run.maintenance.arrays()),
            MAINTENANCE_COLUMNS,
            COMPONENTS,
        ),
        "failures": _events_frame(start, run.failures.arrays(), FAILURES_COLUMNS, COMPONENTS),
    }


def write_raw_csv(frames: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, Path]:
    """Write the raw tables as the CSV files the ingestion expects, and return their paths.

    The files follow the real ones: a header of quoted column names, quoted
    names (model, errorID, comp, failure), bare numbers and datetimes. Floats
    carry the shortest text that reads back to the same double. Arrow's writer
    does this about ten times faster than pandas, which matters at 10M rows.
    Each file is written beside its target and renamed into place, so a reader
    never sees a half-written file and a rewrite of the same frames gives the
    same bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for key, name in RAW_FILE_NAMES.items():
        path = out_dir / name
        _write_csv_atomically(_arrow_table(frames[key]), path)
        paths[key] = path
    return paths


def _arrow_table(frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow, with datetimes in whole seconds so they print as CSV_DATETIME_FORMAT."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            # A safe cast: it fails rather than drop a fraction of a second.
            table = table.set_column(index, field.name, table.column(index).cast(pa.timestamp("s")))
    return table


def _write_csv_atomically(table: pa.Table, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    pa_csv.write_csv(table, partial, pa_csv.WriteOptions(quoting_style="needed"))
    os.replace(partial, path)


def _naive_utc(moment: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are UTC already, by contract."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _draw_machines(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    model_index = rng.choice(len(MODELS), size=count, p=_MODEL_SHARES)
    ages = rng.integers(0, MAX_MACHINE_AGE, size=count, endpoint=True)
    return model_index, ages


def _base_wear_rate(model_index: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """Wear per hour, shape (machines, components), before per-cycle and hourly randomness."""
    model_factor = np.asarray(_MODEL_WEAR)[model_index]
    age_factor = 1.0 + _AGE_WEAR_PER_YEAR * ages
    return model_factor * age_factor[:, None] / _NOMINAL_LIFE_HOURS


def _draw_cycle_rate(rng: np.random.Generator, base_rate: np.ndarray) -> np.ndarray:
    """A maintenance cycle's wear rate: some parts are simply better than others."""
    sigma = _CYCLE_RATE_SIGMA
    return base_rate * rng.lognormal(-0.5 * sigma**2, sigma, size=base_rate.shape)


def _defect_cumulative_hazard(wear: np.ndarray) -> np.ndarray:
    return np.log(2.0) * wear ** (_DEFECT_SHAPE + 1)


def _draw_history(rng: np.random.Generator, base_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hours since each component's last maintenance at the start, and its cycle's wear rate.

    The last maintenance lies up to HISTORY_DAYS back, but a component that old
    must also have gone without a defect and without scheduled maintenance
    since: drawing both and keeping a pair with the probability of that
    survival gives the ages of a fleet in steady state, without a burst of
    failures in the first days that no real history could have produced. Each
    round redraws only the rejected pairs, so this ends after a few dozen
    vectorised rounds.
    """
    history = np.empty(base_rate.shape, dtype=np.int64)
    rate = np.empty(base_rate.shape)
    pending = np.ones(base_rate.shape, dtype=bool)
    while pending.any():
        count = int(pending.sum())
        hours = rng.integers(1, HISTORY_DAYS * 24, size=count, endpoint=True)
        cycle = _draw_cycle_rate(rng, base_rate[pending])
        hazard = _defect_cumulative_hazard(hours * cycle) + hours / _MAINTENANCE_MEAN_HOURS
        survives = rng.random(count) < np.exp(-hazard)
        index = tuple(axis[survives] for axis in np.nonzero(pending))
        history[index] = hours[survives]
        rate[index] = cycle[survives]
        pending[index] = False
    return history, rate


def _run_hours(
    rng: np.random.Generator,
    hours: int,
    cycle_rate: np.ndarray,
    base_rate: np.ndarray,
    history_hours: np.ndarray,
) -> _Run:
    """Step every machine and component through the hours, vectorised across the fleet.

    At each hour the telemetry and errors reflect the state of that hour; then
    failures and maintenance renew components for the next hour.
    """
    machines, components = cycle_rate.shape
    rate = cycle_rate.copy()
    wear = history_hours * rate
    defect = np.zeros_like(wear)
    defect_rate = np.zeros_like(wear)
    severity = np.empty((components, machines, hours), dtype=np.float32)
    errors, maintenance, failures = _Events.empty(), _Events.empty(), _Events.empty()
    maintenance_probability = 1.0 / _MAINTENANCE_MEAN_HOURS
    draws = components * 3 + len(ERROR_IDS)
    for hour in range(hours):
        uniform = rng.random((machines, draws))
        maintenance_u = uniform[:, :components]
        jitter_u = uniform[:, components : 2 * components]
        defect_u = uniform[:, 2 * components : 3 * components]
        error_u = uniform[:, 3 * components :]

        severity[:, :, hour] = _signal_severity(wear, defect).T
        errors.add(hour, error_u < _error_probability(wear, defect))

        failed = defect >= 1.0
        renewed = failed | (maintenance_u < maintenance_probability)
        failures.add(hour, failed)
        maintenance.add(hour, renewed)
        if renewed.any():
            wear[renewed] = 0.0
            defect[renewed] = 0.0
            defect_rate[renewed] = 0.0
            rate[renewed] = _draw_cycle_rate(rng, base_rate[renewed])

        step = rate * (1.0 + _HOURLY_WEAR_JITTER * (2.0 * jitter_u - 1.0))
        hazard = np.log(2.0) * (_DEFECT_SHAPE + 1) * wear**_DEFECT_SHAPE * step
        wear += step
        onset = (defect_rate == 0.0) & (defect_u < hazard)
        if onset.any():
            defect_rate[onset] = 1.0 / rng.uniform(*_PF_HOURS, size=int(onset.sum()))
        defect += defect_rate
    return _Run(severity, errors, maintenance, failures)


def _signal_severity(wear: np.ndarray, defect: np.ndarray) -> np.ndarray:
    """How far each component pushes its signal, in units of the shift at failure."""
    slow = _WEAR_SIGNAL_FRACTION * np.minimum(wear, _WEAR_SIGNAL_CAP)
    grown = np.minimum(defect, 1.0)
    # defect ** 1.5, cheaper: a defect shows faster than linearly, as cracks do.
    return slow + grown * np.sqrt(grown)


def _error_probability(wear: np.ndarray, defect: np.ndarray) -> np.ndarray:
    """Hourly probability of each error id, shape (machines, errors)."""
    per_component = (
        _ERROR_BASE_RATE
        + _ERROR_WEAR_RATE * np.minimum(wear, _WEAR_SIGNAL_CAP)
        + _ERROR_DEFECT_RATE * defect
    )
    generic = _ERROR_BASE_RATE + _GENERIC_ERROR_DEFECT_RATE * defect.sum(axis=1, keepdims=True)
    return np.concatenate([per_component, generic], axis=1)


def _telemetry_frame(
    rng: np.random.Generator, start: datetime, severity: np.ndarray
) -> pd.DataFrame:
    """One row per machine-hour, sorted by machine then hour, with noise drawn in that order.

    The signals are filled in place in one (signals, rows) array that becomes
    the frame's float block as it is, because copying 10M-row columns costs
    more than drawing them.
    """
    signals, machines, hours = severity.shape
    values = np.empty((signals, machines, hours))
    for signal in range(signals):
        noise = _TELEMETRY_NOISE[signal]
        offset = rng.normal(0.0, _MACHINE_OFFSET_FRACTION * noise, size=(machines, 1))
        column = values[signal]
        rng.standard_normal(out=column)
        column *= noise
        column += offset + _TELEMETRY_MEAN[signal]
        column += _DEFECT_SHIFT[signal] * severity[signal]
    frame = pd.DataFrame(values.reshape(signals, -1).T, columns=list(TELEMETRY_SIGNALS), copy=False)
    frame.insert(0, "machineID", np.repeat(np.arange(1, machines + 1, dtype=np.int64), hours))
    frame.insert(0, "datetime", np.tile(_hour_stamps(start, np.arange(hours)), machines))
    return frame


def _hour_stamps(start: datetime, hours: np.ndarray) -> np.ndarray:
    return np.datetime64(start, "ns") + hours.astype("timedelta64[h]")


def _pre_start_events(history_hours: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    machine, component = np.nonzero(np.ones(history_hours.shape, dtype=bool))
    return -history_hours[machine, component], machine, component


def _concat_events(
    *parts: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


def _events_frame(
    start: datetime,
    events: tuple[np.ndarray, np.ndarray, np.ndarray],
    columns: tuple[str, str, str],
    names: tuple[str, ...],
) -> pd.DataFrame:
    """Events sorted by machine, time and name, as the real files are."""
    hours, machine, kind = events
    order = np.lexsort((kind, hours, machine))
    return pd.DataFrame(
        {
            columns[0]: _hour_stamps(start, hours[order]),
            columns[1]: machine[order].astype(np.int64) + 1,
            columns[2]: np.asarray(names, dtype=object)[kind[order]],
        }
    )


def _machines_frame(model_index: np.ndarray, ages: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "machineID": np.arange(1, model_index.size + 1, dtype=np.int64),
            "model": np.asarray(MODELS, dtype=object)[model_index],
            "age": ages.astype(np.int64),
        }
    )


def write_fleet(spec: FleetSpec, out_dir: Path) -> dict[str, Path]:
    """Simulate the fleet `spec` describes and write its raw files into `out_dir`."""
    return write_raw_csv(simulate_fleet(spec), out_dir)
