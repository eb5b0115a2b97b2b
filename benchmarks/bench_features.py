"""Benchmark of the telemetry feature table: the Spark transform against DuckDB SQL.

    python -m benchmarks.bench_features                    # 1M and 10M rows
    python -m benchmarks.bench_features --rows 1M,10M,50M --repeat 1

Generated data (seeded, reused across runs from --data-dir): hourly telemetry of
--machines machines (default 1,000, so 10M rows are ~14 months per machine) in time order,
as ingestion writes it, with 0.5% of the hours missing, 1% of the readings off the hour
(arbitrary seconds) and 0.5% of each sensor's values null. Plain Parquet with
microsecond timestamps.

Each engine reads the Parquet files, computes every feature of TELEMETRY_FEATURES (mean and
std over 3 h and 24 h, min, max and slope over 24 h, lag 1 h, for 4 sensors: 32 features)
and writes Parquet; both times include the read and the write. Spark runs the table's own
`build` (`with_telemetry_features`); DuckDB runs the same definitions as window functions
(segment trees). The two outputs are then joined on (machine, time) and every value compared.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from benchmarks.bench_pit import (
    HOT_KEY,
    Measurement,
    add_hot_share,
    fastest,
    longest_task_share,
    measure_local,
    measure_spark,
    print_stages,
    start_spark,
)
from featurehouse.usecases.predictive_maintenance.telemetry import (
    LAG_HOURS,
    RANGE_HOURS,
    SENSORS,
    TELEMETRY_FEATURES,
    WINDOWS_HOURS,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T0_US = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
HOUR_US = 3_600_000_000
SENSOR_LEVELS = {
    "volt": (170, 15),
    "rotate": (450, 50),
    "pressure": (100, 10),
    "vibration": (40, 5),
}
MISSING_SHARE = 0.005  # hours without a reading
OFF_HOUR_SHARE = 0.01  # readings at an arbitrary second of the hour
NULL_SHARE = 0.005  # null values per sensor
# Values agree if |a - b| <= RTOL * max(|a|, |b|, level of the sensor): relative, and near
# zero (a std or slope of nearly equal readings) relative to the size of the readings.
RTOL = 1e-9


# ---------------------------------------------------------------------------------------
# Data


def generate(
    data_dir: Path, rows: int, machines: int, seed: int = 7, files: int = 8, hot: float = 0.0
) -> Path:
    """Parquet files of about `rows` readings (made once, then reused). With `hot` > 0,
    machine HOT_KEY takes that share of the rows (skew), at half-second offsets that no
    other reading of it has."""
    path = data_dir / (f"telemetry_m{machines}_n{rows}" + (f"_hot{hot:g}" if hot else ""))
    if (path / "_SUCCESS").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    hours = -(-rows // machines)
    # Time-major, like ingestion: hour h holds every machine's reading of that hour.
    hour = np.repeat(np.arange(hours, dtype=np.int64), machines)[:rows]
    machine = np.tile(np.arange(machines, dtype=np.int64), hours)[:rows]
    t_us = T0_US + hour * HOUR_US
    off = rng.random(rows) < OFF_HOUR_SHARE
    t_us[off] += rng.integers(1, 3600, off.sum()) * 1_000_000
    hot_rows = np.nonzero(rng.random(rows) < hot)[0]
    step_s = max(1, hours * 3600 // rows)
    machine[hot_rows] = HOT_KEY
    t_us[hot_rows] = T0_US + hot_rows * step_s * 1_000_000 + 500_000
    keep = rng.random(rows) >= MISSING_SHARE
    n = int(keep.sum())
    columns = {
        "machine_id": machine[keep],
        "timestamp": pa.array(t_us[keep], pa.timestamp("us", tz="UTC")),
    }
    for sensor, (level, spread) in SENSOR_LEVELS.items():
        # Noise around a slow daily swing, so that trends are not all zero.
        swing = 0.2 * spread * np.sin(hour[keep] * (2 * np.pi / 24))
        values = level + swing + spread * rng.standard_normal(n)
        values[rng.random(n) < NULL_SHARE] = np.nan
        columns[sensor] = pa.array(values, from_pandas=True)  # NaN -> null
    table = pa.table(columns)
    per_file = -(-table.num_rows // files)
    for i in range(files):
        pq.write_table(table.slice(i * per_file, per_file), path / f"part-{i:03d}.parquet")
    (path / "_SUCCESS").touch()
    return path


# ---------------------------------------------------------------------------------------
# The two engines


def run_spark(spark: SparkSession, source: Path, out: Path) -> dict:
    telemetry = spark.read.parquet(str(source))
    features = TELEMETRY_FEATURES.build({"telemetry": telemetry})
    features.select(*TELEMETRY_FEATURES.columns).write.mode("overwrite").parquet(str(out))
    return {}


def duckdb_query(source: Path) -> str:
    """The same features as DuckDB window functions over (t - N h, t] in microseconds."""

    def trailing(hours: int) -> str:
        return (
            "(PARTITION BY machine_id ORDER BY t_us "
            f"RANGE BETWEEN {hours * HOUR_US - 1} PRECEDING AND CURRENT ROW)"
        )

    features = {}
    for hours in WINDOWS_HOURS:
        for s in SENSORS:
            features[f"{s}_mean_{hours}h"] = f"avg({s}) OVER w{hours}"
            features[f"{s}_std_{hours}h"] = f"stddev_samp({s}) OVER w{hours}"
    for s in SENSORS:
        features[f"{s}_min_{RANGE_HOURS}h"] = f"min({s}) OVER w{RANGE_HOURS}"
        features[f"{s}_max_{RANGE_HOURS}h"] = f"max({s}) OVER w{RANGE_HOURS}"
    for s in SENSORS:
        # regr_slope of one reading is NaN in DuckDB; the feature is null then.
        features[f"{s}_slope_{RANGE_HOURS}h"] = (
            f"CASE WHEN count({s}) OVER w{RANGE_HOURS} > 1 "
            f"THEN regr_slope({s}, hours) OVER w{RANGE_HOURS} END"
        )
    for s in SENSORS:
        features[f"{s}_lag_{LAG_HOURS}h"] = f"first({s}) OVER lag"
    assert list(features) == TELEMETRY_FEATURES.feature_names
    windows = {f"w{h}": trailing(h) for h in {*WINDOWS_HOURS, RANGE_HOURS}}
    lag_us = LAG_HOURS * HOUR_US
    windows["lag"] = (
        "(PARTITION BY machine_id ORDER BY t_us "
        f"RANGE BETWEEN {lag_us} PRECEDING AND {lag_us} PRECEDING)"
    )
    return f"""
        SELECT machine_id, event_timestamp,
               {", ".join(f"{sql} AS {name}" for name, sql in features.items())}
        FROM (
            SELECT machine_id, timestamp AS event_timestamp, epoch_us(timestamp) AS t_us,
                   (epoch_us(timestamp) - {T0_US}) / {HOUR_US}.0 AS hours,
                   {", ".join(SENSORS)}
            FROM read_parquet('{source}/*.parquet')
        )
        WINDOW {", ".join(f"{name} AS {spec}" for name, spec in windows.items())}
    """


def run_duckdb(source: Path, out: Path, threads: int) -> dict:
    import duckdb

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    con.execute(f"COPY ({duckdb_query(source)}) TO '{out}/features.parquet' (FORMAT parquet)")
    con.close()
    return {}


# ---------------------------------------------------------------------------------------
# Value check


def compare(left: Path, right: Path) -> dict:
    """Joins two feature outputs (Parquet folders) on (machine, time): rows on one side
    only, and per feature the values that differ (beyond RTOL, or null on one side only)
    and the largest relative difference."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    names = TELEMETRY_FEATURES.feature_names
    checks = []
    for n in names:
        a, b = f"s.{n}", f"d.{n}"
        level = SENSOR_LEVELS[n.split("_")[0]][0]
        differs = (
            f"({a} IS NULL) <> ({b} IS NULL) OR "
            f"abs({a} - {b}) > {RTOL} * greatest(abs({a}), abs({b}), {level})"
        )
        checks += [
            f"count(*) FILTER (WHERE {differs}) AS {n}__bad",
            f"max(abs({a} - {b}) / greatest(abs({a}), abs({b}), 1e-300)) AS {n}__rel",
        ]
    key = (
        "s.machine_id = d.machine_id AND epoch_us(s.event_timestamp) = epoch_us(d.event_timestamp)"
    )
    row = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE s.machine_id IS NULL) AS only_right,
               count(*) FILTER (WHERE d.machine_id IS NULL) AS only_left,
               count(*) AS rows, {", ".join(checks)}
        FROM read_parquet('{left}/*.parquet') s
        FULL JOIN read_parquet('{right}/*.parquet') d ON {key}
        """
    ).fetchone()
    cols = [d[0] for d in con.description]
    values = dict(zip(cols, row, strict=True))
    con.close()
    per_stat: dict[str, dict] = {}
    for n in names:
        stat = n.split("_")[1]
        entry = per_stat.setdefault(stat, {"bad": 0, "max_rel": 0.0})
        entry["bad"] += int(values[f"{n}__bad"])
        entry["max_rel"] = max(entry["max_rel"], float(values[f"{n}__rel"] or 0.0))
    bad = sum(e["bad"] for e in per_stat.values())
    return {
        "rows": int(values["rows"]),
        "only_left": int(values["only_left"]),
        "only_right": int(values["only_right"]),
        "values_differing": bad,
        "per_stat": per_stat,
        "match": bad == 0 and values["only_left"] == 0 and values["only_right"] == 0,
    }


# ---------------------------------------------------------------------------------------
# Main


def parse_rows(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([\d.]+)\s*([kKmM]?)\s*", part)
        if not m:
            raise argparse.ArgumentTypeError(f"not a row count: {part!r}")
        sizes.append(int(float(m[1]) * {"": 1, "k": 1e3, "m": 1e6}[m[2].lower()]))
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_rows, default=[1_000_000, 10_000_000])
    parser.add_argument("--machines", type=int, default=1_000)
    add_hot_share(parser, "the rows on one machine")
    parser.add_argument("--repeat", type=int, default=2, help="runs per engine; the fastest counts")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--duckdb-threads", type=int, default=2)
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "featurehouse-bench-features",
    )
    parser.add_argument("--plan", action="store_true", help="print Spark's formatted plan")
    parser.add_argument(
        "--no-coalesce",
        action="store_true",
        help="keep every shuffle partition a task of its own (as on a cluster of that many cores)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    spark = start_spark(args)
    if args.no_coalesce:
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    print(
        f"Spark {spark.version} {spark.conf.get('spark.master')}, shuffle partitions "
        f"{spark.conf.get('spark.sql.shuffle.partitions')}, driver memory {args.driver_memory}; "
        f"DuckDB threads {args.duckdb_threads}; {len(TELEMETRY_FEATURES.features)} features; "
        f"data in {args.data_dir}"
    )
    # Warm the JVM (code generation, JIT) on a small size before anything is timed.
    warm = generate(args.data_dir, 100_000, min(args.machines, 100))
    run_spark(spark, warm, args.data_dir / "out_warm")

    runs = []
    for hot, rows in [(h, r) for h in args.hot_share for r in args.rows]:
        started = time.perf_counter()
        source = generate(args.data_dir, rows, args.machines, hot=hot)
        n = spark.read.parquet(str(source)).count()
        skewed = f", machine {HOT_KEY} holding {hot:.0%} of rows" if hot else ""
        print(
            f"\n== {n:,} readings, {args.machines:,} machines{skewed}"
            f" (data ready in {time.perf_counter() - started:.1f} s)"
        )
        spark_out = args.data_dir / f"out_spark_{rows}_{hot:g}"
        duckdb_out = args.data_dir / f"out_duckdb_{rows}_{hot:g}"
        if args.plan:
            TELEMETRY_FEATURES.build({"telemetry": spark.read.parquet(str(source))}).explain(
                "formatted"
            )
        measurements = [
            fastest(
                [
                    measure_spark(
                        spark, "spark", lambda s=source, o=spark_out: run_spark(spark, s, o), None
                    )
                    for _ in range(args.repeat)
                ]
            )
        ]
        check = None
        if not args.no_duckdb:
            measurements.append(
                fastest(
                    [
                        measure_local(
                            "duckdb",
                            lambda s=source, o=duckdb_out: run_duckdb(s, o, args.duckdb_threads),
                        )
                        for _ in range(args.repeat)
                    ]
                )
            )
            check = compare(spark_out, duckdb_out)
        runs.append({**report(n, measurements, check), "hot_share": hot})

    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "spark": spark.version},
        "settings": {
            "master": spark.conf.get("spark.master"),
            "shuffle_partitions": args.shuffle_partitions,
            "driver_memory": args.driver_memory,
            "duckdb_threads": args.duckdb_threads,
            "machines": args.machines,
        },
        "runs": runs,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"bench_features_{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nresults: {path}")
    return out


def report(rows: int, measurements: list[Measurement], check: dict | None) -> dict:
    by_name = {m.engine: m for m in measurements}
    for m in measurements:
        tries = ""
        if len(m.attempts) > 1:
            tries = "  (runs: " + ", ".join(f"{t:.1f}" for t in m.attempts) + ")"
        print(f"  {m.engine:7s} {m.seconds:8.1f} s  {rows / m.seconds:>12,.0f} rows/s{tries}")
    ratio = None
    if "duckdb" in by_name:
        ratio = by_name["spark"].seconds / by_name["duckdb"].seconds
        print(f"  spark / duckdb: {ratio:.2f}x")
    if check:
        verdict = "MATCH" if check["match"] else "DIFFERS"
        print(
            f"  values: {verdict} (rtol {RTOL:g}; {check['rows']:,} rows joined, "
            f"{check['only_left']} only in Spark, {check['only_right']} only in DuckDB, "
            f"{check['values_differing']} values differ)"
        )
        print(
            "  largest relative difference: "
            + ", ".join(f"{k} {v['max_rel']:.1e}" for k, v in check["per_stat"].items())
        )
    stages = by_name["spark"].stages
    longest = None
    if stages:
        print_stages("spark", stages)
        longest = longest_task_share(stages)
        print(
            f"  longest task: {longest['longest_task_s']:.2f} s, {longest['share']:.0%} of its"
            f" stage's {longest['stage_task_s']:.2f} s of task time ({longest['tasks']} tasks)"
        )
    return {
        "rows": rows,
        "seconds": {m.engine: m.seconds for m in measurements},
        "attempts": {m.engine: m.attempts for m in measurements},
        "rows_per_second": {m.engine: rows / m.seconds for m in measurements},
        "spark_over_duckdb": ratio,
        "check": check,
        "stages": stages,
        "longest_task": longest,
    }


if __name__ == "__main__":
    main()
