"""The declaration of a feature table: the one source of truth for its keys, features and transform.

The Delta table, the Feast feature view and the documentation are all derived
from a `FeatureTable`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import DataFrame

ENTITY_KEY = "machine_id"
EVENT_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # "double", "bigint" or "string": Spark SQL type names
    description: str


@dataclass(frozen=True)
class FeatureTable:
    """A Delta feature table keyed by (machine_id, event_timestamp), served by one Feast view.

    `build` computes the table from bronze tables, given as a dict of DataFrames by table key.
    `ttl` is how long a row stays valid for point-in-time lookups (None: forever).
    """

    table_key: str
    view_name: str
    description: str
    features: tuple[Feature, ...]
    sources: tuple[str, ...]
    build: Callable[[dict[str, DataFrame]], DataFrame]
    ttl: timedelta | None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        return [ENTITY_KEY, EVENT_TIMESTAMP, *self.feature_names]
