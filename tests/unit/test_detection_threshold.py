"""How a detector's threshold is chosen on the validation window: the most labelled
windows found within the false-alarm budget, on hand-built scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from featurehouse.config import TrainingSettings
from featurehouse.training.evaluate import detection_threshold
from featurehouse.usecase import EVENT_TIMESTAMP

DAY = 288  # five-minute rows


def settings(budget: float) -> TrainingSettings:
    return TrainingSettings(
        validation_fraction=0.15,
        test_fraction=0.2,
        reference_sample_rows=100,
        false_alarm_budget=budget,
    )


def validation() -> tuple[pd.DataFrame, np.ndarray]:
    """Two days of one series: two labelled windows, one plain (score 0.97 inside) and one
    faint (0.93); isolated noise reaches 0.95 ten times a day."""
    times = pd.date_range("2024-01-01", periods=2 * DAY, freq="5min")
    label = np.zeros(len(times), dtype=int)
    scores = np.linspace(0.0, 0.9, len(times)) % 0.9
    label[100:110], scores[100:110] = 1, 0.97
    label[400:410], scores[400:410] = 1, 0.93
    noise = np.arange(20, 2 * DAY, 29)[:20]
    noise = noise[(label[noise] == 0)]
    scores[noise] = 0.95
    frame = pd.DataFrame({"series": "a", EVENT_TIMESTAMP: times, "in_window": label})
    return frame, scores


def test_a_loose_budget_buys_the_faint_window_with_the_noise():
    frame, scores = validation()
    threshold = detection_threshold(frame, scores, ["series"], "in_window", settings(20.0))
    assert threshold <= 0.93  # both windows found; about ten false alarms a day allowed


def test_a_tight_budget_keeps_the_plain_window_only():
    frame, scores = validation()
    threshold = detection_threshold(frame, scores, ["series"], "in_window", settings(1.0))
    assert 0.95 < threshold <= 0.97  # above the noise, at or below the plain window


def test_without_a_labelled_window_the_configured_share_is_flagged():
    frame, scores = validation()
    frame["in_window"] = 0
    threshold = detection_threshold(frame, scores, ["series"], "in_window", settings(1.0))
    assert threshold == np.quantile(scores, 0.99)
