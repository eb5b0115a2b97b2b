"""Run by tests/integration/test_cluster.py in a process of its own (a JVM has one Spark
context, and the test session's is local): ingest, the feature job and a point-in-time
training set of a small simulated fleet, on the Spark master given, into the lakehouse given.

    python -m tests.cluster_job <lakehouse root> <master URL>
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from featurehouse.features.build import build_feature_tables
from featurehouse.ingest import ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.spark import get_spark
from featurehouse.store.feast_store import apply_definitions, feature_store
from featurehouse.training.dataset import build_training_dataset
from featurehouse.usecases.predictive_maintenance import USE_CASE
from featurehouse.usecases.predictive_maintenance.simulator import (
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)
from tests.helpers import local_settings

# Small: the cluster's cost is its fixed overhead per Spark job, not the rows.
FLEET = FleetSpec(machines=2, start=datetime(2015, 1, 1), days=4, seed=5)
TRAINING_SET = "cluster_training_set"


def build(lake: Lakehouse) -> None:
    """What both runs do, from raw files to a training set saved as a table."""
    raw = lake.settings.storage.root / "raw-files"
    write_raw_csv(simulate_fleet(FLEET), raw)
    ingest_use_case(lake, USE_CASE, raw)
    build_feature_tables(lake, USE_CASE)
    apply_definitions(feature_store(lake.settings), lake.settings, USE_CASE)
    training, _ = build_training_dataset(lake, lake.settings, USE_CASE)
    lake.overwrite(training, TRAINING_SET)


def main(root: str, master: str) -> None:
    settings = local_settings(Path(root), spark={"master": master})
    spark = get_spark(settings)
    assert spark.conf.get("spark.master") == master, spark.conf.get("spark.master")
    build(Lakehouse(spark, settings, USE_CASE.name))
    print("cluster job done")


if __name__ == "__main__":
    main(*sys.argv[1:])
