"""Synthetic raw data in the schema of the Azure predictive-maintenance data set."""

from __future__ import annotations

from featurehouse.datagen.fleet import (
    COMPONENTS,
    ERROR_IDS,
    MODELS,
    RAW_FILE_NAMES,
    TELEMETRY_SIGNALS,
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)

__all__ = [
    "COMPONENTS",
    "ERROR_IDS",
    "MODELS",
    "RAW_FILE_NAMES",
    "TELEMETRY_SIGNALS",
    "FleetSpec",
    "simulate_fleet",
    "write_raw_csv",
]
