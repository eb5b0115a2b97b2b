"""Benchmark of materialization into the online store: ours against stock `feast materialize`.

    python -m benchmarks.bench_materialize                   # 10,000 entities x 50 doubles
    python -m benchmarks.bench_materialize --stores sqlite --entities 100000

A Delta feature table of --entities entities (bigint key) x --rows-per-entity hourly rows x
--features double features (5% null), with a change data feed as the feature job leaves
it, is registered in Feast. Then, per online store (SQLite; Redis on a server of the
benchmark's own, or --redis HOST:PORT), on the same table in the same run:

1. stock: `FeatureStore.materialize` over all time (Feast's Spark offline store takes each
   entity's newest row, Feast converts every value to protobuf and writes);
2. ours: `materialize_online(full=True)`, fastest of --repeat, and one run split into its
   steps (Delta version, Spark + Arrow, encoding, writing), and the store alone holding
   the same rows with no Python per row (the floor of any writer into that store);
3. ours, incremental: --changed entities get a newer row, and the default run writes them
   (--repeat times, the fastest counts).

Rows/s is entities written per second (each with all its features). The two stores are
then compared: byte for byte (SQLite rows, Redis hashes), and through Feast's
`get_online_features` for a sample of entities. Goal: ours at least 20x stock.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyspark.sql.functions as F

from featurehouse.config import load_settings
from featurehouse.features.build import schema_ddl
from featurehouse.io import Lakehouse
from featurehouse.spark import get_spark
from featurehouse.store import online
from featurehouse.store.feast_store import apply_definitions, feature_store, materialize
from featurehouse.training.models import boosted_trees_regressor
from featurehouse.usecase import (
    Candidate,
    Column,
    Entity,
    Feature,
    FeatureTable,
    Label,
    RawDataset,
    Regression,
    Source,
    Spine,
    UseCase,
)

NAME = "bench_materialize"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rows-per-entity", type=int, default=3)
    parser.add_argument("--changed", type=int, default=100, help="entities of the incremental run")
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours; the fastest counts")
    parser.add_argument("--redis", help="HOST:PORT of a Redis to use (default: start one)")
    parser.add_argument("--sample", type=int, default=200, help="entities read through Feast")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "fh-bench")
    return parser.parse_args(argv)


def bench_use_case(features: int) -> UseCase:
    """One entity, one feature table of `features` doubles (the rest is what a use case
    must declare, and is not used here)."""
    entity = Entity("bench_entity", {"entity_id": "bigint"})
    readings = RawDataset(
        "readings",
        "readings_*.csv",
        (Column("entity_id", "bigint"), Column("ts", "timestamp"), Column("y", "double")),
        keys=("entity_id", "ts"),
        time="ts",
    )
    table = FeatureTable(
        name="bench_features",
        view_name="bench_features",
        description="Generated doubles",
        entity=entity,
        features=tuple(Feature(f"f{i:03d}", "double", "generated") for i in range(features)),
        sources=(Source(readings),),
        build=lambda bronze: bronze["readings"],
        ttl=None,
    )
    return UseCase(
        name=NAME,
        description="The materialization benchmark",
        entity=entity,
        datasets=(readings,),
        tables=(table,),
        spine=Spine(readings, every=HOUR),
        label=Label("y_next", "sum", readings, horizon=HOUR, column="y"),
        task=Regression(prediction="y_forecast"),
        candidates=(Candidate("boosted_trees", boosted_trees_regressor),),
        model_name="bench_model",
    )


def store_settings(root: Path, name: str, kind: str, redis: str | None, db: int):
    online_store = (
        {"type": "sqlite"}
        if kind == "sqlite"
        else {"type": "redis", "connection_string": f"{redis},db={db}"}
    )
    return load_settings(
        "local",
        overrides={
            "storage": {
                "root": str(root),
                "raw_dir": str(root / "raw"),
                "staging_dir": str(root / "staging"),
            },
            "feast": {
                "store_dir": str(root / f"feast-{kind}-{name}"),
                "online_store": online_store,
            },
            "use_cases": {NAME: {}},
        },
    )


def write_table(lake: Lakehouse, table: FeatureTable, entities: int, rows_per_entity: int) -> None:
    """Hourly rows per entity, the newest at T0 + rows_per_entity - 1 hours; 5% nulls."""
    rows = lake.spark.range(entities * rows_per_entity)
    hour = (F.col("id") / entities).cast("long")
    features = [
        F.when(F.rand(2 * i) >= 0.05, F.rand(2 * i + 1) * 100).alias(f.name)
        for i, f in enumerate(table.features)
    ]
    frame = rows.select(
        (F.col("id") % entities).alias("entity_id"),
        F.timestamp_seconds(F.lit(int(T0.timestamp())) + hour * 3600).alias("event_timestamp"),
        *features,
    )
    lake.create_table(table.name, schema_ddl(table), comment="bench", cluster_by=table.cluster_by)
    lake.insert(frame, table.name)


def add_newer_rows(lake: Lakehouse, table: FeatureTable, entities: int, newest: datetime) -> None:
    """A row one hour newer than every other for `entities` entities (one commit)."""
    frame = lake.spark.range(entities).select(
        F.col("id").alias("entity_id"),
        F.lit(newest + HOUR).alias("event_timestamp"),
        *[F.rand(7 + i).alias(f.name) for i, f in enumerate(table.features)],
    )
    lake.insert(frame, table.name)


def clear_store(settings, use_case: UseCase) -> None:
    """Empty the online store (between runs of ours: each run is a first load)."""
    view = online.view_spec(settings, use_case.tables[0])
    store = online.open_store(settings)
    try:
        if isinstance(store, online.RedisOnlineStore):
            store.client.flushdb()
            return
        conn = store.connection()
        conn.execute(f'DELETE FROM "{view.sqlite_table}"')
        conn.execute(f"DELETE FROM {online.WATERMARKS}")
    finally:
        store.close()


def contents(settings, use_case: UseCase) -> dict:
    """What the view holds, as stored."""
    view = online.view_spec(settings, use_case.tables[0])
    store = online.open_store(settings)
    try:
        if isinstance(store, online.RedisOnlineStore):
            keys = [
                k
                for k in store.client.scan_iter(count=10_000)
                if not k.startswith(b"featurehouse:")
            ]
            return {k: store.client.hgetall(k) for k in keys}
        query = f'SELECT {online.SQLITE_COLUMNS} FROM "{view.sqlite_table}"'
        return {(r[0], r[1]): r[2:] for r in store.connection().execute(query)}
    finally:
        store.close()


def feast_read(settings, use_case: UseCase, entity_ids: list[int]) -> dict:
    store = feature_store(settings)
    service = store.get_feature_service(settings.feature_service(use_case.name))
    rows = [{"entity_id": i} for i in entity_ids]
    return store.get_online_features(features=service, entity_rows=rows).to_dict()


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def steps(lake: Lakehouse, settings, use_case: UseCase) -> dict[str, float]:
    """One full load of ours, step by step."""
    view = online.view_spec(settings, use_case.tables[0])
    store = online.open_store(settings)
    try:
        out = {}
        out["delta version"], (version, table_id) = timed(
            lambda: online.table_state(lake, view.table)
        )
        out["spark + arrow"], (collected, _) = timed(
            lambda: online.collect_rows(lake, view, version, None)
        )
        out["encode"], rows = timed(lambda: online.encode_rows(view, collected))
        mark = online.Watermark(version, table_id, view.fingerprint, None, "")
        out["write"], _ = timed(lambda: store.write(view, rows, mark, full=True))
        out["store alone"] = store_floor(store, view, rows)
        return out
    finally:
        store.close()


def store_floor(store, view: online.ViewSpec, rows: online.EncodedRows) -> float:
    """Seconds the store itself takes to hold the rows, with no Python per row: Redis
    handed every prepared HSET in one round trip; SQLite copying the prepared rows from a
    temporary table in one transaction (`INSERT ... SELECT`). No writer can beat it."""
    if isinstance(store, online.RedisOnlineStore):
        commands = online.redis_hsets(view, rows)
        store.client.flushdb()
        store.BATCH = len(commands)
        seconds, _ = timed(lambda: store.execute(commands))
        return seconds
    conn = store.connection()
    table = f'"{view.sqlite_table}"'
    columns = online.SQLITE_COLUMNS
    conn.execute(f"CREATE TEMP TABLE prepared AS SELECT {columns} FROM {table} WHERE 0")
    conn.executemany(
        f"INSERT INTO prepared VALUES ({', '.join('?' * 6)})", online.sqlite_rows(view, rows)
    )

    def copy() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"DELETE FROM {table}")
        conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM prepared")
        conn.execute("COMMIT")

    seconds, _ = timed(copy)
    conn.execute("DROP TABLE prepared")
    return seconds


def bench_store(args, lake: Lakehouse, use_case: UseCase, kind: str, stock, ours) -> dict:
    """Stock and ours into one kind of store (`stock` and `ours`: their settings)."""
    for settings in (stock, ours):
        shutil.rmtree(settings.feast.store_dir, ignore_errors=True)
        store = feature_store(settings)
        apply_definitions(store, settings, use_case)
        clear_store(settings, use_case)
    n = args.entities
    print(f"\n{kind}: {n:,} entities x {args.features} features")

    everything = (datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC))
    stock_store = feature_store(stock)
    feast_s, _ = timed(
        lambda: materialize(stock_store, lake.spark, ["bench_features"], *everything)
    )
    print(f"  stock feast materialize      {feast_s:8.2f} s  {n / feast_s:>10,.0f} rows/s")

    runs = []
    for _ in range(args.repeat):
        clear_store(ours, use_case)
        seconds, (result,) = timed(
            lambda: online.materialize_online(lake, ours, use_case, full=True)
        )
        assert result.entities == n, result
        runs.append(seconds)
    ours_s = min(runs)
    listed = ", ".join(f"{s:.2f}" for s in runs)
    print(
        f"  ours, full load              {ours_s:8.2f} s  {n / ours_s:>10,.0f} rows/s  (runs: {listed} s)"
    )
    print(f"  ratio ours / stock           {feast_s / ours_s:8.1f}x   (goal: 20x)")

    clear_store(ours, use_case)
    split = steps(lake, ours, use_case)
    by_step = ", ".join(f"{k} {v:.2f} s" for k, v in split.items() if k != "store alone")
    print(f"  ours, one full load by step: {by_step}")
    print(
        f"  the store alone              {split['store alone']:8.2f} s   (20x stock leaves"
        f" {feast_s / 20:.2f} s for everything)"
    )

    # Both stores are compared before the incremental run changes the table.
    same_bytes = contents(ours, use_case) == contents(stock, use_case)
    sample = random.Random(1).sample(range(n), min(args.sample, n)) + [n + 1]
    same_reads = feast_read(ours, use_case, sample) == feast_read(stock, use_case, sample)
    verdict = "MATCH" if same_bytes and same_reads else "DIFFERS"
    print(
        f"  check: stored bytes {'equal' if same_bytes else 'DIFFER'}, Feast reads of"
        f" {len(sample)} entities {'equal' if same_reads else 'DIFFER'}: {verdict}"
    )

    online.materialize_online(lake, ours, use_case)  # the watermark at the current version
    inc_runs = []
    for run in range(args.repeat):
        newest = T0 + (args.rows_per_entity - 1 + run) * HOUR
        add_newer_rows(lake, use_case.tables[0], args.changed, newest)
        seconds, (inc,) = timed(lambda: online.materialize_online(lake, ours, use_case))
        assert (inc.mode, inc.entities) == ("incremental", args.changed), inc
        inc_runs.append(seconds)
    inc_s = min(inc_runs)
    listed = ", ".join(f"{s:.2f}" for s in inc_runs)
    print(
        f"  ours, incremental            {inc_s:8.2f} s  ({args.changed:,} entities changed of"
        f" {n:,}; runs: {listed} s)"
    )
    return {
        "store": kind,
        "feast_s": feast_s,
        "ours_s": ours_s,
        "ours_runs": runs,
        "ratio": feast_s / ours_s,
        "steps": split,
        "incremental_s": inc_s,
        "incremental_runs": inc_runs,
        "match": verdict == "MATCH",
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    use_case = bench_use_case(args.features)
    root = args.data_dir / "materialize-lakehouse"
    shutil.rmtree(root, ignore_errors=True)
    settings = store_settings(root, "data", "sqlite", None, 0)
    lake = Lakehouse(get_spark(settings), settings, NAME)
    table = use_case.tables[0]
    results = []
    with ExitStack() as stack:
        redis = args.redis
        if "redis" in args.stores and redis is None:
            from tests.redis_server import running_redis

            redis = stack.enter_context(running_redis(args.data_dir / "redis"))
        kinds = args.stores.split(",")
        # Every store's settings are loaded once, up front, as a job loads its own.
        stores = {
            k: [store_settings(root, n, k, redis, db) for db, n in enumerate(("stock", "ours"))]
            for k in kinds
        }
        for kind in kinds:
            # A fresh table per store, so that each incremental run starts from the same data.
            shutil.rmtree(root / "tables", ignore_errors=True)
            write_table(lake, table, args.entities, args.rows_per_entity)
            lake.read(table.name).count()  # warm up: the JVM, Delta's log, the file listing
            results.append(bench_store(args, lake, use_case, kind, *stores[kind]))
    lake.spark.stop()
    return results


if __name__ == "__main__":
    main()
