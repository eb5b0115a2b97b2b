"""Feature tables: one module per table, each with its declaration and its transforms."""

from featurehouse.features.declaration import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    Feature,
    FeatureTable,
)
from featurehouse.features.errors import ERROR_FEATURES
from featurehouse.features.machines import MACHINE_ATTRIBUTES
from featurehouse.features.maintenance import MAINTENANCE_FEATURES
from featurehouse.features.telemetry import TELEMETRY_FEATURES

FEATURE_TABLES: tuple[FeatureTable, ...] = (
    TELEMETRY_FEATURES,
    ERROR_FEATURES,
    MAINTENANCE_FEATURES,
    MACHINE_ATTRIBUTES,
)

__all__ = [
    "ENTITY_KEY",
    "EVENT_TIMESTAMP",
    "FEATURE_TABLES",
    "Feature",
    "FeatureTable",
]
