"""Times, tolerances and schemas of the hand-worked test frames, shared by the unit tests."""

from __future__ import annotations

from datetime import datetime, timedelta

# A reading time with hours of history before it and after it within the same day.
T = datetime(2024, 1, 10, 12, 0, 0)
H = timedelta(hours=1)
D = timedelta(days=1)
S = timedelta(seconds=1)
US = timedelta(microseconds=1)
PRECISION = 1e-9

# The predictive-maintenance bronze tables, as the transforms read them.
TELEMETRY_SCHEMA = (
    "machine_id bigint, timestamp timestamp, "
    "volt double, rotate double, pressure double, vibration double"
)
GRID_SCHEMA = "machine_id bigint, timestamp timestamp"
ERRORS_SCHEMA = "machine_id bigint, timestamp timestamp, error_id string"
COMPONENT_SCHEMA = "machine_id bigint, timestamp timestamp, component string"
