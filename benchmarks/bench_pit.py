"""Benchmark of the point-in-time join: this engine, Feast's Spark offline store, DuckDB's ASOF JOIN.

    python -m benchmarks.bench_pit                       # quick: 100k entities x 1M features x 1 table
    python -m benchmarks.bench_pit --entities 1000000 --features 10000000 --feast-max-features 1000000
    python -m benchmarks.bench_pit --full                # 100k and 1M entities x 1M and 10M features x 3 tables

Generated data (seeded, reused across runs from --data-dir): an entity frame
(row_id, entity_id, event_timestamp) over --keys keys (default 10,000, like a fleet of
machines: a bigger frame means more timestamps per key), 5% of its rows on keys without
any feature row, and feature tables (entity_id, event_timestamp, three features with a few
nulls) with unique (key, timestamp) spread over 90 days. All are plain Parquet with
microsecond timestamps, read by Spark, Feast (SparkSource on the same folders) and DuckDB.

Each engine computes the same checksum over (row id, feature values) of its output, so a
match means the same rows with the same features. Times include reading the Parquet
files and the checksum aggregation; Spark's runs are on one local session with the
settings printed at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession

from featurehouse.config import load_settings
from featurehouse.spark import get_spark
from featurehouse.store.pit import FeatureLookup, point_in_time_join

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
DEFAULT_KEYS = 10_000  # e.g. a fleet of machines: more entity rows means more timestamps per key
KEYLESS_SHARE = 0.05  # entity rows whose key has no feature rows
NULL_SHARE = 0.02  # feature values that are null
MAX_TASKS = 10_000  # per stage, read back from the status store
HOT_KEY = 0  # with --hot-share, the key that holds that share of every table's rows
P = 2_147_483_647  # checksum modulus (2^31 - 1): every product stays inside a bigint


# ---------------------------------------------------------------------------------------
# Data


def feature_names(table: int) -> list[str]:
    return [f"t{table}_f0", f"t{table}_f1", f"t{table}_f2"]


def generate(
    spark: SparkSession,
    data_dir: Path,
    entities: int,
    features: int,
    tables: int,
    keys: int,
    hot: float = 0.0,
) -> dict:
    """Parquet folders for one size (made once, then reused): entities and `tables` tables.
    With `hot` > 0, key HOT_KEY holds that share of the rows of each (skew)."""
    keys = max(1, min(keys, features))
    suffix = f"_hot{hot:g}" if hot else ""
    entity_dir = data_dir / f"entities_k{keys}_n{entities}{suffix}"
    span_us = int(SPAN.total_seconds() * 1e6)
    if not (entity_dir / "_SUCCESS").exists():
        uniform = F.floor(F.rand(11) * keys / (1 - KEYLESS_SHARE)).cast("long")
        spark.range(entities).select(
            F.col("id").alias("row_id"),
            F.when(F.rand(13) < hot, F.lit(HOT_KEY)).otherwise(uniform).alias("entity_id"),
            F.timestamp_micros(F.lit(_us(T0)) + (F.rand(12) * span_us).cast("long")).alias(
                "event_timestamp"
            ),
        ).write.mode("overwrite").parquet(str(entity_dir))
    table_dirs = []
    for t in range(tables):
        table_dir = data_dir / f"features_k{keys}_n{features}_t{t}{suffix}"
        table_dirs.append(table_dir)
        if (table_dir / "_SUCCESS").exists():
            continue
        slots = math.ceil(features / keys)  # rows per key; one per time slot, so unique
        slot_us = int(SPAN.total_seconds() * 1e6) // slots
        f0, f1, f2 = feature_names(t)
        seed = 100 + t
        is_hot = F.rand(seed + 6) < hot
        spread = F.col("id") * (span_us // features)  # unique per row, over the whole span
        slotted = (F.col("id") / keys).cast("long") * slot_us + (F.rand(seed) * (slot_us - 1)).cast(
            "long"
        )
        spark.range(features).select(
            F.when(is_hot, F.lit(HOT_KEY)).otherwise(F.col("id") % keys).alias("entity_id"),
            F.timestamp_micros(F.lit(_us(T0)) + F.when(is_hot, spread).otherwise(slotted)).alias(
                "event_timestamp"
            ),
            F.when(F.rand(seed + 1) >= NULL_SHARE, F.rand(seed + 2)).alias(f0),
            F.when(F.rand(seed + 3) >= NULL_SHARE, (F.rand(seed + 4) * 1e6).cast("long")).alias(f1),
            F.rand(seed + 5).alias(f2),
        ).write.mode("overwrite").parquet(str(table_dir))
    return {"entities": entity_dir, "tables": table_dirs, "keys": keys}


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


# ---------------------------------------------------------------------------------------
# Checksums: the same integer arithmetic in Spark SQL and DuckDB


def checksum_exprs(tables: int, row_id: str = "row_id") -> list[str]:
    """SQL expressions (valid in Spark and DuckDB) of: the row count, the sum over rows of a
    hash of the row id and every feature value (a null distinct from every value; every
    step kept below 2^31, so no sum overflows), and the number of null features."""
    doubles = [n for t in range(tables) for n in feature_names(t) if not n.endswith("f1")]
    longs = [n for t in range(tables) for n in feature_names(t) if n.endswith("f1")]
    h = f"(({row_id}) % {P})"
    for col in doubles + longs:
        value = f"CAST(FLOOR({col} * 1000000) AS BIGINT)" if col in doubles else col
        term = f"COALESCE(((({value}) % {P}) + {P}) % {P}, {P})"
        h = f"(({h} * 1000003 + {term}) % {P})"
    nulls = " + ".join(f"CASE WHEN {c} IS NULL THEN 1 ELSE 0 END" for c in doubles + longs)
    return [
        "COUNT(*) AS row_count",
        f"SUM({h}) AS checksum",
        f"SUM({nulls}) AS null_features",
    ]


def spark_checksum(df: DataFrame, tables: int) -> dict:
    row = df.selectExpr(*checksum_exprs(tables)).first()
    return {k: int(row[k] or 0) for k in ("row_count", "checksum", "null_features")}


# ---------------------------------------------------------------------------------------
# The three runs


def run_engine(spark: SparkSession, data: dict, tables: int, ttl: timedelta) -> dict:
    entities = spark.read.parquet(str(data["entities"]))
    lookups = [
        FeatureLookup(
            spark.read.parquet(str(table_dir)),
            feature_names(t),
            "entity_id",
            "event_timestamp",
            lookback_window=ttl,
        )
        for t, table_dir in enumerate(data["tables"])
    ]
    joined = point_in_time_join(entities, lookups)
    return spark_checksum(joined, tables)


def run_feast(
    spark: SparkSession, data: dict, tables: int, ttl: timedelta, store_dir: Path
) -> dict:
    from feast import Entity, FeatureStore, FeatureView, Field, RepoConfig, ValueType
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from feast.types import Float64, Int64

    from featurehouse.store.feast_store import _feast_spark_settings

    store_dir.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project="bench_pit",
        provider="local",
        registry=str(store_dir / "registry.db"),
        online_store={"type": "sqlite", "path": str(store_dir / "online.db")},
        offline_store={"type": "spark", "spark_conf": {}},
        entity_key_serialization_version=3,
        repo_path=store_dir,
    )
    entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    views = []
    for t, table_dir in enumerate(data["tables"]):
        f0, f1, f2 = feature_names(t)
        views.append(
            FeatureView(
                name=f"table_{t}",
                entities=[entity],
                ttl=ttl,
                schema=[
                    Field(name="entity_id", dtype=Int64),
                    Field(name=f0, dtype=Float64),
                    Field(name=f1, dtype=Int64),
                    Field(name=f2, dtype=Float64),
                ],
                source=SparkSource(
                    name=f"table_{t}_source",
                    path=str(table_dir),
                    file_format="parquet",
                    timestamp_field="event_timestamp",
                ),
            )
        )
    store = FeatureStore(config=config)
    with _feast_spark_settings(spark):
        store.apply([entity, *views])
    entities = spark.read.parquet(str(data["entities"]))
    refs = [f"table_{t}:{name}" for t in range(tables) for name in feature_names(t)]
    with _feast_spark_settings(spark):
        joined = store.get_historical_features(entity_df=entities, features=refs).to_spark_df()
    return spark_checksum(joined, tables)


def run_duckdb(data: dict, tables: int, ttl: timedelta) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    joins, selects = [], []
    for t, table_dir in enumerate(data["tables"]):
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{table_dir}/*.parquet') f{t} "
            f"ON e.entity_id = f{t}.entity_id AND e.event_timestamp >= f{t}.event_timestamp"
        )
        fresh = f"f{t}.event_timestamp >= e.event_timestamp - INTERVAL {int(ttl.total_seconds())} SECOND"
        selects += [f"CASE WHEN {fresh} THEN f{t}.{n} END AS {n}" for n in feature_names(t)]
    query = f"""
        WITH joined AS (
            SELECT e.row_id, {", ".join(selects)}
            FROM read_parquet('{data["entities"]}/*.parquet') e
            {" ".join(joins)}
        )
        SELECT {", ".join(checksum_exprs(tables))} FROM joined
    """
    row_count, checksum, nulls = con.execute(query).fetchone()
    con.close()
    return {"row_count": int(row_count), "checksum": int(checksum), "null_features": int(nulls)}


# ---------------------------------------------------------------------------------------
# Timing and Spark stage metrics


@dataclass
class Measurement:
    engine: str
    seconds: float | None
    result: dict | None = None
    skipped: str | None = None
    stages: list[dict] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)


@contextlib.contextmanager
def job_group(spark: SparkSession, name: str, timeout: float | None) -> Iterator[None]:
    """Runs Spark work under a job group, cancelled after `timeout` seconds."""
    sc = spark.sparkContext
    sc.setJobGroup(name, name, interruptOnCancel=True)
    timer = None
    if timeout:
        timer = threading.Timer(timeout, lambda: sc.cancelJobGroup(name))
        timer.start()
    try:
        yield
    finally:
        if timer:
            timer.cancel()
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def stage_metrics(spark: SparkSession, group: str) -> list[dict]:
    """Per stage of the group's jobs: wall time, summed task time, rows and bytes moved.

    Local sessions run without the UI, but the status store behind it is still kept.
    """
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    store = sc._jsc.sc().statusStore()
    stages = []
    for job_id in sorted(tracker.getJobIdsForGroup(group)):
        job = tracker.getJobInfo(job_id)
        for stage_id in sorted(job.stageIds) if job else []:
            try:
                data = store.lastStageAttempt(stage_id)
            except Exception:  # a stage skipped (its shuffle output reused) has no attempt
                continue
            submitted, completed = data.submissionTime(), data.completionTime()
            if submitted.isEmpty() or completed.isEmpty():
                continue
            stages.append(
                {
                    "job": job_id,
                    "stage": stage_id,
                    "tasks": data.numTasks(),
                    "wall_s": (completed.get().getTime() - submitted.get().getTime()) / 1000,
                    "task_s": data.executorRunTime() / 1000,
                    "input_rows": data.inputRecords(),
                    "shuffle_read_mb": data.shuffleReadBytes() / 1e6,
                    "shuffle_write_rows": data.shuffleWriteRecords(),
                    "shuffle_write_mb": data.shuffleWriteBytes() / 1e6,
                    "spill_mb": data.diskBytesSpilled() / 1e6,
                    "max_task_s": longest_task(store, stage_id, data.attemptId()),
                    "name": data.name().split(" at ")[0],
                }
            )
    return stages


def longest_task(store, stage_id: int, attempt: int) -> float:
    """The run time of the stage's longest task: with one hot key, the task that holds it."""
    tasks = store.taskList(stage_id, attempt, MAX_TASKS)
    times = [tasks.apply(i).taskMetrics() for i in range(tasks.size())]
    return max((t.get().executorRunTime() for t in times if t.isDefined()), default=0) / 1000


def measure_spark(
    spark: SparkSession, name: str, work: Callable[[], dict], timeout: float | None
) -> Measurement:
    group = f"{name}-{time.monotonic_ns()}"
    start = time.perf_counter()
    try:
        with job_group(spark, group, timeout):
            result = work()
    except Exception as exc:
        if timeout and time.perf_counter() - start >= timeout:
            return Measurement(name, None, skipped=f"timed out after {timeout:.0f} s")
        raise RuntimeError(f"{name} failed") from exc
    seconds = time.perf_counter() - start
    return Measurement(name, seconds, result, stages=stage_metrics(spark, group))


def measure_local(name: str, work: Callable[[], dict]) -> Measurement:
    start = time.perf_counter()
    result = work()
    return Measurement(name, time.perf_counter() - start, result)


def fastest(attempts: list[Measurement]) -> Measurement:
    best = min(attempts, key=lambda m: m.seconds)
    best.attempts = [m.seconds for m in attempts]
    return best


def engine_plan(spark: SparkSession, data: dict, tables: int, ttl: timedelta) -> str:
    entities = spark.read.parquet(str(data["entities"]))
    lookups = [
        FeatureLookup(
            spark.read.parquet(str(d)),
            feature_names(t),
            "entity_id",
            "event_timestamp",
            lookback_window=ttl,
        )
        for t, d in enumerate(data["tables"])
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        point_in_time_join(entities, lookups).explain("formatted")
    return out.getvalue()


# ---------------------------------------------------------------------------------------
# Main


def add_hot_share(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--hot-share",
        type=float,
        nargs="+",
        default=[0.0],
        help=f"share of {what} (skew; 0 is uniform); each runs in turn",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[100_000])
    parser.add_argument(
        "--features", type=int, nargs="+", default=[1_000_000], help="rows per feature table"
    )
    parser.add_argument("--tables", type=int, default=1, help="feature tables, one lookup each")
    add_hot_share(parser, "every table's rows on one key")
    parser.add_argument(
        "--full", action="store_true", help="100k and 1M entities x 1M and 10M features x 3 tables"
    )
    parser.add_argument("--ttl-days", type=float, default=7.0)
    parser.add_argument(
        "--keys",
        type=int,
        default=DEFAULT_KEYS,
        help="distinct entity keys; rows per key (the fan-out Feast's range join pays for) grow with size",
    )
    parser.add_argument(
        "--feast-max-features",
        type=int,
        default=1_000_000,
        help="skip Feast above this many rows per table",
    )
    parser.add_argument(
        "--feast-timeout", type=float, default=900.0, help="seconds before a Feast run is cancelled"
    )
    parser.add_argument("--no-feast", action="store_true")
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument(
        "--repeat", type=int, default=2, help="engine runs per size; the fastest counts"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "featurehouse-bench-pit"
    )
    parser.add_argument(
        "--plan", action="store_true", help="print the engine's formatted physical plan"
    )
    args = parser.parse_args(argv)
    if args.full:
        args.entities, args.features, args.tables = [100_000, 1_000_000], [1_000_000, 10_000_000], 3
    return args


def start_spark(args: argparse.Namespace) -> SparkSession:
    root = args.data_dir / "lakehouse"
    settings = load_settings(
        "local",
        overrides={
            "storage": {"root": str(root), "raw_dir": str(root / "raw")},
            "feast": {"store_dir": str(root / "feast")},
            "spark": {
                "shuffle_partitions": args.shuffle_partitions,
                "conf": {
                    "spark.driver.memory": args.driver_memory,
                    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
                    "spark.sql.adaptive.enabled": "true",
                },
            },
        },
    )
    return get_spark(settings)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(seconds) on log(rows): time grows as rows^slope."""
    points = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y and y > 0]
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    spark = start_spark(args)
    ttl = timedelta(days=args.ttl_days)
    print(
        f"Spark {spark.version} {spark.conf.get('spark.master')}, shuffle partitions "
        f"{spark.conf.get('spark.sql.shuffle.partitions')}, AQE {spark.conf.get('spark.sql.adaptive.enabled')}, "
        f"driver memory {args.driver_memory}; ttl {ttl}; data in {args.data_dir}"
    )

    # Warm the JVM (code generation, JIT) on a small size before anything is timed.
    warm = generate(spark, args.data_dir, 10_000, 100_000, 1, 1_000)
    run_engine(spark, warm, 1, ttl)

    runs = []
    sizes = [(n, f, h) for h in args.hot_share for n in args.entities for f in args.features]
    for n_entities, n_features, hot in sizes:
        started = time.perf_counter()
        data = generate(spark, args.data_dir, n_entities, n_features, args.tables, args.keys, hot)
        size = {
            "entities": n_entities,
            "features_per_table": n_features,
            "tables": args.tables,
            "hot_share": hot,
        }
        print(
            f"\n== {n_entities:,} entities x {args.tables} x {n_features:,} feature rows "
            f"({data['keys']:,} keys{f', key {HOT_KEY} holding {hot:.0%} of rows' if hot else ''};"
            f" data ready in {time.perf_counter() - started:.1f} s)"
        )
        if args.plan:
            print(engine_plan(spark, data, args.tables, ttl))
        attempts = [
            measure_spark(
                spark, "engine", lambda d=data: run_engine(spark, d, args.tables, ttl), None
            )
            for _ in range(args.repeat)
        ]
        measurements = [fastest(attempts)]
        if args.no_duckdb:
            measurements.append(Measurement("duckdb", None, skipped="--no-duckdb"))
        else:
            duckdb_attempts = [
                measure_local("duckdb", lambda d=data: run_duckdb(d, args.tables, ttl))
                for _ in range(args.repeat)
            ]
            measurements.append(fastest(duckdb_attempts))
        if args.no_feast:
            measurements.append(Measurement("feast", None, skipped="--no-feast"))
        elif n_features > args.feast_max_features:
            measurements.append(
                Measurement(
                    "feast",
                    None,
                    skipped=f"above --feast-max-features {args.feast_max_features:,}",
                )
            )
        else:
            store_dir = (
                args.data_dir
                / "feast"
                / f"{n_entities}_{n_features}_{args.tables}_{time.time_ns()}"
            )
            measurements.append(
                measure_spark(
                    spark,
                    "feast",
                    lambda d=data, s=store_dir: run_feast(spark, d, args.tables, ttl, s),
                    args.feast_timeout,
                )
            )
        run = report(size, measurements)
        runs.append(run)

    summary = summarize(runs)
    summary["skew"] = skew_readings(runs)
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "spark": spark.version},
        "settings": {
            "master": spark.conf.get("spark.master"),
            "shuffle_partitions": args.shuffle_partitions,
            "driver_memory": args.driver_memory,
            "ttl_days": args.ttl_days,
            "keys": args.keys,
        },
        "runs": runs,
        "summary": summary,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"bench_pit_{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nresults: {path}")
    return out


def report(size: dict, measurements: list[Measurement]) -> dict:
    by_name = {m.engine: m for m in measurements}
    engine = by_name["engine"]
    for m in measurements:
        if m.seconds is None:
            print(f"  {m.engine:7s}  skipped: {m.skipped}")
            continue
        same = (
            ""
            if m is engine
            else ("  checksum MATCH" if m.result == engine.result else "  checksum DIFFERS")
        )
        tries = ""
        if len(m.attempts) > 1:
            tries = "  (runs: " + ", ".join(f"{t:.2f}" for t in m.attempts) + ")"
        print(f"  {m.engine:7s} {m.seconds:8.2f} s   {m.result}{same}{tries}")
    ratios = {}
    for other in ("feast", "duckdb"):
        m = by_name.get(other)
        if m and m.seconds:
            ratios[f"{other}_over_engine"] = m.seconds / engine.seconds
    if ratios:
        print("  ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    if engine.stages:
        print_stages("engine", engine.stages)
        skew = longest_task_share(engine.stages)
        print(
            f"  longest task: {skew['longest_task_s']:.2f} s, {skew['share']:.0%} of its stage's"
            f" {skew['stage_task_s']:.2f} s of task time ({skew['tasks']} tasks)"
        )
    matches = {
        m.engine: m.result == engine.result
        for m in measurements
        if m is not engine and m.result is not None
    }
    return {
        **size,
        "seconds": {m.engine: m.seconds for m in measurements},
        "attempts": {m.engine: m.attempts for m in measurements if m.attempts},
        "skipped": {m.engine: m.skipped for m in measurements if m.skipped},
        "results": {m.engine: m.result for m in measurements},
        "checksum_match": matches,
        "ratios": ratios,
        "stages": {m.engine: m.stages for m in measurements if m.stages},
        "longest_task": longest_task_share(engine.stages) if engine.stages else None,
    }


def print_stages(engine: str, stages: list[dict]) -> None:
    print(
        f"  {engine} stages (wall s / task s / longest task s / input rows / shuffle write"
        " rows, MB / spill MB):"
    )
    for s in stages:
        print(
            f"    job {s['job']} stage {s['stage']:3d} {s['tasks']:3d} tasks {s['wall_s']:7.2f} "
            f"{s['task_s']:7.2f} {s['max_task_s']:7.2f} {s['input_rows']:>11,} "
            f"{s['shuffle_write_rows']:>11,} {s['shuffle_write_mb']:8.1f} {s['spill_mb']:7.1f}"
            f"  {s['name']}"
        )


def longest_task_share(stages: list[dict]) -> dict:
    """The longest task of the stage with the most task time, and its share of that time:
    on a cluster of many cores that task bounds the stage's wall time."""
    heaviest = max(stages, key=lambda s: s["task_s"])
    return {
        "longest_task_s": heaviest["max_task_s"],
        "stage_task_s": heaviest["task_s"],
        "share": heaviest["max_task_s"] / heaviest["task_s"] if heaviest["task_s"] else 0.0,
        "tasks": heaviest["tasks"],
    }


def summarize(runs: list[dict]) -> dict:
    """Growth exponents (log-log slopes of seconds) per engine: on all input rows, on feature
    rows with the entity rows fixed, and on entity rows with the feature rows fixed."""
    summary: dict[str, Any] = {}
    for name in ("engine", "feast", "duckdb"):
        timed = [r for r in runs if r["seconds"].get(name)]
        exponents: dict[str, float | None] = {
            "all input rows": slope(
                [
                    (r["entities"] + r["tables"] * r["features_per_table"], r["seconds"][name])
                    for r in timed
                ]
            )
        }
        for n in sorted({r["entities"] for r in timed}):
            points = [
                (r["features_per_table"], r["seconds"][name]) for r in timed if r["entities"] == n
            ]
            exponents[f"feature rows, {n:,} entity rows"] = slope(points)
        for n in sorted({r["features_per_table"] for r in timed}):
            points = [
                (r["entities"], r["seconds"][name]) for r in timed if r["features_per_table"] == n
            ]
            exponents[f"entity rows, {n:,} feature rows"] = slope(points)
        summary[name] = {k: v for k, v in exponents.items() if v is not None}
    if len(runs) > 1:
        print("\ngrowth exponents (log-log slope of seconds; 1.0 is linear):")
        for name, exponents in summary.items():
            text = "; ".join(f"{k}: {v:.2f}" for k, v in exponents.items()) or "n/a"
            print(f"  {name:7s} {text}")
    return summary


def skew_readings(runs: list[dict]) -> list[dict]:
    """Each skewed run beside the uniform run of the same size: the engine's time ratio, and
    the longest task's share of its stage in both."""
    readings = []
    for hot in (r for r in runs if r["hot_share"]):
        size = ("entities", "features_per_table", "tables")
        uniform = next(
            (r for r in runs if not r["hot_share"] and all(r[k] == hot[k] for k in size)), None
        )
        if uniform is None or not hot["longest_task"] or not uniform["longest_task"]:
            continue
        reading = {
            **{k: hot[k] for k in (*size, "hot_share")},
            "engine_s": {"uniform": uniform["seconds"]["engine"], "hot": hot["seconds"]["engine"]},
            "longest_task_share": {
                "uniform": uniform["longest_task"]["share"],
                "hot": hot["longest_task"]["share"],
            },
        }
        reading["slowdown"] = reading["engine_s"]["hot"] / reading["engine_s"]["uniform"]
        readings.append(reading)
        print(
            f"\nskew, {hot['entities']:,} x {hot['features_per_table']:,}, one key holding"
            f" {hot['hot_share']:.0%}: engine {reading['engine_s']['uniform']:.2f} s uniform,"
            f" {reading['engine_s']['hot']:.2f} s skewed ({reading['slowdown']:.2f}x); longest"
            f" task {reading['longest_task_share']['uniform']:.0%} of its stage uniform,"
            f" {reading['longest_task_share']['hot']:.0%} skewed"
        )
    return readings


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
