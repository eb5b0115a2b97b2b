"""Raw files -> bronze Delta tables, for any declared `RawDataset`, with a quarantine.

Every raw row ends in exactly one place: its bronze table, the quarantine table with
the reason it was refused, or (for a data set with a `version` column) nowhere because
a newer version of the same row came in the same batch; the report counts all three,
so they reconcile with the rows read. Loading is a Delta MERGE on the natural keys, so
ingesting the same files twice changes nothing.

Columns are found by name in each file's header (or Parquet schema), so their order may
change and unknown extra columns are ignored (and reported); every file of a run is
checked before anything is written, and a missing column fails the run there.
"""

from __future__ import annotations

import csv
import functools
import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyspark.sql.functions as F
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import types as T

from featurehouse.config import QualitySettings
from featurehouse.errors import DeclarationError, InputDataError
from featurehouse.io import Lakehouse
from featurehouse.series_health import SeriesHealth, health_summary, series_health
from featurehouse.usecase import Column, Csv, Custom, DateAndHour, Parquet, RawDataset, UseCase

log = logging.getLogger(__name__)

# Excel and some exporters start UTF-8 files with a byte-order mark.
BOM = "\ufeff"
WHITESPACE = "whitespace"
DEFAULT_FORMATS = {"timestamp": "yyyy-MM-dd HH:mm:ss", "date": "yyyy-MM-dd"}
QUARANTINE_KEYS = ("dataset", "source_file", "record", "reason")
DUPLICATE = "duplicate key"
_UNPARSABLE = {
    "bigint": "non-integer",
    "double": "non-numeric",
    "boolean": "non-boolean",
    "timestamp": "unparsable",
    "date": "unparsable",
}
_TEMPORAL = (T.TimestampType, T.TimestampNTZType, T.DateType)
_FRACTIONAL = (T.FloatType, T.DoubleType, T.DecimalType)


@dataclass(frozen=True)
class IngestReport:
    """What one data set's ingestion did. `files == 0`: no files in the folder, skipped."""

    table: str
    files: int
    rows_read: int
    accepted: int
    quarantined: int
    inserted: int
    quarantine_reasons: dict[str, int]
    # File name -> header columns the data set does not use (ignored, not loaded).
    ignored_columns: dict[str, tuple[str, ...]]
    # Stored rows replaced by a greater `version` of the same keys.
    updated: int = 0
    # Rows of this batch that a greater `version` of the same keys in the batch replaced.
    superseded: int = 0
    dataset: str = ""
    pattern: str = ""
    # Per entity, for a data set of time series: its health in this run.
    series: tuple[SeriesHealth, ...] = ()

    @property
    def skipped(self) -> bool:
        return self.files == 0

    def reconciles(self) -> bool:
        return self.rows_read == self.accepted + self.superseded + self.quarantined

    def summary(self) -> str:
        if self.skipped:
            return f"{self.dataset}: no files ({self.pattern}), skipped"
        superseded = f" + {self.superseded} superseded" if self.superseded else ""
        health = f"; {health_summary(list(self.series))}" if self.series else ""
        return (
            f"{self.table}: {self.rows_read} rows read = {self.accepted} accepted"
            f" ({self.inserted} new, {self.updated} updated){superseded}"
            f" + {self.quarantined} quarantined{health}"
        )


@dataclass(frozen=True)
class RawFile:
    """A raw file and the columns it has, checked before any Spark job reads it."""

    path: Path
    # As named in the file: its header, the format's `names`, or its Parquet schema.
    columns: tuple[str, ...]
    # The header as read, so that this line can be left out of the data; None without one.
    header_line: str | None = None
    # Parquet column types: files of one schema are read together.
    types: tuple[str, ...] = ()

    @property
    def group(self) -> object:
        """Files read by one Spark reader: those that name (and type) their columns alike."""
        return (self.header_line, self.columns, self.types)

    @property
    def described(self) -> str:
        if self.header_line is not None:
            return f"header: {self.header_line}"
        return f"columns: {', '.join(self.columns)}"


@dataclass(frozen=True)
class TimestampRange:
    """Event times outside [earliest, latest] are refused: bad clocks, not real events.

    Naive datetimes are read like the raw timestamps (in the Spark session's time zone);
    aware ones are exact instants.
    """

    earliest: datetime
    latest: datetime

    @classmethod
    def around(cls, now: datetime, quality: QualitySettings) -> TimestampRange:
        return cls(quality.earliest_timestamp, now + quality.max_future)


# ---------------------------------------------------------------------------------------
# Finding and checking files (plain Python: nothing is written before all files pass)


def find_raw_files(
    input_dir: Path, dataset: RawDataset, pattern: str | None = None
) -> list[RawFile]:
    """The data set's files in `input_dir` (maybe none), each checked to match its format.
    `pattern` (from conf) replaces the declared one, e.g. to read one folder of a
    published data set."""
    if not input_dir.is_dir():
        raise InputDataError(f"input folder not found: {input_dir}")
    paths = sorted(p for p in input_dir.glob(pattern or dataset.pattern) if p.is_file())
    files = [inspect_file(path, dataset.format) for path in paths]
    for raw_file in files:
        check_columns(raw_file, dataset)
    return files


def inspect_file(path: Path, file_format: Csv | Parquet | Custom) -> RawFile:
    if isinstance(file_format, Parquet):
        return _inspect_parquet(path)
    if isinstance(file_format, Custom):
        return RawFile(path, tuple(_read_custom_file(path, file_format).columns))
    return _inspect_text(path, file_format)


def _read_custom_file(path: Path, file_format: Custom):
    try:
        return file_format.read(path)
    except Exception as exc:  # whatever the declared reader raises, name the file
        raise InputDataError(
            f"{path}: cannot be read as {file_format.description or 'declared'} ({exc})"
        ) from None


def _inspect_text(path: Path, file_format: Csv) -> RawFile:
    gzipped = path.suffix == ".gz"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            first_line = handle.readline()
        if gzipped:
            _read_to_the_end(path)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputDataError(f"{path}: cannot be read as CSV text ({exc})") from None
    if not file_format.header:
        return RawFile(path, tuple(file_format.names))
    # Hadoop's line reader drops a UTF-8 byte-order mark too, so the lines will match.
    header_line = first_line.rstrip("\r\n").removeprefix(BOM)
    if not header_line.strip():
        raise InputDataError(f"{path}: empty file (no header line)")
    return RawFile(path, split_header(header_line, file_format), header_line)


def split_header(line: str, file_format: Csv) -> tuple[str, ...]:
    if file_format.delimiter == WHITESPACE:
        return tuple(name.strip('"') for name in line.split())
    names = next(csv.reader([line], delimiter=_separator(file_format)))
    return tuple(name.strip() for name in names)


def _read_to_the_end(path: Path) -> None:
    """A gzip file cut off mid-write only fails at its end: find that out before any write."""
    with gzip.open(path, "rb") as handle:
        while handle.read(1 << 20):
            pass


def _inspect_parquet(path: Path) -> RawFile:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputDataError(f"{path}: cannot be read as Parquet ({exc})") from None
    # Spark 4 refuses the whole file (any column) when a timestamp is in nanoseconds.
    nanos = [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]
    if nanos:
        raise InputDataError(
            f"{path}: column(s) {', '.join(nanos)} hold nanosecond timestamps, which Spark"
            " cannot read: write them in microseconds"
        )
    return RawFile(path, tuple(schema.names), types=tuple(str(f.type) for f in schema))


def check_columns(raw_file: RawFile, dataset: RawDataset) -> None:
    """Fail, naming the file, unless each column the data set reads is in the file once."""
    needed = _needed(dataset)
    missing = [name for name in needed if name not in raw_file.columns]
    if missing:
        raise InputDataError(
            f"{raw_file.path}: missing required column(s) {', '.join(missing)}"
            f" ({raw_file.described})"
        )
    repeated = [name for name in needed if raw_file.columns.count(name) > 1]
    if repeated:
        raise InputDataError(
            f"{raw_file.path}: column(s) {', '.join(repeated)} appear more than once in the header"
        )


def unknown_columns(raw_file: RawFile, dataset: RawDataset) -> tuple[str, ...]:
    if raw_file.header_line is None and isinstance(dataset.format, Csv):
        return ()  # the format's `names` are declared, so none is unknown
    needed = _needed(dataset)
    return tuple(name for name in raw_file.columns if name not in needed)


def _needed(dataset: RawDataset) -> list[str]:
    return list(dict.fromkeys(c.raw_name for c in dataset.file_columns))


def _separator(file_format: Csv) -> str:
    """The one character between fields (whitespace runs are rewritten to one space)."""
    if file_format.delimiter == WHITESPACE:
        return " "
    if len(file_format.delimiter) != 1:
        raise DeclarationError(
            f"CSV delimiter {file_format.delimiter!r}: use one character or 'whitespace'"
        )
    return file_format.delimiter


# ---------------------------------------------------------------------------------------
# Reading: one row per raw row, each declared file column as text (`_raw_<name>`)


def _raw(column: Column) -> str:
    return f"_raw_{column.name}"


def _native(column: Column) -> str:
    """A value the file already typed (Parquet), used instead of parsing its text."""
    return f"_native_{column.name}"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def read_raw(lake: Lakehouse, files: Sequence[RawFile], dataset: RawDataset) -> DataFrame:
    """One row per raw row: the columns' raw text, the line, its width, its file and position."""
    groups: dict[object, list[RawFile]] = {}
    for raw_file in files:
        groups.setdefault(raw_file.group, []).append(raw_file)
    read = {"parquet": _read_parquet, "custom": _read_custom}.get(dataset.format.kind, _read_text)
    frames = [read(lake, group, dataset) for group in groups.values()]
    return functools.reduce(DataFrame.unionByName, frames)


def _with_origin(rows: DataFrame) -> DataFrame:
    return (
        rows.withColumn("_source_file", F.col("_metadata.file_path"))
        # Increases with the position in each file: "first seen" for duplicate keys.
        .withColumn("_position", F.monotonically_increasing_id())
    )


def normalized_line(line: SparkColumn, file_format: Csv) -> SparkColumn:
    """The line as `from_csv` reads it: runs of whitespace become one separator."""
    if file_format.delimiter != WHITESPACE:
        return line
    trimmed = F.regexp_replace(line, r"^\s+|\s+$", "")
    return F.regexp_replace(trimmed, r"\s+", _separator(file_format))


def field_count(line: SparkColumn, separator: str) -> SparkColumn:
    """Fields in a delimited line: its separators outside quoted values, plus one."""
    unquoted = F.regexp_replace(line, '"[^"]*"', "")
    # A backslash makes any non-letter literal in a Java regex.
    pattern = separator if separator.isalnum() else "\\" + separator
    return F.size(F.split(unquoted, pattern, -1))


def _read_text(lake: Lakehouse, files: Sequence[RawFile], dataset: RawDataset) -> DataFrame:
    """Spark's CSV reader is not used: it maps a schema to columns by position, and in
    PERMISSIVE mode it pads short lines and cuts long ones without a word whenever
    column pruning applies. Reading lines and parsing them with `from_csv` keeps every
    line and its true width.
    """
    file_format = dataset.format
    first = files[0]
    separator = _separator(file_format)
    positional = ", ".join(f"_c{i} STRING" for i in range(len(first.columns)))
    lines = _with_origin(lake.spark.read.text([str(f.path) for f in files]))
    text = normalized_line(F.col("value"), file_format)
    fields = F.from_csv(text, positional, {"sep": separator})
    # Blank lines are not rows (as in Spark's CSV reader), and the header is not data.
    blank = F.trim(text) == ""
    is_data = (
        ~blank if first.header_line is None else ~blank & (F.col("value") != first.header_line)
    )
    file_columns = dataset.file_columns
    return lines.where(is_data).select(
        *[fields[f"_c{first.columns.index(c.raw_name)}"].alias(_raw(c)) for c in file_columns],
        *[F.lit(None).cast(c.dtype).alias(_native(c)) for c in file_columns],
        F.col("value").alias("_line"),
        field_count(text, separator).alias("_fields"),
        F.lit(len(first.columns)).alias("_header_fields"),
        "_source_file",
        "_position",
    )


def _read_parquet(lake: Lakehouse, files: Sequence[RawFile], dataset: RawDataset) -> DataFrame:
    """Parquet rows have no line: each column's value as text is what a CSV line would hold."""
    rows = _with_origin(lake.spark.read.parquet(*[str(f.path) for f in files]))
    types = {f.name: f.dataType for f in rows.schema.fields}
    file_columns = dataset.file_columns
    return rows.select(
        *[F.col(_quoted(c.raw_name)).cast("string").alias(_raw(c)) for c in file_columns],
        *[_typed(c, types[c.raw_name]).alias(_native(c)) for c in file_columns],
        *_origin_without_line(),
    )


def _origin_without_line() -> list[SparkColumn | str]:
    """What a row read from a file without lines (Parquet, a custom reader) carries beside
    its values: no line and no width to check, its file and position."""
    return [
        F.lit(None).cast("string").alias("_line"),
        F.lit(0).alias("_fields"),
        F.lit(0).alias("_header_fields"),
        "_source_file",
        "_position",
    ]


def _read_custom(lake: Lakehouse, files: Sequence[RawFile], dataset: RawDataset) -> DataFrame:
    """Rows the declared reader returns, every value as text, as if read from a CSV."""
    import pandas as pd

    file_columns = dataset.file_columns
    frames = []
    for raw_file in files:
        rows = _read_custom_file(raw_file.path, dataset.format)
        text = pd.DataFrame(
            {_raw(c): rows[c.raw_name].map(_text, na_action="ignore") for c in file_columns}
        )
        frames.append(text.assign(_source_file=str(raw_file.path), _position=range(len(text))))
    schema = ", ".join(f"{_raw(c)} STRING" for c in file_columns)
    rows = lake.spark.createDataFrame(
        pd.concat(frames, ignore_index=True).astype(object).where(lambda f: f.notna(), None),
        f"{schema}, _source_file STRING, _position BIGINT",
    )
    return rows.select(
        *[_raw(c) for c in file_columns],
        *[F.lit(None).cast(c.dtype).alias(_native(c)) for c in file_columns],
        *_origin_without_line(),
    )


def _text(value: object) -> str:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def _typed(column: Column, source: T.DataType) -> SparkColumn:
    """The Parquet value when its type says more than its text would, else null."""
    value = F.col(_quoted(column.raw_name))
    if column.dtype in ("timestamp", "date") and isinstance(source, _TEMPORAL):
        return value.cast(column.dtype)
    if column.dtype == "bigint" and isinstance(source, _FRACTIONAL):
        # pandas writes an integer column with gaps as floats: 3.0 is the integer 3.
        return F.when(value % 1 == 0, value.try_cast("bigint"))
    return F.lit(None).cast(column.dtype)


# ---------------------------------------------------------------------------------------
# Validating: parse every column and attach `_reason` (null for a good row)


def _parsed(column: Column) -> SparkColumn:
    if column.is_constant:
        return _constant(column)
    text = F.trim(F.col(_raw(column)))
    fmt = column.format or DEFAULT_FORMATS.get(column.dtype, "")
    if column.dtype == "timestamp":
        parsed = F.try_to_timestamp(text, F.lit(fmt))
    elif column.dtype == "date":
        parsed = F.try_to_date(text, fmt)
    elif column.dtype in ("bigint", "double"):
        parsed = text.try_cast(column.dtype)
    elif column.dtype == "boolean":
        lowered = F.lower(text)
        parsed = F.when(lowered.isin("true", "1"), True).when(lowered.isin("false", "0"), False)
    else:
        parsed = F.when(text != "", text)
    return F.coalesce(F.col(_native(column)), parsed)


def _constant(column: Column) -> SparkColumn:
    if column.from_path:
        parts = F.split(F.url_decode(F.col("_source_file")), "/")
        return F.array_join(F.slice(parts, -column.from_path, column.from_path), "/")
    if column.format and column.dtype == "timestamp":
        return F.try_to_timestamp(F.lit(str(column.value)), F.lit(column.format))
    if column.format:
        return F.try_to_date(F.lit(str(column.value)), column.format)
    return F.lit(column.value).cast(column.dtype)


def _width_reason() -> SparkColumn:
    """Why the line does not have as many fields as the header, or null when it does.

    A short line is typically the last one of a file cut off while being written.
    """
    fields, expected = F.col("_fields"), F.col("_header_fields")
    return F.when(
        fields < expected, F.format_string("truncated line: %d of %d fields", fields, expected)
    ).when(
        fields > expected,
        F.format_string("malformed line: %d fields, header has %d", fields, expected),
    )


def _failure_reason(column: Column) -> SparkColumn:
    """Why this column's raw value is unusable, or null when it is fine."""
    text = F.trim(F.col(_raw(column)))
    parsed = F.col(column.name)
    missing = text.isNull() | (text == "")
    bad = parsed.isNull()
    if column.dtype == "double":
        bad = bad | F.isnan(parsed) | F.abs(parsed).eqNullSafe(float("inf"))
    unparsable = f"{_UNPARSABLE.get(column.dtype, 'missing')} {column.name}"
    # A nullable column's empty value is a null, not a problem.
    when_missing = (
        F.lit(None).cast("string") if column.nullable else F.lit(f"missing {column.name}")
    )
    return F.when(missing, when_missing).when(bad, F.lit(unparsable))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _rule_reason(column: Column) -> SparkColumn | None:
    """Why this parsed value breaks the column's declared rules, or null when it does not."""
    value = F.col(column.name)
    rules: list[tuple[SparkColumn, str]] = []
    if column.dtype in ("bigint", "double"):
        if column.min is not None:
            rules.append((value < column.min, f"{column.name} below {_number(column.min)}"))
        if column.max is not None:
            rules.append((value > column.max, f"{column.name} above {_number(column.max)}"))
    if column.allowed is not None:
        allowed = list(column.allowed)
        rules.append(
            (~value.cast("string").isin(allowed), f"{column.name} not one of {', '.join(allowed)}")
        )
    if not rules:
        return None
    return F.coalesce(*[F.when(broken, F.lit(reason)) for broken, reason in rules])


def _event_time_reasons(dataset: RawDataset) -> list[SparkColumn]:
    """A derived event time that could not be computed from good inputs, or an hour off the clock."""
    if dataset.time is None or isinstance(dataset.time, str):
        return []
    reasons = []
    if isinstance(dataset.time, DateAndHour):
        hour = F.col(dataset.time.hour)
        reasons.append(F.when((hour < 0) | (hour > 23), F.lit(f"{dataset.time.hour} outside 0-23")))
    name = dataset.time.name
    reasons.append(F.when(F.col(name).isNull(), F.lit(f"unparsable {name}")))
    return reasons


def _timestamp_lit(value: datetime) -> SparkColumn:
    if value.tzinfo is not None:
        return F.lit(value)
    # Cast from text so that it is read in the session time zone, like the raw timestamps.
    return F.lit(value.isoformat(sep=" ")).cast("timestamp")


def _describe(value: datetime) -> str:
    return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")


def _range_reason(name: str, timestamps: TimestampRange) -> SparkColumn:
    """Why this parsed timestamp is not believable, or null when it is (or is null)."""
    parsed = F.col(name)
    return F.when(parsed > _timestamp_lit(timestamps.latest), F.lit(f"{name} in the future")).when(
        parsed < _timestamp_lit(timestamps.earliest),
        F.lit(f"{name} before {_describe(timestamps.earliest)}"),
    )


def _timestamp_columns(dataset: RawDataset) -> list[str]:
    """The file's timestamps and the derived event time: the ones a clock can get wrong."""
    stamped = [c.name for c in dataset.file_columns if c.dtype == "timestamp"]
    derived = [] if isinstance(dataset.time, str) or dataset.time is None else [dataset.time.name]
    return stamped + derived


def reference_tables(lake: Lakehouse, dataset: RawDataset) -> list[DataFrame | None]:
    """The key columns of each referenced data set's bronze table; None when it has none yet."""
    return [
        lake.read(ref.dataset).select(*ref.columns).distinct() if lake.exists(ref.dataset) else None
        for ref in dataset.references
    ]


def _with_references(
    checked: DataFrame, dataset: RawDataset, known: Sequence[DataFrame | None]
) -> tuple[DataFrame, list[SparkColumn]]:
    """Flag each row whose reference columns match a referenced row; reasons for those that do not."""
    reasons = []
    for index, (reference, table) in enumerate(zip(dataset.references, known, strict=True)):
        flag = f"_known_{index}"
        if table is None:
            checked = checked.withColumn(flag, F.lit(None).cast("boolean"))
        else:
            checked = checked.join(
                table.withColumn(flag, F.lit(True)), on=list(reference.columns), how="left"
            )
        unknown = f"unknown {', '.join(reference.columns)} (not in {reference.dataset})"
        reasons.append(F.when(F.col(flag).isNull(), F.lit(unknown)))
    return checked, reasons


def validate_raw(
    raw: DataFrame,
    dataset: RawDataset,
    timestamps: TimestampRange,
    known: Sequence[DataFrame | None] = (),
) -> DataFrame:
    """Parse every column and attach `_reason`: null for a good row, else the first problem
    found; and `_superseded`: a good row a newer version of the same keys replaces.

    `known` holds the referenced tables' keys (see `reference_tables`), one per reference.
    """
    parsed = raw
    for column in dataset.columns:
        parsed = parsed.withColumn(column.name, _parsed(column))
    if dataset.time is not None and not isinstance(dataset.time, str):
        columns = {c.name: F.col(c.name) for c in dataset.columns}
        parsed = parsed.withColumn(dataset.time.name, dataset.time.expression(columns))
    parsed, unknown = _with_references(parsed, dataset, known or [None] * len(dataset.references))
    reasons = [_width_reason()]
    reasons += [_failure_reason(c) for c in dataset.file_columns]
    reasons += [r for r in map(_rule_reason, dataset.columns) if r is not None]
    reasons += _event_time_reasons(dataset)
    reasons += [_range_reason(name, timestamps) for name in _timestamp_columns(dataset)]
    reasons += unknown
    return _mark_duplicates(parsed.withColumn("_reason", F.coalesce(*reasons)), dataset)


def _mark_duplicates(checked: DataFrame, dataset: RawDataset) -> DataFrame:
    """Keep one good row per key, so that bronze keys are unique.

    Without a version the first seen (by file, then position in the file) wins and the
    others are refused as duplicates. With one, the greatest version wins; older versions
    are superseded (not errors), and another row of the winning version is a duplicate.
    Refused rows sort last, so that a bad row never makes a good one its duplicate.
    """
    good = F.col("_reason").isNull()
    by_key = Window.partitionBy(*dataset.keys)
    order = [F.col("_reason").isNotNull(), "_source_file", "_position"]
    if dataset.version is None:
        later = good & (F.row_number().over(by_key.orderBy(*order)) > 1)
        superseded = F.lit(False)
    else:
        version = F.col(dataset.version)
        newest_first = by_key.orderBy(order[0], version.desc_nulls_last(), *order[1:])
        later = good & (F.row_number().over(newest_first) > 1)
        newest = F.max(F.when(good, version)).over(by_key)
        superseded = later & ~version.eqNullSafe(newest)
    return checked.withColumn("_superseded", superseded).withColumn(
        "_reason", F.when(later & ~superseded, F.lit(DUPLICATE)).otherwise(F.col("_reason"))
    )


# ---------------------------------------------------------------------------------------
# Writing


def accepted_rows(validated: DataFrame, dataset: RawDataset, ingested_at: SparkColumn) -> DataFrame:
    kept = F.col("_reason").isNull() & ~F.col("_superseded")
    return validated.where(kept).select(
        *[F.col(name) for name in dataset.bronze_columns],
        F.col("_source_file").alias("source_file"),
        ingested_at.alias("ingested_at"),
    )


def quarantined_rows(
    validated: DataFrame, dataset: RawDataset, ingested_at: SparkColumn
) -> DataFrame:
    # A line of the wrong width is kept verbatim: its fields cannot be named.
    fields = F.to_json(F.struct(*[F.col(_raw(c)).alias(c.raw_name) for c in dataset.file_columns]))
    record = F.when(F.col("_fields") != F.col("_header_fields"), F.col("_line")).otherwise(fields)
    return validated.where(F.col("_reason").isNotNull()).select(
        F.lit(dataset.name).alias("dataset"),
        F.col("_source_file").alias("source_file"),
        record.alias("record"),
        F.col("_reason").alias("reason"),
        ingested_at.alias("ingested_at"),
    )


def newer_than_stored(lake: Lakehouse, rows: DataFrame, dataset: RawDataset) -> DataFrame:
    """The rows whose keys are not stored, or stored with a smaller version.

    MERGE then updates every matched row: only a greater version replaces a stored row, so
    a late correction lands and re-ingesting the same files changes nothing.
    """
    if dataset.version is None or not lake.exists(dataset.name):
        return rows
    stored = lake.read(dataset.name).select(
        *[F.col(k).alias(f"_stored_{k}") for k in dataset.keys],
        F.col(dataset.version).alias("_stored_version"),
    )
    same_key = functools.reduce(
        lambda a, b: a & b, [rows[k].eqNullSafe(stored[f"_stored_{k}"]) for k in dataset.keys]
    )
    stored_version = F.col("_stored_version")
    newer = stored_version.isNull() | (F.col(dataset.version) > stored_version)
    return rows.join(stored, same_key, "left").where(newer).select(*rows.columns)


def _outcome_counts(validated: DataFrame) -> dict[tuple[str | None, bool], int]:
    """Rows per (reason, superseded): the one Spark job that counts a data set's rows."""
    counts = validated.groupBy("_reason", "_superseded").count().collect()
    return {(row["_reason"], bool(row["_superseded"])): int(row["count"]) for row in counts}


def _ignored_columns(files: Sequence[RawFile], dataset: RawDataset) -> dict[str, tuple[str, ...]]:
    ignored = {f.path.name: unknown_columns(f, dataset) for f in files}
    for raw_file in files:
        if ignored[raw_file.path.name]:
            columns = ", ".join(ignored[raw_file.path.name])
            log.warning("%s: ignoring unknown column(s) %s", raw_file.path, columns)
    return {name: columns for name, columns in ignored.items() if columns}


def ingest_files(
    lake: Lakehouse, dataset: RawDataset, files: Sequence[RawFile], now: datetime
) -> IngestReport:
    """Load checked files of one data set; `now` bounds future timestamps."""
    ignored = _ignored_columns(files, dataset)
    timestamps = TimestampRange.around(now, lake.settings.quality)
    known = reference_tables(lake, dataset)
    validated = validate_raw(read_raw(lake, files, dataset), dataset, timestamps, known)
    counts = _outcome_counts(validated)
    ingested_at = F.current_timestamp()
    accepted = accepted_rows(validated, dataset, ingested_at)
    rows = newer_than_stored(lake, accepted, dataset)
    result = lake.merge(rows, dataset.name, dataset.keys, update=dataset.version is not None)
    reasons: dict[str, int] = {}
    for (reason, _), count in counts.items():
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + count
    if reasons:
        lake.merge(quarantined_rows(validated, dataset, ingested_at), "quarantine", QUARANTINE_KEYS)
    report = IngestReport(
        table=lake.name(dataset.name),
        files=len(files),
        rows_read=sum(counts.values()),
        accepted=counts.get((None, False), 0),
        quarantined=sum(reasons.values()),
        inserted=result.inserted,
        quarantine_reasons=dict(sorted(reasons.items())),
        ignored_columns=ignored,
        updated=result.updated,
        superseded=counts.get((None, True), 0),
        dataset=dataset.name,
        pattern=dataset.pattern,
        series=tuple(series_health(validated, dataset, DUPLICATE) if dataset.series else ()),
    )
    log.info("%s", report.summary())
    return report


def skipped_report(lake: Lakehouse, dataset: RawDataset) -> IngestReport:
    """The report of a data set without files in the folder: nothing read, nothing written."""
    return IngestReport(
        table=lake.name(dataset.name),
        files=0,
        rows_read=0,
        accepted=0,
        quarantined=0,
        inserted=0,
        quarantine_reasons={},
        ignored_columns={},
        dataset=dataset.name,
        pattern=dataset.pattern,
    )


def _no_files(dataset: RawDataset) -> str:
    return f"no {dataset.name} files ({dataset.pattern})"


def ingest_dataset(
    lake: Lakehouse, input_dir: Path, dataset: RawDataset, now: datetime | None = None
) -> IngestReport:
    """Load one data set's files; `now` (default: the current time) bounds future timestamps.

    Asked for by name, a data set without files is an error (`ingest_use_case` skips it).
    """
    files = find_raw_files(input_dir, dataset, _pattern(lake, dataset))
    if not files:
        raise InputDataError(f"{_no_files(dataset)} in {input_dir}")
    return ingest_files(lake, dataset, files, now or datetime.now(UTC))


def _pattern(lake: Lakehouse, dataset: RawDataset) -> str | None:
    """conf's pattern for the data set, if any (a lakehouse of an ad-hoc use case has none)."""
    configured = lake.settings.use_cases.get(lake.use_case)
    return configured.patterns.get(dataset.name) if configured else None


def ingestion_order(datasets: Sequence[RawDataset]) -> list[RawDataset]:
    """Declared order, except that a referenced data set comes before those referencing it."""
    by_name = {d.name: d for d in datasets}
    ordered: dict[str, RawDataset] = {}

    def visit(dataset: RawDataset, path: tuple[str, ...]) -> None:
        if dataset.name in ordered:
            return
        if dataset.name in path:
            cycle = " -> ".join((*path[path.index(dataset.name) :], dataset.name))
            raise DeclarationError(f"data sets reference each other in a cycle: {cycle}")
        for reference in dataset.references:
            if reference.dataset != dataset.name and reference.dataset in by_name:
                visit(by_name[reference.dataset], (*path, dataset.name))
        ordered[dataset.name] = dataset

    for dataset in datasets:
        visit(dataset, ())
    return list(ordered.values())


def ingest_use_case(
    lake: Lakehouse, use_case: UseCase, input_dir: Path, now: datetime | None = None
) -> list[IngestReport]:
    """Ingest every data set of the use case with files in `input_dir`, referenced ones first.

    Every file of every data set is checked before anything is written. A data set
    without files is skipped (a folder holding only today's telemetry drop loads that),
    and reported with `files == 0`; a folder without a file of any data set is an error.
    """
    if lake.use_case != use_case.name:
        raise ValueError(f"the lakehouse serves {lake.use_case!r}, not {use_case.name!r}")
    found = {d.name: find_raw_files(input_dir, d, _pattern(lake, d)) for d in use_case.datasets}
    if not any(found.values()):
        expected = ", ".join(_no_files(d) for d in use_case.datasets)
        raise InputDataError(
            f"no input files of use case {use_case.name} in {input_dir}: {expected}"
        )
    now = now or datetime.now(UTC)
    return [
        ingest_files(lake, d, found[d.name], now) if found[d.name] else skipped_report(lake, d)
        for d in ingestion_order(use_case.datasets)
    ]
