"""Events and window-level metrics of anomaly detection results, in pandas.

The input is a frame of scored rows: one or more entity key columns, a timestamp, a 0/1
flag (the detector fired), optionally a 0/1 label (the row lies in a known anomaly) and a
float score. Rows may come in any order; every function sorts a copy by keys then time.

Definitions, after the ground truth of the Numenta Anomaly Benchmark (NAB):

- A *run* of a 0/1 column is a maximal stretch of consecutive rows of one entity, in time
  order, where the column is 1. With `max_gap`, two neighbouring flagged rows further apart
  than `max_gap` start a new run: a hole in the data is not evidence that the anomaly went on.
- An *event* (alarm) is a run of the flag; its peak is the row with the highest score.
- A *labelled window* is a run of the label. It is *detected* when at least one flagged row
  of the same entity lies inside [start, end]; one flag is enough, however long the window.
- A *false alarm* is a flag run with no labelled row of its entity inside [start, end]. A run
  that overlaps a window only in part is a detection, not a false alarm, and one long run
  across two windows detects both.
- `series_days` is the observed span, the sum over entities of (last time - first time), in
  days; false alarms are reported per day of it so that series of different lengths compare.
- Point precision, recall and F1 compare flag and label row by row. They reward flagging
  every row of a window, which the window metrics deliberately do not: report both.
- Without labels, `alarm_metrics` says only what a detector flags: the share of rows
  (`flag_rate`), the alarms per series-day and their mean length in rows. At the same flag
  budget, fewer and longer alarms mean flags that persist, as incidents do, rather than
  scattered ones, as noise does: the proxy that compares unlabelled detectors.

Pure functions: no Spark, no MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_score, recall_score

RUN_COLUMNS = ("start", "end", "rows")
PEAK_COLUMNS = ("peak_score", "peak_time")
ONE_DAY = pd.Timedelta(days=1)


def runs(
    frame: pd.DataFrame,
    keys: Sequence[str],
    time: str,
    column: str,
    *,
    max_gap: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """The runs of consecutive rows where `column == 1`, per entity in time order.

    Columns `*keys, start, end, rows`, one row per run, ordered by keys then start. A gap
    of more than `max_gap` between two flagged rows splits their run.
    """
    keys = _key_list(keys, reserved=RUN_COLUMNS)
    ordered = _ordered(frame, keys, time)
    starts, ends = _run_bounds(ordered, keys, time, column, max_gap)
    return _run_frame(ordered, keys, time, starts, ends)


def anomaly_events(
    frame: pd.DataFrame,
    keys: Sequence[str],
    time: str,
    flag: str,
    score: str,
    *,
    max_gap: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """The runs of `flag`, each with the highest score in it and the time of that score.

    Columns `*keys, start, end, rows, peak_score, peak_time`. On ties the earliest row is
    the peak; a run whose scores are all missing has a NaN peak score and a NaT peak time.
    """
    keys = _key_list(keys, reserved=RUN_COLUMNS + PEAK_COLUMNS)
    ordered = _ordered(frame, keys, time)
    starts, ends = _run_bounds(ordered, keys, time, flag, max_gap)
    events = _run_frame(ordered, keys, time, starts, ends)
    peaks = _peak_positions(ordered[score], starts, ends)
    found = peaks >= 0

    def at_peaks(values: pd.Series) -> pd.Series:
        # Runs without a peak are filled by reindexing, so they get NaN / NaT in the column's
        # own dtype (a time zone survives).
        return values.iloc[peaks[found]].set_axis(np.flatnonzero(found)).reindex(events.index)

    return events.assign(
        peak_score=at_peaks(ordered[score].astype("float64")), peak_time=at_peaks(ordered[time])
    )


def window_metrics(
    frame: pd.DataFrame,
    keys: Sequence[str],
    time: str,
    label: str,
    flag: str,
    *,
    max_gap: pd.Timedelta | None = None,
) -> dict[str, float]:
    """Window recall and false alarms per day (NAB-style), beside the row-level metrics.

    Keys: windows, windows_detected, window_recall, false_alarms, series_days,
    false_alarms_per_day, point_precision, point_recall, point_f1. `window_recall` is NaN
    without windows and `false_alarms_per_day` is NaN when `series_days` is 0.
    """
    keys = _key_list(keys, reserved=RUN_COLUMNS)
    ordered = _ordered(frame, keys, time)
    labelled = _indicator(ordered, label)
    flagged = _indicator(ordered, flag)

    windows = _run_frame(ordered, keys, time, *_run_bounds(ordered, keys, time, label, max_gap))
    alarms = _run_frame(ordered, keys, time, *_run_bounds(ordered, keys, time, flag, max_gap))
    detected = _contains_point(windows, ordered.loc[flagged, [*keys, time]], keys, time)
    false_alarms = ~_contains_point(alarms, ordered.loc[labelled, [*keys, time]], keys, time)

    n_windows = len(windows)
    n_detected = int(detected.sum())
    days = _series_days(ordered, keys, time)
    return {
        "windows": float(n_windows),
        "windows_detected": float(n_detected),
        "window_recall": n_detected / n_windows if n_windows else float("nan"),
        "false_alarms": float(false_alarms.sum()),
        "series_days": days,
        "false_alarms_per_day": float(false_alarms.sum()) / days if days else float("nan"),
        **_point_metrics(labelled.to_numpy(dtype=int), flagged.to_numpy(dtype=int)),
    }


def alarm_metrics(
    frame: pd.DataFrame,
    keys: Sequence[str],
    time: str,
    flag: str,
    *,
    max_gap: pd.Timedelta | None = None,
) -> dict[str, float]:
    """What a detector flags, without any label to judge it by.

    Keys: rows, flag_rate, alarms, series_days, alarms_per_day, mean_alarm_rows. Rates are
    NaN with no rows, no observed span or no alarm to average.
    """
    keys = _key_list(keys, reserved=RUN_COLUMNS)
    ordered = _ordered(frame, keys, time)
    flagged = _indicator(ordered, flag)
    alarms = _run_frame(ordered, keys, time, *_run_bounds(ordered, keys, time, flag, max_gap))
    days = _series_days(ordered, keys, time)
    return {
        "rows": float(len(ordered)),
        "flag_rate": float(flagged.mean()) if len(ordered) else float("nan"),
        "alarms": float(len(alarms)),
        "series_days": days,
        "alarms_per_day": len(alarms) / days if days else float("nan"),
        "mean_alarm_rows": float(alarms["rows"].mean()) if len(alarms) else float("nan"),
    }


def _key_list(keys: Sequence[str], reserved: Sequence[str]) -> list[str]:
    # A bare string is a Sequence[str] too: without this, "series" would become six keys.
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("at least one entity key column is required")
    clash = sorted(set(keys) & set(reserved))
    if clash:
        raise ValueError(f"key columns {clash} clash with the output columns {list(reserved)}")
    return keys


def _ordered(frame: pd.DataFrame, keys: list[str], time: str) -> pd.DataFrame:
    if frame[time].isna().any():
        raise ValueError(f"column {time!r} has missing times: rows cannot be placed in order")
    # Multi-column sorts in pandas are lexsorts, hence stable: rows with equal keys and time
    # keep their input order. A fresh 0..n-1 index lets positions double as labels.
    return frame.sort_values([*keys, time], kind="stable").reset_index(drop=True)


def _indicator(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    # A score or a probability passed by mistake must fail loudly, not count as "not 1".
    if not values.isin([0, 1]).all():
        raise ValueError(f"column {column!r} must hold only 0 and 1 (no missing values)")
    return values.eq(1).astype(bool)


def _run_bounds(
    ordered: pd.DataFrame,
    keys: list[str],
    time: str,
    column: str,
    max_gap: pd.Timedelta | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first and of the last row of every run, in `ordered`."""
    on = _indicator(ordered, column).to_numpy()
    entity = ordered.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    breaks = np.ones(len(ordered), dtype=bool)
    # A row continues the run of the row before it only within the same entity and, with
    # max_gap, only when the data has no hole longer than max_gap between the two.
    breaks[1:] = (entity[1:] != entity[:-1]) | ~on[:-1]
    if max_gap is not None:
        breaks |= ordered[time].diff().gt(pd.Timedelta(max_gap)).to_numpy()
    starts = on & breaks
    ends = on & ~np.append(on[1:] & ~starts[1:], False)
    return np.flatnonzero(starts), np.flatnonzero(ends)


def _run_frame(
    ordered: pd.DataFrame, keys: list[str], time: str, starts: np.ndarray, ends: np.ndarray
) -> pd.DataFrame:
    # Positional takes keep the key and time dtypes, also for an empty result.
    first = ordered.iloc[starts].reset_index(drop=True)
    return first[keys].assign(
        start=first[time],
        end=ordered[time].iloc[ends].reset_index(drop=True),
        rows=(ends - starts + 1).astype("int64"),
    )


def _peak_positions(scores: pd.Series, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Position of the highest score in each run, -1 where every score is missing."""
    lengths = ends - starts + 1
    run = np.repeat(np.arange(len(starts)), lengths)
    # Where each run begins once all runs are laid end to end: shifting the laid-out row
    # numbers by (start - begin) gives every run row's position in the frame.
    begins = np.cumsum(lengths) - lengths
    positions = np.arange(lengths.sum()) + np.repeat(starts - begins, lengths)
    values = pd.Series(scores.to_numpy(dtype=float, na_value=np.nan)[positions], index=positions)
    present = values.notna().to_numpy()
    # idxmax returns the first maximum and rows are in time order: on ties, the earliest row.
    best = values[present].groupby(run[present]).idxmax()
    return best.reindex(range(len(starts)), fill_value=-1).to_numpy(dtype=np.int64)


def _contains_point(
    intervals: pd.DataFrame, points: pd.DataFrame, keys: list[str], time: str
) -> np.ndarray:
    """Whether each [start, end] holds at least one point time of its own entity."""
    if intervals.empty or points.empty:
        return np.zeros(len(intervals), dtype=bool)
    # The first point at or after each start, per entity; the interval holds a point exactly
    # when that one is not after the end.
    left = intervals[[*keys, "start", "end"]].assign(_position=np.arange(len(intervals)))
    right = points.rename(columns={time: "_point"})
    nearest = pd.merge_asof(
        left.sort_values("start", kind="stable"),
        right.sort_values("_point", kind="stable"),
        left_on="start",
        right_on="_point",
        by=keys,
        direction="forward",
    ).sort_values("_position")
    return (nearest["_point"] <= nearest["end"]).to_numpy()


def _series_days(ordered: pd.DataFrame, keys: list[str], time: str) -> float:
    span = ordered.groupby(keys, sort=False, dropna=False)[time].agg(["min", "max"])
    return float((span["max"] - span["min"]).sum() / ONE_DAY)


def _point_metrics(labels: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    # sklearn refuses empty input; with no rows there is nothing right, as with zero_division.
    if len(labels) == 0:
        return {"point_precision": 0.0, "point_recall": 0.0, "point_f1": 0.0}
    return {
        "point_precision": float(precision_score(labels, flags, zero_division=0)),
        "point_recall": float(recall_score(labels, flags, zero_division=0)),
        "point_f1": float(f1_score(labels, flags, zero_division=0)),
    }
