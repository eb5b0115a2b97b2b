"""Benchmark of the feature job: one incremental day against a full rebuild of a year.

    python -m benchmarks.bench_incremental                 # 200 machines, 365 days + 1
    python -m benchmarks.bench_incremental --machines 1000

Bronze telemetry of --machines machines over a year (the generator of bench_features:
hourly, with missing hours, off-hour readings and nulls) is loaded as a Delta table with
a change data feed, as ingestion leaves it. Then, timed:

1. `features --full` of the telemetry feature table over the year (compute, stage, check,
   publish);
2. one more day lands in bronze, and the default incremental run processes it (change
   data feed -> machines and start times -> one day plus 24 h of history per machine).

The incremental result is checked against the same rows computed from scratch. Goal: the
incremental run under 10% of the full rebuild's time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pyspark.sql.functions as F

from benchmarks.bench_features import RTOL, T0_US, compare, generate
from featurehouse.config import load_settings
from featurehouse.features.build import build_feature_tables, compute_batch
from featurehouse.io import Lakehouse
from featurehouse.spark import get_spark
from featurehouse.usecases.predictive_maintenance.telemetry import TELEMETRY_FEATURES

DAYS = 365


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "fh-bench")
    return parser.parse_args(argv)


def lakehouse(args: argparse.Namespace) -> Lakehouse:
    root = args.data_dir / "incremental-lakehouse"
    shutil.rmtree(root, ignore_errors=True)
    settings = load_settings(
        "local",
        overrides={
            "storage": {
                "root": str(root),
                "raw_dir": str(root / "raw"),
                "staging_dir": str(root / "staging"),
            },
            "spark": {
                "shuffle_partitions": args.shuffle_partitions,
                "conf": {"spark.driver.memory": args.driver_memory},
            },
        },
    )
    return Lakehouse(get_spark(settings), settings, "predictive_maintenance")


def timed(label: str, fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"{label:<34} {seconds:8.1f} s", flush=True)
    return seconds, result


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rows = args.machines * 24 * (DAYS + 1)
    source = generate(args.data_dir, rows, args.machines)
    lake = lakehouse(args)
    telemetry = lake.spark.read.parquet(str(source))
    new_day_from = F.timestamp_micros(F.lit(T0_US + DAYS * 24 * 3_600_000_000))
    lake.append(telemetry.where(F.col("timestamp") < new_day_from), "telemetry")
    history_rows = lake.read("telemetry").count()
    print(f"{args.machines} machines, {history_rows:,} rows of history, one day more")

    full_s, full = timed(
        "full rebuild (a year)",
        lambda: build_feature_tables(lake, [TELEMETRY_FEATURES], full=True)[0],
    )
    lake.append(telemetry.where(F.col("timestamp") >= new_day_from), "telemetry")
    inc_s, inc = timed(
        "incremental run (one new day)", lambda: build_feature_tables(lake, [TELEMETRY_FEATURES])[0]
    )
    print(
        f"full: {full.rows_computed:,} rows; incremental: {inc.mode}, {inc.rows_computed:,} rows"
        f" ({inc.inserted:,} new, {inc.updated:,} changed)"
    )
    print(f"incremental / full = {inc_s / full_s:.1%} (goal: under 10%)")

    # The last two days as a from-scratch computation gives them, compared value by value.
    check_from = F.timestamp_micros(F.lit(T0_US + (DAYS - 1) * 24 * 3_600_000_000))
    check_dir = args.data_dir / "incremental-check"
    scratch = compute_batch(TELEMETRY_FEATURES, {"telemetry": lake.read("telemetry")})
    for name, df in {"incremental": lake.read(TELEMETRY_FEATURES.name), "scratch": scratch}.items():
        df.where(F.col("event_timestamp") >= check_from).write.mode("overwrite").parquet(
            str(check_dir / name)
        )
    check = compare(check_dir / "incremental", check_dir / "scratch")
    largest = max(v["max_rel"] for v in check["per_stat"].values())
    print(
        f"check: last 2 days ({check['rows']:,} rows; {check['only_left']} only incremental,"
        f" {check['only_right']} only from scratch) vs from scratch:"
        f" {'MATCH' if check['match'] else 'DIFFERS'} (rtol {RTOL:g},"
        f" {check['values_differing']} values differ), largest relative difference {largest:.1e}"
    )
    lake.spark.stop()
    return {"full_s": full_s, "incremental_s": inc_s, "ratio": inc_s / full_s, "check": check}


if __name__ == "__main__":
    main()
