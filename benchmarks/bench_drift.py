"""Benchmark of drift monitoring: the Spark measurement over whole windows against Evidently's
DataDriftPreset on pandas, in the same run, with the same test and threshold.

    python -m benchmarks.bench_drift                                   # 100k and 1M rows, 50 columns
    python -m benchmarks.bench_drift --rows 100k,1M --columns 10,25,50 --no-evidently  # growth

Generated data (seeded, written once per size under --data-dir, then reused): a reference and
a current window of --rows rows each and --columns numeric columns of five shapes in turn
(normal at different levels and scales, log-normal, gamma, Poisson counts, normal with 2%
nulls). In the current window the first --shifted columns (default 10) are shifted (0.2, 0.5
or 1 standard deviation, or a change of scale); the others are drawn afresh from the reference's
distribution. Each window is written by pyarrow as one Parquet file (what pandas reads) and by
Spark as a Delta table of the same rows (what the Spark path reads).

Ours: read both Delta tables, `featurehouse.monitoring.spark_drift.measure` (the drift job's
measurement: row counts, a sample of the reference for the bin edges, one pass over every row
of both windows), then every statistic and the verdicts of every column
(`featurehouse.monitoring.drift.compare`). Writing the profile and drift tables is not timed.
Evidently: `pd.read_parquet` of both files and `Report([DataDriftPreset(num_method=test,
num_threshold=threshold)]).run(...)`. Both use the same test and threshold (--tests, default
normalised Wasserstein at 0.1, Evidently's own choice for numeric columns above 1,000 rows; "ks"
at p 0.05 is the other), and the script prints the columns whose verdicts differ.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pyspark.sql.functions as F
from pyspark.sql import SparkSession

from benchmarks.bench_features import parse_rows
from benchmarks.bench_pit import Measurement, fastest, measure_spark, slope, start_spark
from featurehouse.monitoring.drift import DriftThresholds, compare
from featurehouse.monitoring.spark_drift import NUMERIC, MonitoredColumn, measure

RESULTS_DIR = Path(__file__).resolve().parent / "results"
THRESHOLDS = {"wasserstein": 0.1, "ks": 0.05}
EFFECTS = (0.2, 0.5, 1.0, "scale")  # planted changes, in turn, of the shifted columns


# ---------------------------------------------------------------------------------------
# Data


def column_names(columns: int) -> list[str]:
    return [f"x{i:02d}" for i in range(columns)]


def draw(rng: np.random.Generator, i: int, rows: int, effect) -> np.ndarray:
    """Column i's values; `effect` moves the location by that many standard deviations, or
    ("scale") widens the spread by half."""
    shape, level, spread = i % 5, 10.0 * (i + 1), 1.0 + i % 7
    if shape == 0:
        mean, sd = level, spread
        values = rng.normal(mean, sd * (1.5 if effect == "scale" else 1.0), rows)
    elif shape == 1:
        values = rng.lognormal(0.0, 0.5, rows) * (i + 1)
        sd = float(np.std(values))
        values = values * (1.5 if effect == "scale" else 1.0)
    elif shape == 2:
        values = rng.gamma(2.0, spread, rows)
        sd = spread * np.sqrt(2.0)
        values = values * (1.5 if effect == "scale" else 1.0)
    elif shape == 3:
        values = rng.poisson(5.0 if effect != "scale" else 7.5, rows).astype("float64")
        sd = np.sqrt(5.0)
    else:
        sd = spread
        values = rng.normal(level, sd * (1.5 if effect == "scale" else 1.0), rows)
        values[rng.random(rows) < 0.02] = np.nan
    if isinstance(effect, float):
        values = values + effect * sd
    return values


def generate(spark: SparkSession, data_dir: Path, rows: int, columns: int, shifted: int) -> dict:
    """Parquet (for pandas) and Delta (for Spark) of both windows, made once per size."""
    out = {}
    for window, seed in (("reference", 1), ("current", 2)):
        name = f"{window}_r{rows}_c{columns}_s{shifted}"
        parquet, delta = data_dir / f"{name}.parquet", data_dir / f"{name}_delta"
        if not (delta / "_delta_log").is_dir():
            rng = np.random.default_rng([seed, rows, columns])
            data = {}
            for i, column in enumerate(column_names(columns)):
                effect = EFFECTS[i % len(EFFECTS)] if window == "current" and i < shifted else None
                data[column] = pa.array(draw(rng, i, rows, effect), from_pandas=True)
            pq.write_table(pa.table(data), parquet, row_group_size=250_000)
            files = max(2, rows // 250_000)
            spark.read.parquet(str(parquet)).repartition(files).write.format("delta").mode(
                "overwrite"
            ).save(str(delta))
        out[window] = {"parquet": parquet, "delta": delta}
    return out


# ---------------------------------------------------------------------------------------
# The two engines


def run_ours(spark: SparkSession, data: dict, columns: list[str], tests: list[str]) -> dict:
    reference = spark.read.format("delta").load(str(data["reference"]["delta"]))
    current = spark.read.format("delta").load(str(data["current"]["delta"]))
    frame = reference.withColumn("_window", F.lit("reference")).unionByName(
        current.withColumn("_window", F.lit("current"))
    )
    monitored = [MonitoredColumn(c, "feature", NUMERIC) for c in columns]
    measured = measure(
        frame,
        window_column="_window",
        windows=["reference", "current"],
        references=["reference"],
        columns=monitored,
    )
    verdicts, statistics = {}, {}
    for test in tests:
        thresholds = DriftThresholds(
            numeric_test=test, wasserstein=THRESHOLDS["wasserstein"], ks_pvalue=THRESHOLDS["ks"]
        )
        results = compare(
            measured,
            reference="reference",
            current="current",
            comparison="reference",
            thresholds=thresholds,
        )
        verdicts[test] = {r.column: bool(r.drifted) for r in results}
        statistics[test] = {
            r.column: r.wasserstein_normalised if test == "wasserstein" else r.ks_pvalue
            for r in results
        }
    return {"verdicts": verdicts, "statistics": statistics}


def run_evidently(data: dict, columns: list[str], test: str) -> dict:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(data["reference"]["parquet"])
    current = pd.read_parquet(data["current"]["parquet"])
    threshold = THRESHOLDS[test]
    preset = DataDriftPreset(columns=columns, num_method=test, num_threshold=threshold)
    snapshot = Report([preset]).run(current_data=current, reference_data=reference)
    verdicts, statistics = {}, {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            value = float(metric["value"])
            statistics[config["column"]] = value
            # Evidently's rules: a KS p-value at or below the threshold, a distance at or above.
            verdicts[config["column"]] = value <= threshold if test == "ks" else value >= threshold
    return {"verdicts": {test: verdicts}, "statistics": {test: statistics}}


# ---------------------------------------------------------------------------------------
# Main


def cpu_seconds() -> float:
    """CPU time of this process and its children (the JVM, Spark's Python workers)."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def timed(measure_fn) -> tuple[Measurement, float]:
    started = cpu_seconds()
    measurement = measure_fn()
    return measurement, cpu_seconds() - started


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_rows, default=[100_000, 1_000_000])
    parser.add_argument("--columns", type=lambda s: [int(c) for c in s.split(",")], default=[50])
    parser.add_argument("--shifted", type=int, default=10, help="columns with a planted change")
    parser.add_argument(
        "--tests",
        type=lambda s: s.split(","),
        default=["wasserstein"],
        help="tests compared with Evidently's (wasserstein, ks): Evidently runs once per test",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of ours; the fastest counts (the first run of a size also pays the JIT,"
        " the file cache and Python workers' imports: it is reported too)",
    )
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument(
        "--evidently-max-rows", type=int, default=1_000_000, help="skip Evidently above this"
    )
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "featurehouse-bench-drift"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    unknown = [t for t in args.tests if t not in THRESHOLDS]
    if unknown:
        raise SystemExit(f"unknown tests {unknown}: choose from {', '.join(THRESHOLDS)}")
    spark = start_spark(args)
    print(
        f"Spark {spark.version} {spark.conf.get('spark.master')}, shuffle partitions "
        f"{spark.conf.get('spark.sql.shuffle.partitions')}, driver memory {args.driver_memory};"
        f" tests {', '.join(f'{t} at {THRESHOLDS[t]}' for t in args.tests)}; data in {args.data_dir}"
    )
    # Warm the JVM and Spark's Python workers on a small size before anything is timed.
    warm = generate(spark, args.data_dir, 20_000, 5, 1)
    run_ours(spark, warm, column_names(5), args.tests)

    runs = []
    for columns in args.columns:
        for rows in args.rows:
            started = time.perf_counter()
            data = generate(spark, args.data_dir, rows, columns, min(args.shifted, columns))
            names = column_names(columns)
            print(
                f"\n== {rows:,} rows per window x {columns} columns"
                f" (data ready in {time.perf_counter() - started:.1f} s)"
            )
            attempts = []
            for _ in range(args.repeat):
                m, cpu = timed(
                    lambda d=data, n=names: measure_spark(
                        spark, "ours", lambda: run_ours(spark, d, n, args.tests), None
                    )
                )
                m.result["cpu_s"] = cpu
                attempts.append(m)
            ours = fastest(attempts)
            tries = ", ".join(f"{t:.1f}" for t in ours.attempts)
            load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
            print(
                f"  ours      {ours.seconds:8.1f} s  (CPU {ours.result['cpu_s']:.1f} s;"
                f" runs: {tries})  load average {load}",
                flush=True,
            )
            evidently = {}
            if not args.no_evidently and rows <= args.evidently_max_rows:
                for test in args.tests:
                    started, cpu0 = time.perf_counter(), cpu_seconds()
                    result = run_evidently(data, names, test)
                    evidently[test] = {
                        "seconds": time.perf_counter() - started,
                        "cpu_s": cpu_seconds() - cpu0,
                        **result,
                    }
            runs.append(report(rows, columns, ours, evidently))

    growth = {}
    for columns in args.columns:
        points = [(r["rows"], r["ours_s"]) for r in runs if r["columns"] == columns]
        growth[f"rows_at_{columns}_columns"] = slope(points)
    for rows in args.rows:
        points = [(r["columns"], r["ours_s"]) for r in runs if r["rows"] == rows]
        growth[f"columns_at_{rows}_rows"] = slope(points)
    growth = {k: v for k, v in growth.items() if v is not None}
    if growth:
        print("\ngrowth exponents of ours (log-log slope; 1.0 is linear): " + ", ".join(
            f"{k} {v:.2f}" for k, v in growth.items()
        ))  # fmt: skip
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "spark": spark.version,
            "cpus": psutil.cpu_count(),
            "load_average": list(psutil.getloadavg()),
        },
        "settings": {
            "master": spark.conf.get("spark.master"),
            "shuffle_partitions": args.shuffle_partitions,
            "driver_memory": args.driver_memory,
            "shifted": args.shifted,
            "tests": args.tests,
        },
        "runs": runs,
        "growth": growth,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"bench_drift_{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nresults: {path}")
    return out


def report(rows: int, columns: int, ours: Measurement, evidently: dict) -> dict:
    entry = {
        "rows": rows,
        "columns": columns,
        "ours_s": ours.seconds,
        "ours_attempts": ours.attempts,
        "ours_cpu_s": ours.result["cpu_s"],
        "evidently": {},
        "load_average": list(psutil.getloadavg()),
        "stages": ours.stages,
    }
    for test, theirs in evidently.items():
        ratio = theirs["seconds"] / ours.seconds
        first_ratio = theirs["seconds"] / ours.attempts[0]
        mine, their = ours.result["verdicts"][test], theirs["verdicts"][test]
        differ = sorted(c for c in mine if mine[c] != their.get(c))
        print(
            f"  evidently {theirs['seconds']:8.1f} s  (CPU {theirs['cpu_s']:.1f} s) with {test}:"
            f" ratio {ratio:.1f}x (to our first run {first_ratio:.1f}x);"
            f" verdicts: {len(mine) - len(differ)} of {len(mine)} columns"
            f" the same ({sum(mine.values())} drifted in ours, {sum(their.values())} in Evidently)"
        )
        for column in differ:
            print(
                f"    differs: {column}: ours {mine[column]}"
                f" ({ours.result['statistics'][test][column]:.4g}),"
                f" Evidently {their.get(column)} ({theirs['statistics'][test].get(column):.4g})"
            )
        entry["evidently"][test] = {
            "seconds": theirs["seconds"],
            "cpu_s": theirs["cpu_s"],
            "ratio": ratio,
            "ratio_to_first_run": first_ratio,
            "same_verdicts": len(mine) - len(differ),
            "differing_columns": differ,
            "drifted_ours": sum(mine.values()),
            "drifted_evidently": sum(their.values()),
        }
    if ours.stages:
        print("  our stages (wall s / task s / input rows):")
        for s in ours.stages:
            print(
                f"    job {s['job']:3d} stage {s['stage']:3d} {s['tasks']:3d} tasks"
                f" {s['wall_s']:7.2f} {s['task_s']:7.2f} {s['input_rows']:>11,}  {s['name']}"
            )
    return entry


if __name__ == "__main__":
    main()
