"""Train, validation and test sets by time, by entity, or both, as a use case declares.

By time (of all entities together, or of each entity's own span for entities recorded in
different periods), a row is dropped when its timestamp is within `gap` (the label's horizon) before a
boundary: its label looks into the next period. By entity, whole entities are held out,
chosen by a stable hash of their keys, so the same entity lands in the same part in every
run and no test entity was ever seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from featurehouse.errors import FeaturehouseError
from featurehouse.usecase import EVENT_TIMESTAMP, Split


@dataclass(frozen=True)
class DataSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    validation_start: pd.Timestamp | None  # None when split by entity only
    test_start: pd.Timestamp | None

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def time_boundaries(
    times: pd.Series, validation_fraction: float, test_fraction: float
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(validation start, test start): fractions of the time span, not of the rows."""
    first, last = times.min(), times.max()
    span = last - first
    test_start = last - span * test_fraction
    return test_start - span * validation_fraction, test_start


def entity_groups(
    frame: pd.DataFrame, keys: Sequence[str], validation_fraction: float, test_fraction: float
) -> pd.Series:
    """Per row, "train", "validation" or "test" for its entity, from a stable hash of its keys."""
    hashed = pd.util.hash_pandas_object(frame[list(keys)], index=False).to_numpy()
    unit = hashed / float(2**64)
    groups = np.where(
        unit < test_fraction,
        "test",
        np.where(unit < test_fraction + validation_fraction, "validation", "train"),
    )
    return pd.Series(groups, index=frame.index)


def split_frame(
    frame: pd.DataFrame,
    how: Split,
    *,
    keys: Sequence[str],
    validation_fraction: float,
    test_fraction: float,
    gap: timedelta,
    timestamp_column: str = EVENT_TIMESTAMP,
) -> DataSplit:
    times = frame[timestamp_column]
    everywhere = pd.Series(True, index=frame.index)
    in_time = {"train": everywhere, "validation": everywhere, "test": everywhere}
    validation_start = test_start = None
    if how.by == "time_per_entity":
        # Each entity's own span: series recorded in different months each test on their end.
        by_entity = times.groupby([frame[k] for k in keys])
        first, last = by_entity.transform("min"), by_entity.transform("max")
        entity_test_start = last - (last - first) * test_fraction
        entity_validation_start = entity_test_start - (last - first) * validation_fraction
        in_time = {
            "train": times < entity_validation_start - gap,
            "validation": (times >= entity_validation_start) & (times < entity_test_start - gap),
            "test": times >= entity_test_start,
        }
    if how.by in ("time", "time_and_entity"):
        validation_start, test_start = time_boundaries(times, validation_fraction, test_fraction)
        in_time = {
            "train": times < validation_start - gap,
            "validation": (times >= validation_start) & (times < test_start - gap),
            "test": times >= test_start,
        }
    in_group = {"train": everywhere, "validation": everywhere, "test": everywhere}
    if how.by in ("entity", "time_and_entity"):
        groups = entity_groups(frame, keys, validation_fraction, test_fraction)
        if groups.nunique() < 3:
            entities = len(frame[list(keys)].drop_duplicates())
            raise FeaturehouseError(
                f"a split by entity needs entities in train, validation and test; the"
                f" {entities} entities fill only {sorted(groups.unique())}"
            )
        in_group = {part: groups == part for part in in_group}
    return DataSplit(
        train=frame[in_time["train"] & in_group["train"]],
        validation=frame[in_time["validation"] & in_group["validation"]],
        test=frame[in_time["test"] & in_group["test"]],
        validation_start=validation_start,
        test_start=test_start,
    )
