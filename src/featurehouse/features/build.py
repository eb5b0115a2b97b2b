"""The feature job: bronze tables -> checked, incremental, idempotent Delta feature tables.

One run of one feature table:

1. Pin every source to its current Delta version and check its columns (a missing or
   retyped column stops the run before anything is written).
2. Decide what to compute. `incremental` (the default) reads the sources' change data
   feed since the versions the last run stored (the watermark) and recomputes, per
   machine, every feature row from the earliest changed event on, reading each source
   `history` further back so boundary windows are exact. Late and out-of-order events
   are just changes with old timestamps. `backfill` recomputes a time range; `full`
   recomputes everything (also chosen when there is no watermark, the table is new or
   its schema differs from the declaration).
3. Check the batch against the table's expectations: failing rows are quarantined with
   the reason, results go to the data-quality table, and a failed `fail` expectation
   stops the run before anything is published.
4. Publish: MERGE on (keys, event timestamp), updating only rows whose values changed,
   so a rerun changes nothing; a full build replaces the rows in one commit.
5. Store the new watermark, then OPTIMIZE / VACUUM as configured.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyspark.sql.functions as F
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame

from featurehouse.errors import DataQualityError, FeaturehouseError, SourceSchemaError
from featurehouse.features import FEATURE_TABLES, FeatureTable
from featurehouse.features.declaration import ENTITY_KEY, Source
from featurehouse.features.quality import (
    REASON,
    BatchQuality,
    CheckResult,
    check_batch,
    with_reasons,
)
from featurehouse.ingest import QUARANTINE_KEYS, RAW_DATASETS
from featurehouse.io import Lakehouse

log = logging.getLogger(__name__)

# Older than any event: the start of a machine whose whole history must be recomputed.
BEGINNING = datetime(1900, 1, 1)
START = "_start"
STARTS_SCHEMA = f"{ENTITY_KEY} bigint, {START} timestamp"
NO_ROWS_CHANGED = "no rows changed"
BRONZE_TYPES = {"timestamp": "timestamp", "int": "bigint", "double": "double", "string": "string"}


@dataclass(frozen=True)
class Recompute:
    """The rows a run recomputes: per machine, those from its start on."""

    starts: DataFrame  # (machine_id, _start)
    since: datetime  # the earliest start: older files of sources and target can be skipped


@dataclass(frozen=True)
class FeatureRun:
    """What one run of one feature table did. Rows computed = valid + quarantined."""

    table_key: str
    table: str
    mode: str  # "full", "incremental", "backfill", "up to date" or "no rows changed"
    reason: str
    source_versions: dict[str, int]
    quality: BatchQuality | None = None  # None when there was nothing to compute
    inserted: int = 0
    updated: int = 0

    @property
    def published(self) -> bool:
        return self.quality is None or not self.quality.failed

    @property
    def rows_computed(self) -> int:
        return self.quality.rows if self.quality else 0

    @property
    def rows_quarantined(self) -> int:
        return self.quality.quarantined if self.quality else 0

    @property
    def rows_valid(self) -> int:
        return self.rows_computed - self.rows_quarantined

    @property
    def warnings(self) -> list[str]:
        return (
            [f"{c.expectation.name}: {c.detail}" for c in self.quality.warnings]
            if self.quality
            else []
        )


# --- sources --------------------------------------------------------------------------------


def expected_source_columns(table_key: str) -> dict[str, str]:
    """The bronze columns ingest guarantees, with their Spark types."""
    dataset = next(d for d in RAW_DATASETS if d.table_key == table_key)
    return {c.name: BRONZE_TYPES[c.kind] for c in dataset.columns}


def check_source_schema(df: DataFrame, table_name: str, expected: dict[str, str]) -> None:
    """A new column is fine (ignored); a missing or retyped one stops the run, naming it."""
    actual = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    missing = [c for c in expected if c not in actual]
    if missing:
        raise SourceSchemaError(
            f"{table_name}: required column(s) missing: {', '.join(missing)}"
            f" (found: {', '.join(actual)})"
        )
    retyped = [f"{c} is {actual[c]}, expected {t}" for c, t in expected.items() if actual[c] != t]
    if retyped:
        raise SourceSchemaError(f"{table_name}: column type changed: {'; '.join(retyped)}")


# --- what to recompute ----------------------------------------------------------------------


def changed_starts(changes: Iterable[tuple[DataFrame, Source]]) -> DataFrame:
    """(machine_id, _start): per machine, the earliest event time any source change touches."""
    starts = [
        df.select(
            ENTITY_KEY,
            (F.col(source.timestamp) if source.timestamp else F.lit(BEGINNING)).alias(START),
        )
        for df, source in changes
    ]
    union = functools.reduce(DataFrame.unionByName, starts)
    return union.groupBy(ENTITY_KEY).agg(F.min(START).alias(START))


def restrict_source(df: DataFrame, source: Source, recompute: Recompute) -> DataFrame:
    """The rows of `source` a recompute from each machine's start needs: its history before."""
    if source.timestamp is None or source.history is None:
        return df.join(F.broadcast(recompute.starts), ENTITY_KEY, "left_semi")
    # The same bound for all machines first, as a literal: Delta skips the files before it.
    ts = F.col(source.timestamp)
    df = df.where(ts >= F.lit(recompute.since - source.history))
    lower = F.col(START) - F.make_interval(secs=F.lit(source.history.total_seconds()))
    return df.join(F.broadcast(recompute.starts), ENTITY_KEY).where(ts >= lower).drop(START)


def rows_from_start(features: DataFrame, table: FeatureTable, recompute: Recompute) -> DataFrame:
    return (
        features.join(F.broadcast(recompute.starts), ENTITY_KEY)
        .where(F.col(table.timestamp) >= F.col(START))
        .drop(START)
    )


def compute_batch(
    table: FeatureTable,
    sources: dict[str, DataFrame],
    recompute: Recompute | None = None,
    end: datetime | None = None,
) -> DataFrame:
    """The table's rows to recompute (all rows when `recompute` is None), before `end`."""
    inputs = dict(sources)
    if recompute is not None:
        inputs = {
            s.table_key: restrict_source(inputs[s.table_key], s, recompute) for s in table.sources
        }
    if end is not None:
        inputs = {
            s.table_key: inputs[s.table_key].where(F.col(s.timestamp) < F.lit(end))
            if s.timestamp
            else inputs[s.table_key]
            for s in table.sources
        }
    features = table.build(inputs)
    if recompute is not None:
        features = rows_from_start(features, table, recompute)
    if end is not None:
        features = features.where(F.col(table.timestamp) < F.lit(end))
    return conform(features, table)


def conform(features: DataFrame, table: FeatureTable) -> DataFrame:
    """The declared columns, in order, with the declared types."""
    return features.select(*[F.col(c).cast(t).alias(c) for c, t in table.column_types.items()])


# --- state ------------------------------------------------------------------------------------


def stored_watermark(lake: Lakehouse, table: FeatureTable) -> dict[str, int]:
    """Per declared source, the version the table's newest successful run processed.

    The watermark table is a log, one row per run and source (every run stores all of
    its table's sources); the newest row of each source counts.
    """
    if not lake.exists("feature_watermarks"):
        return {}
    rows = (
        lake.read("feature_watermarks")
        .where(
            (F.col("feature_table") == table.table_key)
            & F.col("source_table").isin(list(table.source_keys))
        )
        .groupBy("source_table")
        .agg(F.max_by("source_version", "updated_at").alias("version"))
        .collect()
    )
    return {r["source_table"]: int(r["version"]) for r in rows}


def declared_schema_matches(lake: Lakehouse, table: FeatureTable) -> bool:
    fields = lake.read(table.table_key).schema.fields
    actual = [(f.name, f.dataType.simpleString()) for f in fields]
    return actual == list(table.column_types.items())


# --- the run --------------------------------------------------------------------------------


def plan_incremental(
    lake: Lakehouse, table: FeatureTable, versions: dict[str, int]
) -> tuple[str, str, Recompute | None]:
    """(mode, reason, rows to recompute) for a run without an explicit range."""
    if not lake.exists(table.table_key):
        return "full", "the table does not exist yet", None
    if not declared_schema_matches(lake, table):
        return "full", "the table's schema differs from its declaration", None
    watermark = stored_watermark(lake, table)
    if set(watermark) != set(versions):
        return "full", "no watermark for every source", None
    if any(watermark[k] > v for k, v in versions.items()):
        return "full", "a source is older than the watermark (recreated?)", None
    changed = [(k, s) for k, s in _sources(table) if watermark[k] < versions[k]]
    if not changed:
        return "up to date", "no source changed since the last run", None
    try:
        feeds = [(lake.changes(k, watermark[k], versions[k]), s) for k, s in changed]
        # Collected (one row per machine): the batch and the MERGE both use it, and the
        # earliest start bounds what they read.
        starts = changed_starts(feeds).collect()
    except AnalysisException as exc:
        log.warning("change data feed unavailable (%s); recomputing everything", exc)
        return "full", "the change data feed is unavailable", None
    reason = f"{', '.join(k for k, _ in changed)} changed"
    if not starts:
        # A commit without data (e.g. a compaction): move the watermark past it.
        return NO_ROWS_CHANGED, f"{reason}, but no rows did (e.g. a compaction)", None
    since = min(row[START] for row in starts)
    recompute = Recompute(lake.spark.createDataFrame(starts, STARTS_SCHEMA), since)
    return "incremental", f"{reason}: {len(starts)} machine(s) from {since}", recompute


def _sources(table: FeatureTable) -> list[tuple[str, Source]]:
    return [(s.table_key, s) for s in table.sources]


def run_feature_table(
    lake: Lakehouse,
    table: FeatureTable,
    *,
    full: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime,
) -> FeatureRun:
    """Computes, checks and publishes one table; `record_runs` stores the outcome."""
    settings = lake.settings
    name = lake.name(table.table_key)
    versions = {key: lake.version(key) for key, _ in _sources(table)}
    sources = {key: lake.read(key, version=v) for key, v in versions.items()}
    for key, df in sources.items():
        check_source_schema(df, lake.name(key), expected_source_columns(key))

    recompute = None
    if start is not None or end is not None:
        if full:
            raise FeaturehouseError("--full recomputes everything: it takes no --start/--end")
        mode, reason = "backfill", f"range [{start or 'beginning'}, {end or 'now'})"
        if start is not None:
            recompute = Recompute(
                _all_machines(sources, table).withColumn(START, F.lit(start)), start
            )
    elif full:
        mode, reason = "full", "requested"
    else:
        mode, reason, recompute = plan_incremental(lake, table, versions)
    if mode in ("up to date", NO_ROWS_CHANGED):
        log.info("%s: %s (%s)", name, mode, reason)
        return FeatureRun(table.table_key, name, mode, reason, versions)

    # Write-audit-publish: the batch is computed once into staging, checked, then published.
    staged = lake.stage(compute_batch(table, sources, recompute, end), table.table_key)
    batch = with_reasons(staged, table.all_expectations)
    max_age = settings.quality.max_staleness_hours
    quality = check_batch(
        batch,
        table.all_expectations,
        now=now,
        max_age=timedelta(hours=max_age) if max_age else None,
    )
    if quality.quarantined:
        _quarantine(lake, table, batch)
    if quality.failed:
        log.error("%s: not published: %s", name, _describe(quality.failed))
        return FeatureRun(table.table_key, name, mode, reason, versions, quality)

    valid = batch.where(F.col(REASON).isNull()).drop(REASON)
    inserted, updated = _publish(
        lake, table, valid, quality.rows - quality.quarantined, mode, recompute
    )
    _maintain_layout(lake, table)
    run = FeatureRun(table.table_key, name, mode, reason, versions, quality, inserted, updated)
    log.info(
        "%s: %s (%s): %d rows computed = %d valid (%d new, %d changed) + %d quarantined",
        name, mode, reason, run.rows_computed, run.rows_valid, inserted, updated,
        run.rows_quarantined,
    )  # fmt: skip
    for warning in run.warnings:
        log.warning("%s: expectation not met: %s", name, warning)
    return run


def _describe(checks: list[CheckResult]) -> str:
    return "; ".join(f"{c.expectation.name}: {c.detail}" for c in checks)


def _all_machines(sources: dict[str, DataFrame], table: FeatureTable) -> DataFrame:
    machines = [sources[s.table_key].select(ENTITY_KEY) for s in table.sources]
    return functools.reduce(DataFrame.unionByName, machines).distinct()


def _quarantine(lake: Lakehouse, table: FeatureTable, batch: DataFrame) -> None:
    bad = batch.where(F.col(REASON).isNotNull())
    rows = bad.select(
        F.lit(table.table_key).alias("dataset"),
        F.lit(",".join(lake.name(k) for k in table.source_keys)).alias("source_file"),
        F.to_json(F.struct(*table.columns)).alias("record"),
        F.col(REASON).alias("reason"),
        F.current_timestamp().alias("ingested_at"),
    )
    lake.merge(rows, "quarantine", QUARANTINE_KEYS)


def record_runs(lake: Lakehouse, runs: list[FeatureRun], run_id: str, now: datetime) -> None:
    """One commit of every run's quality results, one of the published runs' watermarks."""
    checks = [
        (run_id, run.table, c.expectation.name, c.expectation.kind, c.expectation.severity,
         c.status, c.failed_rows, c.total_rows, c.detail, now)
        for run in runs if run.quality for c in run.quality.results
    ]  # fmt: skip
    if checks:
        schema = (
            "run_id string, table_name string, expectation string, kind string,"
            " severity string, status string, failed_rows bigint, total_rows bigint,"
            " detail string, checked_at timestamp"
        )
        lake.append(lake.spark.createDataFrame(checks, schema), "data_quality")
    # A backfill leaves the watermark alone: it does not process the changes after it.
    watermarks = [
        (run.table_key, source, version, run_id, now)
        for run in runs if run.published and run.mode in ("full", "incremental", NO_ROWS_CHANGED)
        for source, version in run.source_versions.items()
    ]  # fmt: skip
    if watermarks:
        schema = (
            "feature_table string, source_table string, source_version bigint,"
            " run_id string, updated_at timestamp"
        )
        lake.append(lake.spark.createDataFrame(watermarks, schema), "feature_watermarks")


def _publish(
    lake: Lakehouse,
    table: FeatureTable,
    valid: DataFrame,
    valid_rows: int,
    mode: str,
    recompute: Recompute | None,
) -> tuple[int, int]:
    """(rows inserted, rows updated); a full build replaces every row."""
    key = table.table_key
    exists = lake.exists(key)
    if exists and mode == "full" and not declared_schema_matches(lake, table):
        _create(lake, table, replace=True)
    elif not exists:
        _create(lake, table)
    if mode == "full" or not exists:
        lake.insert(valid, key, overwrite=exists)
        if exists:
            lake.cluster_by(key, table.cluster_by)
        return valid_rows, 0
    # A Column, not SQL text: the datetime then converts as it did when collected.
    target_filter = F.col(f"t.{table.timestamp}") >= F.lit(recompute.since) if recompute else None
    result = lake.merge(
        valid, key, table.row_key, update=table.feature_names, target_filter=target_filter
    )
    return result.inserted, result.updated


def _create(lake: Lakehouse, table: FeatureTable, *, replace: bool = False) -> None:
    lake.create_table(
        table.table_key,
        table.schema_ddl(),
        comment=table.description,
        cluster_by=table.cluster_by,
        replace=replace,
    )


def _maintain_layout(lake: Lakehouse, table: FeatureTable) -> None:
    layout = lake.settings.layout
    if layout.optimize:
        lake.optimize(table.table_key)
    if layout.vacuum:
        lake.vacuum(table.table_key, layout.vacuum_retention_hours)


def build_feature_tables(
    lake: Lakehouse,
    tables: Sequence[FeatureTable] = FEATURE_TABLES,
    *,
    full: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> list[FeatureRun]:
    """Runs every table (one failing its checks does not stop the others), records the
    quality results and watermarks, then fails if any table was not published."""
    run_id = uuid.uuid4().hex
    now = now or datetime.now(UTC).replace(tzinfo=None)
    runs = [run_feature_table(lake, t, full=full, start=start, end=end, now=now) for t in tables]
    record_runs(lake, runs, run_id, now)
    failed = [run for run in runs if not run.published]
    if failed:
        raise DataQualityError(
            "; ".join(f"{run.table}: {_describe(run.quality.failed)}" for run in failed)
            + f" (not published; results in {lake.name('data_quality')}, run {run_id})"
        )
    return runs
