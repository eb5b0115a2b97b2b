"""Server metrics and their labelled anomaly windows, in the layout of the Numenta Anomaly
Benchmark (NAB): one CSV per series under `data/<folder>/` (`timestamp,value`), and
`combined_windows.json` mapping each file (`<folder>/<file>.csv`, the series' key) to its
[start, end] anomaly windows. The published NAB files and the simulator's are read alike.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd

from featurehouse.usecase import Column, Custom, Entity, RawDataset, Reference, Series

SERIES = "series"
SAMPLE_EVERY = timedelta(minutes=5)  # NAB's AWS series, and the simulator's default
METRIC_SERIES = Entity(
    "metric_series",
    {SERIES: "string"},
    "One metric of one server (CPU, network, disk, requests), keyed by its file as NAB names it",
)

METRICS = RawDataset(
    "metrics",
    "data/*/*.csv",
    (
        Column(SERIES, "string", from_path=2, description="`<folder>/<file>.csv` of the series"),
        Column("timestamp", "timestamp", format="yyyy-MM-dd HH:mm:ss"),
        Column("value", "double", description="The metric's sample (5-minute resolution)"),
    ),
    keys=(SERIES, "timestamp"),
    time="timestamp",
    description="Server metric samples, one file per series",
    # Two days of samples at least; three hours of one value is reported as stuck.
    series=Series((SERIES,), "value", SAMPLE_EVERY, min_rows=2 * 288, constant_rows=36),
)


def read_windows(path: Path) -> pd.DataFrame:
    """NAB's `{file: [[start, end], ...]}` as rows (series, window_start, window_end)."""
    windows = json.loads(path.read_text())
    rows = [(series, start, end) for series, spans in windows.items() for start, end in spans]
    return pd.DataFrame(rows, columns=[SERIES, "window_start", "window_end"])


_WINDOW_TIME = "yyyy-MM-dd HH:mm:ss.SSSSSS"
ANOMALY_WINDOWS = RawDataset(
    "anomaly_windows",
    "combined_windows.json",
    (
        Column(SERIES, "string"),
        Column("window_start", "timestamp", format=_WINDOW_TIME),
        Column("window_end", "timestamp", format=_WINDOW_TIME),
    ),
    keys=(SERIES, "window_start"),
    time="window_start",
    format=Custom(read_windows, "NAB's JSON of anomaly windows per file"),
    # Windows of series that were not loaded (another folder of NAB) are quarantined.
    references=(Reference((SERIES,), "metrics"),),
    description="Labelled anomaly windows: used to choose the threshold and to evaluate only",
)
