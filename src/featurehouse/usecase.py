"""The declaration types of a use case: what a person writes to add one, and all the framework reads.

A use case is one folder (a Python package) that builds a `UseCase` from these types:

- its raw data sets (`RawDataset`): files, format, typed columns, event time, bad-row rules
  and referential checks against another data set;
- its `Entity` (name and keys with their types; composite keys allowed);
- its feature tables (`FeatureTable`: a declaration plus a pure DataFrame transform);
- its `Label` (how the target is derived from bronze tables, over a horizon), its `Spine`
  (which entity rows are trained on and scored), its `Split`;
- its task (`Classification`, `Regression` or `Anomaly`), candidate models and prediction
  columns;
- optionally a `Simulator` that writes raw files for the demo.

Settings that differ by environment or are tuned (hyper-parameters, split fractions,
promotion and drift thresholds, simulation sizes) live in `conf/use_cases/<name>.yml`.
Names of tables, models and experiments are derived from the use case's name and `conf/`.

Nothing here runs Spark: declarations are plain frozen data, checked when built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.errors import DeclarationError

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame

    from featurehouse.features.quality import Expectation

# ---------------------------------------------------------------------------------------
# Durations: "30min", "24h", "7d", "2w". Windows, horizons, strides, TTLs and freshness are
# all durations, so hourly, daily and weekly grains work alike.

_DURATION = re.compile(r"^\s*(\d+)\s*(s|min|h|d|w)\s*$")
_UNITS = {
    "s": timedelta(seconds=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def duration(value: str | timedelta | None) -> timedelta | None:
    """A duration from text such as "24h" or "7d" (units s, min, h, d, w), or a timedelta."""
    if value is None or isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise DeclarationError(
            f"bad duration {value!r}: write a whole number and a unit, e.g. 30min, 24h, 7d, 2w"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(value: timedelta) -> str:
    """The shortest exact text `duration` reads back: 24 hours is "1d", 90 minutes "90min"."""
    for unit in ("w", "d", "h", "min", "s"):
        count, rest = divmod(value, _UNITS[unit])
        if not rest and count:
            return f"{count}{unit}"
    return str(value)


def duration_name(value: timedelta, unit: str) -> str:
    """`value` in `unit` for a feature name: 24 hours in "h" is "24h", 7 days in "d" is "7d"."""
    step = _UNITS[unit]
    count, rest = divmod(value, step)
    if rest:
        raise DeclarationError(f"{value} is not a whole number of {unit}")
    return f"{count}{unit}"


def micros(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


# ---------------------------------------------------------------------------------------
# Entities

KEY_TYPES = ("bigint", "string")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def _identifier(kind: str, name: str) -> str:
    if not IDENTIFIER.match(name):
        raise DeclarationError(f"{kind} name {name!r}: use lower-case letters, digits and _")
    return name


@dataclass(frozen=True)
class Entity:
    """What is predicted for: a machine, a (store, item) pair, a city's bike system.

    `keys` maps each key column to its type ("bigint" or "string"), in order; several keys
    make a composite key.
    """

    name: str
    keys: Mapping[str, str]
    description: str = ""

    def __post_init__(self) -> None:
        _identifier("entity", self.name)
        if not self.keys:
            raise DeclarationError(f"entity {self.name!r}: no keys")
        for key, dtype in self.keys.items():
            _identifier("key", key)
            if dtype not in KEY_TYPES:
                raise DeclarationError(
                    f"entity {self.name!r}: key {key!r} is {dtype!r}; use one of {KEY_TYPES}"
                )
        object.__setattr__(self, "keys", dict(self.keys))

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(self.keys)


# ---------------------------------------------------------------------------------------
# Raw data sets

COLUMN_TYPES = ("bigint", "double", "string", "timestamp", "date", "boolean")


@dataclass(frozen=True)
class Column:
    """One column of a raw data set, as it lands in bronze.

    `raw` is its name in the file (default: `name`). A timestamp or date column is parsed
    with `format` (a Spark datetime pattern). A row is quarantined when a required value is
    missing or unparsable, outside [`min`, `max`], or not one of `allowed`. `value` makes a
    constant column the file does not have (e.g. the one entity of a single series);
    `from_path` takes the column from the last `from_path` parts of the file's path instead
    (e.g. 2: `folder/series.csv`, for data sets that keep one entity per file).
    """

    name: str
    dtype: str
    raw: str | None = None
    format: str | None = None
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    value: Any = None
    from_path: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        _identifier("column", self.name)
        if self.from_path < 0 or (self.from_path and self.value is not None):
            raise DeclarationError(
                f"column {self.name!r}: from_path is a positive count of path parts, and a"
                " column is either a constant or from the path"
            )
        if self.dtype not in COLUMN_TYPES:
            raise DeclarationError(
                f"column {self.name!r}: type {self.dtype!r} not in {COLUMN_TYPES}"
            )
        if self.format and self.dtype not in ("timestamp", "date"):
            raise DeclarationError(f"column {self.name!r}: a format is for timestamps and dates")

    @property
    def raw_name(self) -> str:
        return self.raw or self.name

    @property
    def is_constant(self) -> bool:
        """Not read from the file's rows: a constant, or a part of the file's path."""
        return self.value is not None or self.from_path > 0


@dataclass(frozen=True)
class Csv:
    """Delimited text, optionally gzip-compressed (by the `.gz` suffix).

    `header=False`: the file has no header line and `names` lists its columns in order.
    `delimiter="whitespace"` splits on runs of spaces and tabs.
    """

    header: bool = True
    delimiter: str = ","
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.header and not self.names:
            raise DeclarationError("a CSV format without a header needs `names`")

    @property
    def kind(self) -> str:
        return "csv"


@dataclass(frozen=True)
class Parquet:
    @property
    def kind(self) -> str:
        return "parquet"


@dataclass(frozen=True)
class Custom:
    """Any small file Python can read (JSON, a spreadsheet): `read(path)` returns a pandas
    DataFrame whose columns are the raw columns. Read on the driver, so for labels and
    calendars, not for bulk data; its rows are then checked like a CSV's."""

    read: Callable[[Path], Any]
    description: str = ""

    @property
    def kind(self) -> str:
        return "custom"


@dataclass(frozen=True)
class DateAndHour:
    """Event time from a date column plus an hour-of-day column (0-23), into column `name`."""

    date: str
    hour: str
    name: str = "timestamp"

    def expression(self, columns: Mapping[str, SparkColumn]) -> SparkColumn:
        import pyspark.sql.functions as F

        seconds = F.unix_timestamp(columns[self.date].cast("timestamp")) + columns[self.hour] * 3600
        return F.timestamp_seconds(seconds)

    @property
    def uses(self) -> tuple[str, ...]:
        return (self.date, self.hour)


@dataclass(frozen=True)
class FromCounter:
    """Event time `origin + counter * step` into column `name`, for run-to-failure data that
    counts cycles or steps instead of stamping times."""

    counter: str
    origin: datetime
    step: timedelta
    name: str = "timestamp"

    def expression(self, columns: Mapping[str, SparkColumn]) -> SparkColumn:
        import pyspark.sql.functions as F

        origin = F.lit(self.origin.isoformat(sep=" ")).cast("timestamp")
        return F.timestamp_micros(
            F.unix_micros(origin) + columns[self.counter] * F.lit(micros(self.step))
        )

    @property
    def uses(self) -> tuple[str, ...]:
        return (self.counter,)


# A timestamp column's name, or a derivation of the event time from other columns.
EventTime = str | DateAndHour | FromCounter


@dataclass(frozen=True)
class Reference:
    """Rows whose `columns` match no row of `dataset` are quarantined (an unknown machine)."""

    columns: tuple[str, ...]
    dataset: str


@dataclass(frozen=True)
class Series:
    """The rows of a data set are regular time series: one per `entity` (key columns),
    a `value` sampled every `every`. Ingestion then reports each series' health
    (`featurehouse.series_health`): gaps, duplicate timestamps, backwards steps, a
    stretch of at least `constant_rows` equal values, fewer than `min_rows` samples."""

    entity: tuple[str, ...]
    value: str
    every: timedelta
    min_rows: int
    constant_rows: int


@dataclass(frozen=True)
class RawDataset:
    """A raw data set: its files, format and columns, and the bronze table it lands in.

    `keys` (bronze column names) identify a row: a second row with the same keys is a
    duplicate and quarantined, unless `version` names a column that orders corrections, in
    which case the newest version of a row replaces the stored one. `time` is the event
    time: a timestamp column's name, or a derivation (`DateAndHour`, `FromCounter`) into a
    column of its own; None makes a snapshot without event time (e.g. machine attributes).
    """

    name: str
    pattern: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]
    time: EventTime | None = None
    format: Csv | Parquet | Custom = Csv()
    references: tuple[Reference, ...] = ()
    version: str | None = None
    description: str = ""
    series: Series | None = None

    def __post_init__(self) -> None:
        _identifier("data set", self.name)
        where = f"data set {self.name!r}"
        names = list(self.bronze_columns)
        if self.series is not None:
            unknown = [c for c in (*self.series.entity, self.series.value) if c not in names]
            if unknown or self.time is None:
                raise DeclarationError(
                    f"{where}: a series needs an event time and columns it has, not {unknown}"
                )
        _unique(where, "column", [c.name for c in self.columns] + self._derived_time)
        if isinstance(self.time, str) and self.bronze_columns.get(self.time) != "timestamp":
            raise DeclarationError(f"{where}: event time {self.time!r} is not a timestamp column")
        for key in self.keys:
            if key not in names:
                raise DeclarationError(f"{where}: key {key!r} is not one of its columns {names}")
        if self.time is not None and not isinstance(self.time, str):
            for used in self.time.uses:
                if used not in names:
                    raise DeclarationError(f"{where}: event time uses unknown column {used!r}")
        if self.version is not None and self.version not in names:
            raise DeclarationError(f"{where}: version column {self.version!r} is not declared")
        for reference in self.references:
            for column in reference.columns:
                if column not in names:
                    raise DeclarationError(f"{where}: reference to unknown column {column!r}")
        if isinstance(self.format, Csv) and not self.format.header:
            unknown = [c.raw_name for c in self.file_columns if c.raw_name not in self.format.names]
            if unknown:
                raise DeclarationError(f"{where}: columns {unknown} are not in the format's names")

    @property
    def file_columns(self) -> tuple[Column, ...]:
        """The columns read from the files (not the constants)."""
        return tuple(c for c in self.columns if not c.is_constant)

    @property
    def _derived_time(self) -> list[str]:
        return [] if self.time is None or isinstance(self.time, str) else [self.time.name]

    @property
    def bronze_columns(self) -> dict[str, str]:
        """Every bronze column and its Spark type, in order (without the load metadata)."""
        types = {c.name: c.dtype for c in self.columns}
        return types | {name: "timestamp" for name in self._derived_time}

    @property
    def event_time(self) -> str | None:
        """The bronze column of the event time; None for a snapshot."""
        if self.time is None:
            return None
        return self.time if isinstance(self.time, str) else self.time.name


# ---------------------------------------------------------------------------------------
# Feature tables

FEATURE_TYPES = ("double", "bigint", "string")
EVENT_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # a Spark SQL type name, one of FEATURE_TYPES
    description: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A raw data set a feature table is computed from.

    `history` is how far before the first changed event an incremental run must read this
    source so that windows at the boundary are exact: the longest window over it, or None
    when a feature looks back without limit (e.g. "hours since the last maintenance"), so
    all of the entity's history is read. `lead` is how far a row looks ahead into this
    source, for sources known in advance (a holiday calendar): a change at time d then
    recomputes the rows from d - lead.
    """

    dataset: RawDataset
    history: timedelta | None = timedelta(0)
    lead: timedelta = timedelta(0)

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def timestamp(self) -> str | None:
        return self.dataset.event_time


@dataclass(frozen=True)
class Segmentation:
    """Entity segments by k-means over entity profiles (`featurehouse.features.segments`):
    the table's `profile` columns, the first of which orders the segments, and its
    `column` holding the segment. The training job registers the newest segmentation as a
    model of its own."""

    profile: tuple[str, ...]
    column: str
    clusters: int
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.profile or self.clusters < 2:
            raise DeclarationError(
                f"segmentation {self.column!r}: needs profile columns and at least 2 clusters"
            )


@dataclass(frozen=True)
class FeatureTable:
    """A Delta feature table keyed by (keys, timestamp), served by one Feast view.

    `build` is a pure transform: bronze DataFrames by data set name -> one row per
    (keys, timestamp) with every declared feature. `keys` defaults to the entity's keys;
    a table of attributes of a part of a composite key (a store, an item) declares that
    part. `ttl` is how long a row stays valid for point-in-time lookups (None: forever).
    `across_entities` marks a table whose rows depend on other entities' (a segmentation
    fitted over all of them): a change then recomputes every entity from its time on.
    A table of segments declares its `segmentation` (and is computed across entities).
    """

    name: str
    view_name: str
    description: str
    entity: Entity
    features: tuple[Feature, ...]
    sources: tuple[Source, ...]
    build: Callable[[dict[str, DataFrame]], DataFrame]
    ttl: timedelta | None
    expectations: tuple[Expectation, ...] = ()
    keys: tuple[str, ...] = ()
    timestamp: str = EVENT_TIMESTAMP
    across_entities: bool = False
    segmentation: Segmentation | None = None

    def __post_init__(self) -> None:
        _identifier("feature table", self.name)
        where = f"feature table {self.name!r}"
        if self.segmentation is not None:
            object.__setattr__(self, "across_entities", True)
            columns = (*self.segmentation.profile, self.segmentation.column)
            missing = [c for c in columns if c not in {f.name for f in self.features}]
            if missing:
                raise DeclarationError(f"{where}: segmentation columns {missing} are not features")
        if not self.keys:
            object.__setattr__(self, "keys", self.entity.key_names)
        unknown = [k for k in self.keys if k not in self.entity.keys]
        if unknown:
            raise DeclarationError(f"{where}: keys {unknown} are not keys of {self.entity.name!r}")
        _unique(where, "feature", [f.name for f in self.features])
        bad = [f.name for f in self.features if f.dtype not in FEATURE_TYPES]
        if bad:
            raise DeclarationError(f"{where}: unsupported type for {bad}; use {FEATURE_TYPES}")
        clash = [f.name for f in self.features if f.name in (*self.keys, self.timestamp)]
        if clash:
            raise DeclarationError(f"{where}: features {clash} shadow a key or the timestamp")
        if not any(all(k in s.dataset.bronze_columns for k in self.keys) for s in self.sources):
            raise DeclarationError(
                f"{where}: no source has all of its keys {list(self.keys)}; the entities to"
                " compute come from such a source"
            )

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        return [*self.keys, self.timestamp, *self.feature_names]

    @property
    def key_types(self) -> dict[str, str]:
        return {k: self.entity.keys[k] for k in self.keys}

    @property
    def column_types(self) -> dict[str, str]:
        """Every column with its Spark SQL type, in order."""
        types = self.key_types | {self.timestamp: "timestamp"}
        return types | {f.name: f.dtype for f in self.features}

    @property
    def row_key(self) -> list[str]:
        """What identifies a row: the keys and the event timestamp."""
        return [*self.keys, self.timestamp]

    @property
    def cluster_by(self) -> tuple[str, ...]:
        """Liquid clustering: lookups and incremental MERGEs filter on the keys and time."""
        return (*self.keys, self.timestamp)

    @property
    def all_expectations(self) -> tuple[Expectation, ...]:
        """Every table's keys are present and unique and its data recent, plus its own checks."""
        from featurehouse.features.quality import fresh, not_null, unique

        # A snapshot (no source with event time) has no freshness to judge.
        has_event_time = any(s.timestamp for s in self.sources)
        freshness = (fresh(self.timestamp),) if has_event_time else ()
        return (not_null(*self.row_key), unique(*self.row_key), *freshness, *self.expectations)

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]


# ---------------------------------------------------------------------------------------
# What is learnt: spine, label, split, task, model, predictions


@dataclass(frozen=True)
class Spine:
    """The entity rows trained on and scored: each entity at the times `source` has rows,
    on the UTC grid of `every` (a reading at 12:30 is no row of an hourly spine)."""

    source: RawDataset
    every: timedelta

    def __post_init__(self) -> None:
        if self.source.event_time is None:
            raise DeclarationError(f"spine: data set {self.source.name!r} has no event time")
        if self.every <= timedelta(0):
            raise DeclarationError("spine: `every` must be positive")


LABEL_KINDS = ("event", "sum", "window")


@dataclass(frozen=True)
class Label:
    """The target of each spine row at time t, from the events of `source` in the horizon.

    `kind` is "event" (1 when the entity has a row of `source` in the horizon, else 0),
    "sum" (the sum of `column` over the rows in the horizon), or "window" (1 when t falls
    in one of the entity's windows: a row of `source` from its event time to `column`,
    both ends included, such as a labelled incident; the horizon is then only how long
    after t the label is known). `closed` says which ends of
    the horizon count: "right" is (t, t + horizon] (the default: what happens at t itself
    is already known at t), "both" is [t, t + horizon], "left" is [t, t + horizon).
    Rows whose horizon reaches past the newest time of the spine's data set are not
    labelled: their outcome is not known yet.
    """

    name: str
    kind: str
    source: RawDataset
    horizon: timedelta
    column: str | None = None
    closed: str = "right"

    def __post_init__(self) -> None:
        _identifier("label", self.name)
        if self.kind not in LABEL_KINDS:
            raise DeclarationError(f"label {self.name!r}: kind must be one of {LABEL_KINDS}")
        if self.kind != "event" and self.column not in self.source.bronze_columns:
            raise DeclarationError(
                f"label {self.name!r}: {self.kind} reads {self.column!r}, not a column of"
                f" {self.source.name!r}"
            )
        if self.closed not in ("right", "both", "left"):
            raise DeclarationError(f"label {self.name!r}: closed must be right, both or left")
        if self.source.event_time is None:
            raise DeclarationError(f"label {self.name!r}: {self.source.name!r} has no event time")
        if self.horizon <= timedelta(0):
            raise DeclarationError(f"label {self.name!r}: the horizon must be positive")


SPLITS = ("time", "time_per_entity", "entity", "time_and_entity")


@dataclass(frozen=True)
class Split:
    """How rows are split into train, validation and test.

    "time": the oldest span trains, the next validates, the newest tests (fractions of the
    time span, from conf). "entity": whole entities are held out (fractions of the
    entities), for run-to-failure data where the test must be units never seen. Both:
    held-out entities, in the later periods only. "time_per_entity": each entity's own time
    span is split by the fractions, for entities recorded in different periods (series
    from different months). A row whose label horizon reaches into
    the next period is dropped (the gap is the label's horizon).
    """

    by: str = "time"

    def __post_init__(self) -> None:
        if self.by not in SPLITS:
            raise DeclarationError(f"split: `by` must be one of {SPLITS}")


@dataclass(frozen=True)
class ModelInputs:
    """What a model factory is given: the feature columns by kind, and its parameters."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    params: Mapping[str, Any]

    @property
    def columns(self) -> list[str]:
        """The order the model reads its input in: categorical first, then numeric."""
        return [*self.categorical, *self.numeric]


ModelFactory = Callable[[ModelInputs], Any]


@dataclass(frozen=True)
class Candidate:
    """A model to try: a factory (`ModelInputs` -> unfitted scikit-learn estimator) and the
    hyper-parameters to search, each with the values to try. The fixed parameters, and any
    change to the search space, come from `conf/use_cases/<name>.yml`."""

    name: str
    factory: ModelFactory
    space: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _identifier("candidate", self.name)
        empty = [p for p, values in self.space.items() if not values]
        if empty:
            raise DeclarationError(f"candidate {self.name!r}: no values to try for {empty}")


CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")
REGRESSION_METRICS = ("mse", "rmse", "mae", "smape", "r2")
# Lower is better for errors; higher for the rest.
# A flag rate is read as a budget: a floor on it is a ceiling, as for an error.
LOWER_IS_BETTER = frozenset(
    {"mae", "rmse", "smape", "mse", "false_alarms_per_day", "alarms_per_day", "flag_rate"}
)


@dataclass(frozen=True)
class Classification:
    """A binary classifier. `prediction` is the probability column; `flag` is 1 at or above
    the decision threshold, chosen for the best F1 on the validation window."""

    prediction: str
    flag: str
    kind: str = "classification"
    metrics: tuple[str, ...] = CLASSIFICATION_METRICS


@dataclass(frozen=True)
class Regression:
    """A regressor. `baseline` names a feature that is itself a forecast (seasonal naive,
    such as the same days last week): its metrics are logged beside the model's."""

    prediction: str
    baseline: str | None = None
    kind: str = "regression"
    metrics: tuple[str, ...] = REGRESSION_METRICS


ANOMALY_METRICS = (
    *CLASSIFICATION_METRICS,
    "window_recall",
    "false_alarms_per_day",
    "point_precision",
    "point_recall",
    "point_f1",
)
# Without any label nothing measures detection: what a detector flags, and how its flags
# gather into alarms (see `training.anomaly_metrics.alarm_metrics`).
UNLABELLED_ANOMALY_METRICS = ("flag_rate", "alarms_per_day", "mean_alarm_rows")


@dataclass(frozen=True)
class Anomaly(Classification):
    """Unsupervised detection: the detector is fitted to the features alone and scores each
    entity row (`prediction`, in [0, 1]: how unusual the row is next to the rows it was
    fitted on); `flag` is 1 at or above the threshold.

    The label (known incident windows) never reaches the fit: it only chooses the threshold
    on the validation window (best F1) and evaluates on the test window. A use case may
    declare no label at all (`label=None`): the threshold is then the configured share of
    fitted rows (`training.anomaly_threshold`), and candidates are compared on how their
    flags gather into alarms (`UNLABELLED_ANOMALY_METRICS`). A model scored
    like a classifier everywhere else (scoring, serving, monitoring). Consecutive flagged
    rows of an entity become one anomaly event. `baseline` names a feature that is itself
    an anomaly score (a rolling z-score): the rule every metric is read against, its
    threshold chosen on the validation window like the model's.
    """

    baseline: str | None = None
    kind: str = "anomaly"
    metrics: tuple[str, ...] = ANOMALY_METRICS


Task = Classification | Regression


@dataclass(frozen=True)
class Simulator:
    """Writes seeded raw files for the demo and the tests.

    `spec` is built from the use case's `simulation` settings in conf (a dataclass whose
    fields are those settings); `write(spec, folder)` writes the raw files into `folder`.
    """

    spec: type
    write: Callable[[Any, Path], Any]


@dataclass(frozen=True)
class UseCase:
    """Everything specific to one use case. See the module docstring."""

    name: str
    description: str
    entity: Entity
    datasets: tuple[RawDataset, ...]
    tables: tuple[FeatureTable, ...]
    spine: Spine
    label: Label | None  # None only for an anomaly task: nothing labelled is known
    task: Task
    candidates: tuple[Candidate, ...]
    model_name: str
    split: Split = Split()
    simulator: Simulator | None = None
    # Categorical features whose values split the evaluation (errors by segment).
    segments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _identifier("use case", self.name)
        _identifier("model", self.model_name)
        where = f"use case {self.name!r}"
        _unique(where, "data set", [d.name for d in self.datasets])
        _unique(where, "feature table", [t.name for t in self.tables])
        _unique(where, "feature view", [t.view_name for t in self.tables])
        _unique(where, "feature", [f for t in self.tables for f in t.feature_names])
        if not self.candidates:
            raise DeclarationError(f"{where}: no candidate model")
        _unique(where, "candidate", [c.name for c in self.candidates])
        datasets = {d.name: d for d in self.datasets}
        for dataset in self.datasets:
            for reference in dataset.references:
                target = datasets.get(reference.dataset)
                if target is None:
                    raise DeclarationError(
                        f"{where}: data set {dataset.name!r} references unknown data set"
                        f" {reference.dataset!r}"
                    )
                missing = [c for c in reference.columns if c not in target.bronze_columns]
                if missing:
                    raise DeclarationError(
                        f"{where}: data set {dataset.name!r} references {missing}, not columns"
                        f" of {reference.dataset!r}"
                    )
        for table in self.tables:
            if table.entity != self.entity:
                raise DeclarationError(
                    f"{where}: feature table {table.name!r} is for entity {table.entity.name!r}"
                )
            for source in table.sources:
                if datasets.get(source.name) != source.dataset:
                    raise DeclarationError(
                        f"{where}: feature table {table.name!r} reads undeclared data set"
                        f" {source.name!r}"
                    )
        if self.label is None and not isinstance(self.task, Anomaly):
            raise DeclarationError(
                f"{where}: a {self.task.kind} task needs a label; only an anomaly task may"
                " declare none"
            )
        roles = [("spine", self.spine.source)]
        if self.label is not None:
            roles.append(("label", self.label.source))
        for role, dataset in roles:
            if datasets.get(dataset.name) != dataset:
                raise DeclarationError(
                    f"{where}: the {role} reads undeclared data set {dataset.name!r}"
                )
            missing = [k for k in self.entity.keys if k not in dataset.bronze_columns]
            if missing:
                raise DeclarationError(
                    f"{where}: the {role}'s data set {dataset.name!r} lacks keys {missing}"
                )
        features = {f.name: f for t in self.tables for f in t.features}
        baseline = getattr(self.task, "baseline", None)
        if baseline is not None and baseline not in features:
            raise DeclarationError(f"{where}: baseline {baseline!r} is not a declared feature")
        unknown = [s for s in self.segments if s not in features]
        if unknown:
            raise DeclarationError(f"{where}: segments {unknown} are not declared features")
        reserved = {*self.entity.keys, EVENT_TIMESTAMP, *self.label_columns}
        clash = sorted(reserved & set(features))
        if clash:
            raise DeclarationError(f"{where}: features {clash} shadow a key, time or the label")

    @property
    def features(self) -> list[Feature]:
        """Every feature of every table, in table order: the model's inputs."""
        return [f for t in self.tables for f in t.features]

    @property
    def keys(self) -> tuple[str, ...]:
        return self.entity.key_names

    @property
    def label_columns(self) -> list[str]:
        """The label's column in training frames and test windows: none without a label."""
        return [] if self.label is None else [self.label.name]

    @property
    def metrics(self) -> tuple[str, ...]:
        """What training measures: the task's metrics, or without a label the alarm ones."""
        return UNLABELLED_ANOMALY_METRICS if self.label is None else self.task.metrics

    def dataset(self, name: str) -> RawDataset:
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise DeclarationError(f"use case {self.name!r}: no data set {name!r}")

    def table(self, name: str) -> FeatureTable:
        for table in self.tables:
            if table.name == name:
                return table
        raise DeclarationError(f"use case {self.name!r}: no feature table {name!r}")


def _unique(where: str, kind: str, names: Sequence[str]) -> None:
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise DeclarationError(f"{where}: {kind} name(s) {repeated} declared more than once")
