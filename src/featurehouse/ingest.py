"""Raw CSV files -> bronze Delta tables, with enforced schemas and a quarantine.

Every raw row ends in exactly one place: its bronze table, or the quarantine table
with the reason it was refused. Loading is a Delta MERGE on the natural key, so
ingesting the same files twice adds nothing.

Columns are found by name in each file's header, so their order may change and
unknown extra columns are ignored (and reported); a missing column fails the run
before anything is written.
"""

from __future__ import annotations

import csv
import functools
import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from featurehouse.config import QualitySettings
from featurehouse.errors import InputDataError
from featurehouse.io import Lakehouse

log = logging.getLogger(__name__)

RAW_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"
# Excel and some exporters start UTF-8 files with a byte-order mark.
BOM = "\ufeff"


@dataclass(frozen=True)
class RawColumn:
    raw: str
    name: str
    kind: str  # "timestamp", "int", "double" or "string"


@dataclass(frozen=True)
class RawDataset:
    """One raw data set: where its files are, the columns it needs, and its bronze table."""

    table_key: str
    file_prefix: str
    columns: tuple[RawColumn, ...]
    keys: tuple[str, ...]

    @property
    def header(self) -> tuple[str, ...]:
        return tuple(c.raw for c in self.columns)

    @property
    def file_pattern(self) -> str:
        return f"{self.file_prefix}*.csv*"


_TS = RawColumn("datetime", "timestamp", "timestamp")
_MACHINE = RawColumn("machineID", "machine_id", "int")

RAW_DATASETS: tuple[RawDataset, ...] = (
    RawDataset(
        "machines",
        "PdM_machines",
        (_MACHINE, RawColumn("model", "model", "string"), RawColumn("age", "age", "int")),
        ("machine_id",),
    ),
    RawDataset(
        "telemetry",
        "PdM_telemetry",
        (
            _TS,
            _MACHINE,
            RawColumn("volt", "volt", "double"),
            RawColumn("rotate", "rotate", "double"),
            RawColumn("pressure", "pressure", "double"),
            RawColumn("vibration", "vibration", "double"),
        ),
        ("machine_id", "timestamp"),
    ),
    RawDataset(
        "errors",
        "PdM_errors",
        (_TS, _MACHINE, RawColumn("errorID", "error_id", "string")),
        ("machine_id", "timestamp", "error_id"),
    ),
    RawDataset(
        "maintenance",
        "PdM_maint",
        (_TS, _MACHINE, RawColumn("comp", "component", "string")),
        ("machine_id", "timestamp", "component"),
    ),
    RawDataset(
        "failures",
        "PdM_failures",
        (_TS, _MACHINE, RawColumn("failure", "component", "string")),
        ("machine_id", "timestamp", "component"),
    ),
)


@dataclass(frozen=True)
class IngestReport:
    table: str
    files: int
    rows_read: int
    accepted: int
    quarantined: int
    inserted: int
    quarantine_reasons: dict[str, int]
    # File name -> header columns the data set does not use (ignored, not loaded).
    ignored_columns: dict[str, tuple[str, ...]]

    def reconciles(self) -> bool:
        return self.rows_read == self.accepted + self.quarantined


@dataclass(frozen=True)
class RawFile:
    """A raw file and the header found on its first line."""

    path: Path
    header_line: str  # as read, so that this line can be left out when reading the data
    columns: tuple[str, ...]


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
        return cls(quality.earliest_timestamp, now + timedelta(minutes=quality.max_future_minutes))


def find_raw_files(input_dir: Path, dataset: RawDataset) -> list[RawFile]:
    """The data set's files in `input_dir`, each checked to be CSV text with every needed column."""
    if not input_dir.is_dir():
        raise InputDataError(f"input folder not found: {input_dir}")
    paths = sorted(input_dir.glob(dataset.file_pattern))
    if not paths:
        raise InputDataError(
            f"no {dataset.table_key} files ({dataset.file_pattern}) in {input_dir}"
        )
    files = [read_header(path) for path in paths]
    for raw_file in files:
        check_columns(raw_file, dataset)
    return files


def read_header(path: Path) -> RawFile:
    gzipped = path.suffix == ".gz"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            first_line = handle.readline()
        if gzipped:
            _read_to_the_end(path)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputDataError(f"{path}: cannot be read as CSV text ({exc})") from None
    # Hadoop's line reader drops a UTF-8 byte-order mark too, so the lines will match.
    header_line = first_line.rstrip("\r\n").removeprefix(BOM)
    if not header_line.strip():
        raise InputDataError(f"{path}: empty file (no header line)")
    names = next(csv.reader([header_line]))
    return RawFile(path, header_line, tuple(name.strip() for name in names))


def _read_to_the_end(path: Path) -> None:
    """A gzip file cut off mid-write only fails at its end: find that out before any write."""
    with gzip.open(path, "rb") as handle:
        while handle.read(1 << 20):
            pass


def check_columns(raw_file: RawFile, dataset: RawDataset) -> None:
    """Fail, naming the file, unless each column the data set needs is in the header once."""
    missing = [name for name in dataset.header if name not in raw_file.columns]
    if missing:
        raise InputDataError(
            f"{raw_file.path}: missing required column(s) {', '.join(missing)}"
            f" (header: {raw_file.header_line})"
        )
    repeated = [name for name in dataset.header if raw_file.columns.count(name) > 1]
    if repeated:
        raise InputDataError(
            f"{raw_file.path}: column(s) {', '.join(repeated)} appear more than once in the header"
        )


def unknown_columns(raw_file: RawFile, dataset: RawDataset) -> tuple[str, ...]:
    return tuple(name for name in raw_file.columns if name not in dataset.header)


def field_count(line: Column) -> Column:
    """Fields in a CSV line: its commas outside quoted values, plus one."""
    unquoted = F.regexp_replace(line, '"[^"]*"', "")
    return F.size(F.split(unquoted, ",", -1))


def read_raw_csv(lake: Lakehouse, files: Sequence[RawFile], dataset: RawDataset) -> DataFrame:
    """One row per data line: the needed columns' text, the line itself and its field count.

    Spark's CSV reader is not used: it maps a schema to columns by position, and in
    PERMISSIVE mode it pads short lines and cuts long ones without a word whenever
    column pruning applies (it does once the unused columns are left out). Reading
    lines and parsing them with `from_csv` keeps every line and its true width.
    """
    by_header: dict[str, list[RawFile]] = {}
    for raw_file in files:
        by_header.setdefault(raw_file.header_line, []).append(raw_file)
    frames = [_read_same_header(lake, group, dataset) for group in by_header.values()]
    return functools.reduce(DataFrame.unionByName, frames)


def _read_same_header(lake: Lakehouse, files: Sequence[RawFile], dataset: RawDataset) -> DataFrame:
    header = files[0]
    positional = ", ".join(f"_c{i} STRING" for i in range(len(header.columns)))
    fields = F.from_csv(F.col("_line"), positional)
    lines = (
        lake.spark.read.text([str(f.path) for f in files])
        .select(
            F.col("value").alias("_line"),
            F.col("_metadata.file_path").alias("_source_file"),
        )
        # Increases with the position in each file: "first seen" for duplicate keys.
        .withColumn("_position", F.monotonically_increasing_id())
    )
    # Blank lines are not rows (as in Spark's CSV reader), and the header is not data.
    is_data = (F.trim("_line") != "") & (F.col("_line") != header.header_line)
    return lines.where(is_data).select(
        *[fields[f"_c{header.columns.index(c.raw)}"].alias(c.raw) for c in dataset.columns],
        "_line",
        field_count(F.col("_line")).alias("_fields"),
        F.lit(len(header.columns)).alias("_header_fields"),
        "_source_file",
        "_position",
    )


def _raw(column: RawColumn) -> Column:
    """The untouched text of a raw column (its name may equal the parsed column's)."""
    return F.col(f"_raw_{column.raw}")


def _parsed(column: RawColumn) -> Column:
    raw = F.trim(_raw(column))
    if column.kind == "timestamp":
        return F.try_to_timestamp(raw, F.lit(RAW_TIMESTAMP_FORMAT))
    if column.kind == "int":
        return raw.try_cast("bigint")
    if column.kind == "double":
        return raw.try_cast("double")
    return F.when(raw != "", raw)


def _width_reason() -> Column:
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


def _failure_reason(column: RawColumn) -> Column:
    """Why this column's raw value is unusable, or null when it is fine."""
    raw = F.trim(_raw(column))
    parsed = F.col(column.name)
    missing = raw.isNull() | (raw == "")
    if column.kind == "double":
        bad = parsed.isNull() | F.isnan(parsed) | F.abs(parsed).eqNullSafe(float("inf"))
        unparsable = f"non-numeric {column.name}"
    elif column.kind == "timestamp":
        bad, unparsable = parsed.isNull(), f"unparsable {column.name}"
    elif column.kind == "int":
        bad, unparsable = parsed.isNull(), f"non-integer {column.name}"
    else:
        bad, unparsable = parsed.isNull(), f"missing {column.name}"
    return F.when(missing, F.lit(f"missing {column.name}")).when(bad, F.lit(unparsable))


def _timestamp_lit(value: datetime) -> Column:
    if value.tzinfo is not None:
        return F.lit(value)
    # Cast from text so that it is read in the session time zone, like the raw timestamps.
    return F.lit(value.isoformat(sep=" ")).cast("timestamp")


def _describe(value: datetime) -> str:
    return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")


def _range_reason(column: RawColumn, timestamps: TimestampRange) -> Column:
    """Why this parsed timestamp is not believable, or null when it is (or is null)."""
    parsed = F.col(column.name)
    return F.when(
        parsed > _timestamp_lit(timestamps.latest), F.lit(f"{column.name} in the future")
    ).when(
        parsed < _timestamp_lit(timestamps.earliest),
        F.lit(f"{column.name} before {_describe(timestamps.earliest)}"),
    )


def validate_raw(raw: DataFrame, dataset: RawDataset, timestamps: TimestampRange) -> DataFrame:
    """Parse every column and attach `_reason`: null for a good row, else the first problem found.

    Among good rows sharing a natural key the first (by file, then position in the file)
    is kept and the others are refused as duplicates, so that bronze keys are unique.
    """
    parsed = raw.select(
        *[F.col(c.raw).alias(f"_raw_{c.raw}") for c in dataset.columns],
        "_line",
        "_fields",
        "_header_fields",
        "_source_file",
        "_position",
    )
    for column in dataset.columns:
        parsed = parsed.withColumn(column.name, _parsed(column))
    reasons = [_width_reason()]
    reasons += [_failure_reason(c) for c in dataset.columns]
    reasons += [_range_reason(c, timestamps) for c in dataset.columns if c.kind == "timestamp"]
    checked = parsed.withColumn("_reason", F.coalesce(*reasons))
    # Refused rows sort last, so that a bad row never makes a good one its duplicate.
    first_seen = Window.partitionBy(*dataset.keys).orderBy(
        F.col("_reason").isNotNull(), "_source_file", "_position"
    )
    is_duplicate = F.col("_reason").isNull() & (F.row_number().over(first_seen) > 1)
    return checked.withColumn(
        "_reason", F.when(is_duplicate, F.lit("duplicate key")).otherwise(F.col("_reason"))
    )


def accepted_rows(validated: DataFrame, dataset: RawDataset, ingested_at: Column) -> DataFrame:
    return validated.where(F.col("_reason").isNull()).select(
        *[F.col(c.name) for c in dataset.columns],
        F.col("_source_file").alias("source_file"),
        ingested_at.alias("ingested_at"),
    )


def quarantined_rows(validated: DataFrame, dataset: RawDataset, ingested_at: Column) -> DataFrame:
    # A line of the wrong width is kept verbatim: its fields cannot be named.
    raw_record = F.when(F.col("_fields") != F.col("_header_fields"), F.col("_line")).otherwise(
        F.to_json(F.struct(*[_raw(c).alias(c.raw) for c in dataset.columns]))
    )
    return validated.where(F.col("_reason").isNotNull()).select(
        F.lit(dataset.table_key).alias("dataset"),
        F.col("_source_file").alias("source_file"),
        raw_record.alias("record"),
        F.col("_reason").alias("reason"),
        ingested_at.alias("ingested_at"),
    )


QUARANTINE_KEYS = ("dataset", "source_file", "record", "reason")


def ingest_dataset(
    lake: Lakehouse, input_dir: Path, dataset: RawDataset, now: datetime | None = None
) -> IngestReport:
    """Load one data set; `now` (default: the current time) bounds future timestamps."""
    files = find_raw_files(input_dir, dataset)
    ignored = {f.path.name: unknown_columns(f, dataset) for f in files}
    ignored = {name: columns for name, columns in ignored.items() if columns}
    for name, columns in ignored.items():
        log.warning("%s: ignoring unknown column(s) %s", input_dir / name, ", ".join(columns))
    timestamps = TimestampRange.around(now or datetime.now(UTC), lake.settings.quality)
    validated = validate_raw(read_raw_csv(lake, files, dataset), dataset, timestamps)
    counts = {
        row["_reason"]: int(row["count"]) for row in validated.groupBy("_reason").count().collect()
    }
    ingested_at = F.current_timestamp()
    result = lake.merge(
        accepted_rows(validated, dataset, ingested_at), dataset.table_key, dataset.keys
    )
    quarantine_counts = {reason: n for reason, n in counts.items() if reason is not None}
    if quarantine_counts:
        lake.merge(quarantined_rows(validated, dataset, ingested_at), "quarantine", QUARANTINE_KEYS)
    report = IngestReport(
        table=lake.name(dataset.table_key),
        files=len(files),
        rows_read=sum(counts.values()),
        accepted=counts.get(None, 0),
        quarantined=sum(quarantine_counts.values()),
        inserted=result.inserted,
        quarantine_reasons=dict(sorted(quarantine_counts.items())),
        ignored_columns=ignored,
    )
    log.info(
        "%s: %d rows read = %d accepted (%d new) + %d quarantined",
        report.table,
        report.rows_read,
        report.accepted,
        report.inserted,
        report.quarantined,
    )
    return report


def ingest_all(lake: Lakehouse, input_dir: Path, now: datetime | None = None) -> list[IngestReport]:
    """Ingest every raw data set; all files are checked before anything is written."""
    for dataset in RAW_DATASETS:
        find_raw_files(input_dir, dataset)
    now = now or datetime.now(UTC)
    return [ingest_dataset(lake, input_dir, dataset, now) for dataset in RAW_DATASETS]
