"""The declaration of a feature table: the one source of truth for its keys, features and transform.

The Delta table (its DDL, comments and clustering), the Feast feature view, the data
quality checks and the feature documentation are all derived from a `FeatureTable`,
so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from pyspark.sql import DataFrame

from featurehouse.features.quality import Expectation, fresh, not_null, unique
from featurehouse.io.lakehouse import sql_string

ENTITY_KEY = "machine_id"
EVENT_TIMESTAMP = "event_timestamp"

SPARK_TYPES = ("double", "bigint", "string")


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # a Spark SQL type name, one of SPARK_TYPES
    description: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A bronze table a feature table is computed from.

    `history` is how far before the first changed event an incremental run must read
    this source so that windows at the boundary are exact: the longest window over
    it, or None when a feature looks back without limit (e.g. "hours since the last
    maintenance"), so all of the machine's history is read.
    """

    table_key: str
    history: timedelta | None = timedelta(0)
    timestamp: str | None = "timestamp"  # None: a snapshot without event time


@dataclass(frozen=True)
class FeatureTable:
    """A Delta feature table keyed by (keys, timestamp), served by one Feast view.

    `build` is a pure transform: bronze DataFrames by table key -> one row per
    (keys, timestamp) with every declared feature. `ttl` is how long a row stays
    valid for point-in-time lookups (None: forever).
    """

    table_key: str
    view_name: str
    description: str
    features: tuple[Feature, ...]
    sources: tuple[Source, ...]
    build: Callable[[dict[str, DataFrame]], DataFrame]
    ttl: timedelta | None
    expectations: tuple[Expectation, ...] = ()
    keys: tuple[str, ...] = (ENTITY_KEY,)
    timestamp: str = EVENT_TIMESTAMP
    # Liquid clustering: lookups and incremental MERGEs filter on the machine and time.
    cluster_by: tuple[str, ...] = (ENTITY_KEY, EVENT_TIMESTAMP)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.table_key}: duplicate feature names")
        bad = [f.name for f in self.features if f.dtype not in SPARK_TYPES]
        if bad:
            raise ValueError(f"{self.table_key}: unsupported type for {bad}")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        return [*self.keys, self.timestamp, *self.feature_names]

    @property
    def column_types(self) -> dict[str, str]:
        """Every column with its Spark SQL type, in order (keys are bigint)."""
        types = {k: "bigint" for k in self.keys} | {self.timestamp: "timestamp"}
        return types | {f.name: f.dtype for f in self.features}

    @property
    def row_key(self) -> list[str]:
        """What identifies a row: the keys and the event timestamp."""
        return [*self.keys, self.timestamp]

    @property
    def all_expectations(self) -> tuple[Expectation, ...]:
        """Every table's keys are present and unique and its data recent, plus its own checks."""
        # A snapshot (no source with event time) has no freshness to judge.
        has_event_time = any(s.timestamp for s in self.sources)
        freshness = (fresh(self.timestamp),) if has_event_time else ()
        return (not_null(*self.row_key), unique(*self.row_key), *freshness, *self.expectations)

    @property
    def source_keys(self) -> list[str]:
        return [s.table_key for s in self.sources]

    def schema_ddl(self) -> str:
        """`name type [NOT NULL] COMMENT '...'` for every column, in order."""
        key_comment = {ENTITY_KEY: "Machine identifier", EVENT_TIMESTAMP: "Event time (UTC)"}
        columns = [(k, "bigint", True, key_comment.get(k, "Entity key")) for k in self.keys] + [
            (self.timestamp, "timestamp", True, key_comment.get(self.timestamp, "Event time"))
        ]
        columns += [(f.name, f.dtype, False, f.description) for f in self.features]
        return ", ".join(
            f"`{name}` {dtype.upper()}{' NOT NULL' if required else ''} COMMENT {sql_string(text)}"
            for name, dtype, required, text in columns
        )
