"""Split a training set by time, with a purge gap so that no label window crosses a boundary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from featurehouse.features import EVENT_TIMESTAMP


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    validation_start: pd.Timestamp
    test_start: pd.Timestamp


def split_by_time(
    frame: pd.DataFrame,
    *,
    validation_fraction: float,
    test_fraction: float,
    gap: timedelta,
    timestamp_column: str = EVENT_TIMESTAMP,
) -> TimeSplit:
    """Train on the oldest span, validate on the next, test on the newest.

    Boundaries are fractions of the time span, not of the rows. A row is dropped when
    its timestamp is within `gap` before a boundary: its label looks `gap` ahead, into
    the next split's period.
    """
    times = frame[timestamp_column]
    first, last = times.min(), times.max()
    span = last - first
    test_start = last - span * test_fraction
    validation_start = test_start - span * validation_fraction
    train = frame[times < validation_start - gap]
    validation = frame[(times >= validation_start) & (times < test_start - gap)]
    test = frame[times >= test_start]
    return TimeSplit(
        train=train,
        validation=validation,
        test=test,
        validation_start=validation_start,
        test_start=test_start,
    )
