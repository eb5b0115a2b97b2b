"""The feature job: bronze tables -> checked, incremental, idempotent Delta feature tables.

One run of one feature table:

1. Pin every source to its current Delta version and check its columns (a missing or
   retyped column stops the run before anything is written).
2. Decide what to compute. `incremental` (the default) reads the sources' change data
   feed since the versions the last run stored (the watermark) and recomputes, per
   entity, every feature row from the earliest changed event on, reading each source
   `history` further back so boundary windows are exact. A source that lacks some of the
   table's keys (a calendar, weather by region, attributes of a store) changes every
   entity it may touch: all items of a changed store, all entities for a calendar. Late and out-of-order events
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
from datetime import UTC, datetime

import pyspark.sql.functions as F
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame

from featurehouse.errors import DataQualityError, FeaturehouseError, SourceSchemaError
from featurehouse.features.quality import (
    REASON,
    BatchQuality,
    CheckResult,
    check_batch,
    with_reasons,
)
from featurehouse.ingest import QUARANTINE_KEYS
from featurehouse.io import Lakehouse
from featurehouse.io.lakehouse import sql_string, sql_timestamp
from featurehouse.usecase import FeatureTable, Source, UseCase

log = logging.getLogger(__name__)

# Older than any event: the start of an entity whose whole history must be recomputed.
BEGINNING = datetime(1900, 1, 1)
START = "_start"
NO_ROWS_CHANGED = "no rows changed"


@dataclass(frozen=True)
class Recompute:
    """The rows a run recomputes: per entity (the table's keys), those from its start on."""

    starts: DataFrame  # (keys..., _start)
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


def shared_keys(table: FeatureTable, source: Source) -> list[str]:
    """The table's keys the source has: all of them, some (a store's attributes for a
    (store, item) table), or none (a calendar)."""
    return [k for k in table.keys if k in source.dataset.bronze_columns]


def all_entities(table: FeatureTable, sources: dict[str, DataFrame]) -> DataFrame:
    """Every entity (the table's keys) the sources that carry all keys know."""
    keyed = [
        sources[s.name].select(*table.keys)
        for s in table.sources
        if shared_keys(table, s) == list(table.keys)
    ]
    if not keyed:
        raise FeaturehouseError(f"{table.name}: no source carries all of its keys {table.keys}")
    return functools.reduce(DataFrame.unionByName, keyed).distinct()


# --- what to recompute ----------------------------------------------------------------------


def changed_starts(
    table: FeatureTable, changes: Iterable[tuple[DataFrame, Source]], entities: DataFrame
) -> DataFrame:
    """(keys..., _start): per entity, the earliest event time any source change touches.

    A change in a source without all of the table's keys reaches every entity that shares
    the keys it has (`entities` lists them all); any change in a table computed across
    entities reaches every entity.
    """
    starts = []
    for df, source in changes:
        start = F.lit(BEGINNING)
        if source.timestamp:
            lead = F.make_interval(secs=F.lit(source.lead.total_seconds()))
            start = F.col(source.timestamp) - lead
        present = shared_keys(table, source)
        if present == list(table.keys):
            starts.append(df.select(*table.keys, start.alias(START)))
            continue
        changed = df.groupBy(*present).agg(F.min(start).alias(START))
        reached = entities.join(changed, present) if present else entities.crossJoin(changed)
        starts.append(reached.select(*table.keys, START))
    union = functools.reduce(DataFrame.unionByName, starts)
    if table.across_entities:
        return entities.crossJoin(union.agg(F.min(START).alias(START))).where(
            F.col(START).isNotNull()
        )
    return union.groupBy(*table.keys).agg(F.min(START).alias(START))


def restrict_source(
    df: DataFrame, source: Source, table: FeatureTable, recompute: Recompute
) -> DataFrame:
    """The rows of `source` a recompute from each entity's start needs: its history before."""
    present = shared_keys(table, source)
    starts = recompute.starts
    if present != list(table.keys):
        starts = starts.groupBy(*present).agg(F.min(START).alias(START))
    if source.timestamp is None or source.history is None:
        if not present:
            return df
        return df.join(F.broadcast(starts), present, "left_semi")
    # The same bound for all entities first, as a literal: Delta skips the files before it.
    ts = F.col(source.timestamp)
    df = df.where(ts >= F.lit(recompute.since - source.history))
    if not present:
        return df
    lower = F.col(START) - F.make_interval(secs=F.lit(source.history.total_seconds()))
    return df.join(F.broadcast(starts), present).where(ts >= lower).drop(START)


def rows_from_start(features: DataFrame, table: FeatureTable, recompute: Recompute) -> DataFrame:
    return (
        features.join(F.broadcast(recompute.starts), list(table.keys))
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
    inputs = {s.name: sources[s.name] for s in table.sources}
    if recompute is not None:
        inputs = {
            s.name: restrict_source(inputs[s.name], s, table, recompute) for s in table.sources
        }
    if end is not None:
        inputs = {
            s.name: inputs[s.name].where(F.col(s.timestamp) < F.lit(end + s.lead))
            if s.timestamp
            else inputs[s.name]
            for s in table.sources
        }
    features = table.build(inputs)
    if recompute is not None:
        features = rows_from_start(features, table, recompute)
    if end is not None:
        features = features.where(F.col(table.timestamp) < F.lit(end))
    return conform(features, table)


def conform(features: DataFrame, table: FeatureTable) -> DataFrame:
    """The declared columns, in order, with the declared types; a transform that misses a
    declared column fails here, naming it, before anything is written."""
    missing = [c for c in table.columns if c not in features.columns]
    if missing:
        raise FeaturehouseError(
            f"feature table {table.name}: its transform does not produce the declared"
            f" column(s) {', '.join(missing)} (it produces {', '.join(features.columns)})"
        )
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
            (F.col("feature_table") == table.name) & F.col("source_table").isin(table.source_names)
        )
        .groupBy("source_table")
        .agg(F.max_by("source_version", "updated_at").alias("version"))
        .collect()
    )
    return {r["source_table"]: int(r["version"]) for r in rows}


def declared_schema_matches(lake: Lakehouse, table: FeatureTable) -> bool:
    fields = lake.read(table.name).schema.fields
    actual = [(f.name, f.dataType.simpleString()) for f in fields]
    return actual == list(table.column_types.items())


# --- the run --------------------------------------------------------------------------------


def plan_incremental(
    lake: Lakehouse, table: FeatureTable, versions: dict[str, int], sources: dict[str, DataFrame]
) -> tuple[str, str, Recompute | None]:
    """(mode, reason, rows to recompute) for a run without an explicit range."""
    if not lake.exists(table.name):
        return "full", "the table does not exist yet", None
    if not declared_schema_matches(lake, table):
        return "full", "the table's schema differs from its declaration", None
    watermark = stored_watermark(lake, table)
    if set(watermark) != set(versions):
        return "full", "no watermark for every source", None
    if any(watermark[k] > v for k, v in versions.items()):
        return "full", "a source is older than the watermark (recreated?)", None
    changed = [s for s in table.sources if watermark[s.name] < versions[s.name]]
    if not changed:
        return "up to date", "no source changed since the last run", None
    try:
        feeds = [(lake.changes(s.name, watermark[s.name], versions[s.name]), s) for s in changed]
        # Collected (one row per entity): the batch and the MERGE both use it, and the
        # earliest start bounds what they read.
        starts = changed_starts(table, feeds, all_entities(table, sources)).collect()
    except AnalysisException as exc:
        log.warning("change data feed unavailable (%s); recomputing everything", exc)
        return "full", "the change data feed is unavailable", None
    reason = f"{', '.join(s.name for s in changed)} changed"
    if not starts:
        # A commit without data (e.g. a compaction): move the watermark past it.
        return NO_ROWS_CHANGED, f"{reason}, but no rows did (e.g. a compaction)", None
    since = min(row[START] for row in starts)
    recompute = Recompute(lake.spark.createDataFrame(starts, starts_schema(table)), since)
    return "incremental", f"{reason}: {len(starts)} entities from {since}", recompute


def starts_schema(table: FeatureTable) -> str:
    return ", ".join([*(f"{k} {t}" for k, t in table.key_types.items()), f"{START} timestamp"])


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
    name = lake.name(table.name)
    for source in table.sources:
        if not lake.exists(source.name):
            raise SourceSchemaError(
                f"{name}: source table {lake.name(source.name)} does not exist:"
                f" ingest {source.name} first"
            )
    versions = {s.name: lake.version(s.name) for s in table.sources}
    sources = {key: lake.read(key, version=v) for key, v in versions.items()}
    for source in table.sources:
        check_source_schema(
            sources[source.name], lake.name(source.name), source.dataset.bronze_columns
        )

    recompute = None
    if start is not None or end is not None:
        if full:
            raise FeaturehouseError("--full recomputes everything: it takes no --start/--end")
        mode, reason = "backfill", f"range [{start or 'beginning'}, {end or 'now'})"
        if start is not None:
            recompute = Recompute(
                all_entities(table, sources).withColumn(START, F.lit(start)), start
            )
    elif full:
        mode, reason = "full", "requested"
    else:
        mode, reason, recompute = plan_incremental(lake, table, versions, sources)
    if mode in ("up to date", NO_ROWS_CHANGED):
        log.info("%s: %s (%s)", name, mode, reason)
        return FeatureRun(table.name, name, mode, reason, versions)

    # Write-audit-publish: the batch is computed once into staging, checked, then published.
    staged = lake.stage(compute_batch(table, sources, recompute, end), table.name)
    batch = with_reasons(staged, table.all_expectations)
    quality = check_batch(
        batch, table.all_expectations, now=now, max_age=settings.quality.max_staleness
    )
    if quality.quarantined:
        _quarantine(lake, table, batch)
    if quality.failed:
        log.error("%s: not published: %s", name, _describe(quality.failed))
        return FeatureRun(table.name, name, mode, reason, versions, quality)

    valid = batch.where(F.col(REASON).isNull()).drop(REASON)
    inserted, updated = _publish(
        lake, table, valid, quality.rows - quality.quarantined, mode, recompute
    )
    _maintain_layout(lake, table)
    run = FeatureRun(table.name, name, mode, reason, versions, quality, inserted, updated)
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


def _quarantine(lake: Lakehouse, table: FeatureTable, batch: DataFrame) -> None:
    bad = batch.where(F.col(REASON).isNotNull())
    rows = bad.select(
        F.lit(table.name).alias("dataset"),
        F.lit(",".join(lake.name(k) for k in table.source_names)).alias("source_file"),
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
    key = table.name
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
    target_filter = (
        f"t.`{table.timestamp}` >= {sql_timestamp(recompute.since)}" if recompute else None
    )
    result = lake.merge(
        valid, key, table.row_key, update=table.feature_names, target_filter=target_filter
    )
    return result.inserted, result.updated


def schema_ddl(table: FeatureTable) -> str:
    """`name type [NOT NULL] COMMENT '...'` for every column, in order."""
    entity = table.entity
    columns = [(k, t, True, f"Key of the {entity.name}") for k, t in table.key_types.items()]
    columns.append((table.timestamp, "timestamp", True, "Event time (UTC)"))
    columns += [(f.name, f.dtype, False, f.description) for f in table.features]
    return ", ".join(
        f"`{name}` {dtype.upper()}{' NOT NULL' if required else ''} COMMENT {sql_string(text)}"
        for name, dtype, required, text in columns
    )


def _create(lake: Lakehouse, table: FeatureTable, *, replace: bool = False) -> None:
    lake.create_table(
        table.name,
        schema_ddl(table),
        comment=table.description,
        cluster_by=table.cluster_by,
        replace=replace,
    )


def _maintain_layout(lake: Lakehouse, table: FeatureTable) -> None:
    layout = lake.settings.layout
    if layout.optimize:
        lake.optimize(table.name)
    if layout.vacuum:
        lake.vacuum(table.name, layout.vacuum_retention_hours)


def build_feature_tables(
    lake: Lakehouse,
    tables: UseCase | Sequence[FeatureTable],
    *,
    full: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> list[FeatureRun]:
    """Runs every table (one failing its checks does not stop the others), records the
    quality results and watermarks, then fails if any table was not published."""
    if isinstance(tables, UseCase):
        tables = tables.tables
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
