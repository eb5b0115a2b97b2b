"""Run by tests/integration/test_cluster.py in a process of its own (a JVM has one Spark
context, and the test session's is local): ingest, the feature job and a point-in-time
training set of a small simulated fleet, on the Spark master given, into the lakehouse given.

    python -m tests.cluster_job <lakehouse root> <master URL>

The cluster's cost is its fixed overhead per Spark job, not the rows, so the run is kept to
what proves the point: the telemetry data set (with the machines it references and the
failures that label it), the telemetry feature table, and a training set of its features.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyspark.sql.functions as F

from featurehouse.features.build import build_feature_tables
from featurehouse.ingest import ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.spark import get_spark
from featurehouse.store.pit import FeatureLookup
from featurehouse.store.training_set import build_training_set
from featurehouse.training.labels import spine_rows, with_label
from featurehouse.usecase import EVENT_TIMESTAMP, Spine
from featurehouse.usecases.predictive_maintenance import USE_CASE
from featurehouse.usecases.predictive_maintenance.datasets import MACHINE_ID, TELEMETRY
from featurehouse.usecases.predictive_maintenance.simulator import (
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)
from featurehouse.usecases.predictive_maintenance.telemetry import TELEMETRY_FEATURES
from tests.helpers import local_settings

FLEET = FleetSpec(machines=2, start=datetime(2015, 1, 1), days=4, seed=5)
DATASETS = ("telemetry", "machines", "failures")
TRAINING_SET = "cluster_training_set"


def build(lake: Lakehouse) -> None:
    """What both runs do, from raw files to a training set saved as a table."""
    raw = lake.settings.storage.root / "raw-files"
    write_raw_csv(simulate_fleet(FLEET), raw)
    for dataset in USE_CASE.datasets:
        if dataset.name not in DATASETS:
            for file in raw.glob(dataset.pattern):
                file.unlink()
    ingest_use_case(lake, USE_CASE, raw)
    build_feature_tables(lake, [TELEMETRY_FEATURES])
    telemetry = lake.read("telemetry")
    entities = with_label(
        spine_rows(telemetry, Spine(TELEMETRY, every=timedelta(hours=6)), USE_CASE.entity.keys),
        lake.read("failures"),
        USE_CASE.label,
        USE_CASE.keys,
        observed_until=telemetry.agg(F.max("timestamp")).first()[0],
    )
    lookup = FeatureLookup(
        table=lake.read(TELEMETRY_FEATURES.name),
        feature_names=list(TELEMETRY_FEATURES.feature_names),
        lookup_key=MACHINE_ID,
        timestamp_lookup_key=EVENT_TIMESTAMP,
        lookback_window=TELEMETRY_FEATURES.ttl,
    )
    lake.overwrite(build_training_set(entities, [lookup], label=USE_CASE.label.name), TRAINING_SET)


def main(root: str, master: str) -> None:
    settings = local_settings(Path(root), spark={"master": master})
    spark = get_spark(settings)
    assert spark.conf.get("spark.master") == master, spark.conf.get("spark.master")
    build(Lakehouse(spark, settings, USE_CASE.name))
    print("cluster job done")


if __name__ == "__main__":
    main(*sys.argv[1:])
