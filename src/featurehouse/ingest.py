"""Raw CSV files -> bronze Delta tables, with enforced schemas and a quarantine.

Every raw row ends in exactly one place: its bronze table, or the quarantine table
with the reason it was refused. Loading is a Delta MERGE on the natural key, so
ingesting the same files twice adds nothing.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql.types import StringType, StructField, StructType

from featurehouse.errors import InputDataError
from featurehouse.io import Lakehouse

log = logging.getLogger(__name__)

RAW_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"
CORRUPT_RECORD = "_corrupt_record"


@dataclass(frozen=True)
class RawColumn:
    raw: str
    name: str
    kind: str  # "timestamp", "int", "double" or "string"


@dataclass(frozen=True)
class RawDataset:
    """One raw data set: where its files are, their header, and its bronze table."""

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

    def reconciles(self) -> bool:
        return self.rows_read == self.accepted + self.quarantined


def find_raw_files(input_dir: Path, dataset: RawDataset) -> list[Path]:
    """The data set's files in `input_dir`, each checked to be non-empty with the expected header."""
    if not input_dir.is_dir():
        raise InputDataError(f"input folder not found: {input_dir}")
    files = sorted(input_dir.glob(dataset.file_pattern))
    if not files:
        raise InputDataError(
            f"no {dataset.table_key} files ({dataset.file_pattern}) in {input_dir}"
        )
    for path in files:
        check_header(path, dataset.header)
    return files


def check_header(path: Path, expected: Sequence[str]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            first_line = handle.readline()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputDataError(f"{path}: cannot be read as CSV text ({exc})") from None
    if not first_line.strip():
        raise InputDataError(f"{path}: empty file (no header line)")
    found = [name.strip().strip('"') for name in first_line.strip().split(",")]
    if found != list(expected):
        raise InputDataError(
            f"{path}: wrong header: expected {','.join(expected)}, found {','.join(found)}"
        )


def read_raw_csv(lake: Lakehouse, files: Sequence[Path], dataset: RawDataset) -> DataFrame:
    """All values as strings, so that parsing (and its failures) happen in `validate_raw`."""
    schema = StructType(
        [StructField(c.raw, StringType()) for c in dataset.columns]
        + [StructField(CORRUPT_RECORD, StringType())]
    )
    return (
        lake.spark.read.schema(schema)
        .option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .csv([str(f) for f in files])
        .withColumn("_source_file", F.col("_metadata.file_path"))
        # Increases with the position in each file: "first seen" for duplicate keys.
        .withColumn("_position", F.monotonically_increasing_id())
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


def validate_raw(raw: DataFrame, dataset: RawDataset) -> DataFrame:
    """Parse every column and attach `_reason`: null for a good row, else the first problem found.

    Among rows sharing a natural key the first (by file, then position in the file) is
    kept and the others are refused as duplicates, so that bronze keys are unique.
    """
    parsed = raw.select(
        *[F.col(c.raw).alias(f"_raw_{c.raw}") for c in dataset.columns],
        CORRUPT_RECORD,
        "_source_file",
        "_position",
    )
    for column in dataset.columns:
        parsed = parsed.withColumn(column.name, _parsed(column))
    reasons = [F.when(F.col(CORRUPT_RECORD).isNotNull(), F.lit("malformed line"))]
    reasons += [_failure_reason(c) for c in dataset.columns]
    checked = parsed.withColumn("_reason", F.coalesce(*reasons))
    first_seen = Window.partitionBy(*dataset.keys).orderBy("_source_file", "_position")
    rank = F.row_number().over(first_seen)
    is_duplicate = F.col("_reason").isNull() & (rank > 1)
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
    raw_record = F.coalesce(
        F.col(CORRUPT_RECORD),
        F.to_json(F.struct(*[_raw(c).alias(c.raw) for c in dataset.columns])),
    )
    return validated.where(F.col("_reason").isNotNull()).select(
        F.lit(dataset.table_key).alias("dataset"),
        F.col("_source_file").alias("source_file"),
        raw_record.alias("record"),
        F.col("_reason").alias("reason"),
        ingested_at.alias("ingested_at"),
    )


QUARANTINE_KEYS = ("dataset", "source_file", "record", "reason")


def ingest_dataset(lake: Lakehouse, input_dir: Path, dataset: RawDataset) -> IngestReport:
    files = find_raw_files(input_dir, dataset)
    validated = validate_raw(read_raw_csv(lake, files, dataset), dataset)
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


def ingest_all(lake: Lakehouse, input_dir: Path) -> list[IngestReport]:
    """Ingest every raw data set; all files are checked before anything is written."""
    for dataset in RAW_DATASETS:
        find_raw_files(input_dir, dataset)
    return [ingest_dataset(lake, input_dir, dataset) for dataset in RAW_DATASETS]
