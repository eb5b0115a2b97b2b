"""Benchmark of batch scoring: the scoring job's Spark path against the floor, in one run.

    python -m benchmarks.bench_scoring                      # 10M rows (~15 min)
    python -m benchmarks.bench_scoring --rows 1M

Data: --rows rows x 50 double features (1% missing) in one Delta table, generated in Spark
(seeded), and the benchmark use case's champion from `benchmarks.bench_serving`: a
HistGradientBoosting regressor of --trees trees (31 leaves), trained on 100,000 rows and
registered in a local MLflow registry.

- ours: what the scoring job runs once the features are joined,
  `featurehouse.scoring.with_predictions` (the champion on the executors, in `mapInArrow`,
  through the predictor the service runs: the trees compiled to onnxruntime, summed in
  scikit-learn's order), reading the Delta table and writing keys and predictions to a
  Delta table: end to end, reads and writes included;
- the floor: the same model (`mlflow.sklearn.load_model`) predicting the same rows as one
  pandas frame already in memory, in this process (its OpenMP threads use both cores), a
  million rows per call.
  Reading the rows into pandas is timed apart and not counted.

Goal: ours at least half the floor's rows per second, with identical predictions (every
row compared by key).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyspark.sql.functions as F

from benchmarks.bench_features import parse_rows
from benchmarks.bench_serving import NAME, TABLE, USE_CASE, feature_frame, overrides, train_champion

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FLOOR_SLICE = 1_000_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: parse_rows(s)[0], default=10_000_000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "featurehouse-bench-scoring"
    )
    return parser.parse_args(argv)


def settings_for(root: Path, driver_memory: str):
    from featurehouse.config import deep_merge, load_settings

    spark = {
        "shuffle_partitions": 8,
        "conf": {
            "spark.driver.memory": driver_memory,
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        },
    }
    data = deep_merge(overrides(root, {"type": "sqlite"}), {"spark": spark})
    return load_settings("local", overrides=data)


def write_features(spark, path: Path, rows: int) -> None:
    """Seeded features: normal values, 1% of them missing."""
    if (path / "_delta_log").is_dir():
        return
    columns = [
        F.when(F.rand(1000 + i) < 0.01, F.lit(None))
        .otherwise(F.randn(i))
        .cast("double")
        .alias(f.name)
        for i, f in enumerate(TABLE.features)
    ]
    frame = spark.range(rows).select(
        F.col("id").alias("entity_id"),
        F.lit(datetime(2024, 6, 1)).alias("event_timestamp"),
        *columns,
    )
    frame.write.format("delta").save(str(path))


def read_as_pandas(path: Path, columns: list[str]) -> pd.DataFrame:
    """The table's rows (one fresh write: every Parquet file in the folder is live)."""
    files = sorted(path.glob("*.parquet"))
    return pq.read_table(files, columns=columns).to_pandas(self_destruct=True, split_blocks=True)


def main(argv: list[str] | None = None) -> dict:
    import mlflow

    from featurehouse.scoring import with_predictions
    from featurehouse.spark import get_spark
    from featurehouse.training.evaluate import model_inputs

    args = parse_args(argv)
    root = args.data_dir
    root.mkdir(parents=True, exist_ok=True)
    settings = settings_for(root, args.driver_memory)
    spark = get_spark(settings)
    print(
        f"Spark {spark.version} {settings.spark.master}, {os.cpu_count()} cores,"
        f" {args.rows:,d} rows x {len(TABLE.features)} features, {args.trees} trees"
    )

    started = time.perf_counter()
    version = train_champion(settings, feature_frame(100_000), args.trees)
    model_name = settings.model_name(NAME, USE_CASE.model_name)
    uri = f"models:/{model_name}/{version}"
    features_path = root / f"features_{args.rows}"
    write_features(spark, features_path, args.rows)
    print(f"champion v{version} and data ready in {time.perf_counter() - started:.1f} s")

    # Ours: the scoring job's path, Delta in, Delta out.
    out = root / "predictions"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    features = spark.read.format("delta").load(str(features_path))
    scored = with_predictions(features, uri, USE_CASE)
    scored.select("entity_id", USE_CASE.task.prediction).write.format("delta").save(str(out))
    ours_s = time.perf_counter() - started
    print(f"  ours   {ours_s:8.1f} s  {args.rows / ours_s:12,.0f} rows/s  (Spark, Delta to Delta)")

    # The floor: one pandas frame, the same model, in this process.
    inputs = model_inputs(USE_CASE, {})
    started = time.perf_counter()
    frame = read_as_pandas(features_path, ["entity_id", *inputs.columns])
    read_s = time.perf_counter() - started
    model = mlflow.sklearn.load_model(uri)
    started = time.perf_counter()
    # In slices of a million rows: one call would hold three more copies of 10M x 50
    # doubles (the selection, sklearn's array, its validation), past this machine's memory.
    floor_values = np.concatenate(
        [
            model.predict(frame.iloc[start : start + FLOOR_SLICE][inputs.columns])
            for start in range(0, len(frame), FLOOR_SLICE)
        ]
    )
    floor_s = time.perf_counter() - started
    print(
        f"  floor  {floor_s:8.1f} s  {args.rows / floor_s:12,.0f} rows/s  (pandas predict;"
        f" reading the rows took {read_s:.1f} s more, not counted)"
    )

    ours = read_as_pandas(out, ["entity_id", USE_CASE.task.prediction])
    expected = pd.Series(floor_values, index=frame["entity_id"].to_numpy())
    got = pd.Series(ours[USE_CASE.task.prediction].to_numpy(), index=ours["entity_id"].to_numpy())
    got = got.reindex(expected.index)
    differences = np.abs(got.to_numpy() - expected.to_numpy())
    identical = bool(len(ours) == args.rows and np.all(differences == 0))
    ratio = (args.rows / ours_s) / (args.rows / floor_s)
    print(
        f"  ours / floor rows per second: {ratio:.2f} (goal >= 0.5); predictions identical:"
        f" {identical} ({len(ours):,d} rows, largest difference {np.nanmax(differences):.3g})"
    )
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "spark": spark.version,
                    "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "rows": args.rows,
        "trees": args.trees,
        "ours_s": ours_s,
        "floor_s": floor_s,
        "floor_read_s": read_s,
        "ratio": ratio,
        "identical": identical,
    }  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS_DIR / f"bench_scoring_{stamp}.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
