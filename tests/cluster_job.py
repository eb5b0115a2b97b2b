"""Run by tests/integration/test_cluster.py in a process of its own (a JVM has one Spark
context, and the test session's is local): ingest, the feature job, a point-in-time
training set and scoring by a model as batch scoring does, of a small simulated fleet, on
the Spark master or Spark Connect server given, into the lakehouse given.

    python -m tests.cluster_job <lakehouse root> <master URL | Spark Connect URL>

The cluster's cost is its fixed overhead per Spark job, not the rows, so the run is kept to
what proves the point: the telemetry data set (with the machines it references and the
failures that label it), the telemetry feature table, and a training set of its features.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import pyspark.sql.functions as F
from mlflow.models import infer_signature
from pyspark.sql import DataFrame

from featurehouse.features.build import build_feature_tables
from featurehouse.ingest import ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.scoring import with_predictions
from featurehouse.spark import get_spark
from featurehouse.store.pit import FeatureLookup
from featurehouse.store.training_set import build_training_set
from featurehouse.training.evaluate import model_inputs
from featurehouse.training.labels import spine_rows, with_label
from featurehouse.training.models import boosted_trees_regressor
from featurehouse.training.registry import model_requirements
from featurehouse.training.train import SKOPS_TRUSTED_TYPES
from featurehouse.usecase import EVENT_TIMESTAMP, Regression, Spine
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
PREDICTIONS = "cluster_predictions"
# The use case cut to what the run builds: its telemetry features, a score to predict.
SCORED = replace(
    USE_CASE,
    tables=(TELEMETRY_FEATURES,),
    task=Regression(prediction="failure_score"),
    segments=(),
)


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
    training_set = build_training_set(entities, [lookup], label=USE_CASE.label.name)
    lake.overwrite(training_set, TRAINING_SET)
    lake.overwrite(scored_by_a_fitted_model(lake.read(TRAINING_SET), lake), PREDICTIONS)


def scored_by_a_fitted_model(training_set: DataFrame, lake: Lakehouse) -> DataFrame:
    """The training set scored the way batch scoring scores (`with_predictions`: the
    model in `mapInArrow` on the executors), by a model fitted on it here: the same in
    every run, since the rows and the seed are."""
    inputs = model_inputs(SCORED, {"max_iter": 20, "random_state": 0})
    rows = training_set.toPandas().sort_values([MACHINE_ID, EVENT_TIMESTAMP])
    features = rows[inputs.columns].astype("float64")
    model = boosted_trees_regressor(inputs).fit(features, rows[USE_CASE.label.name])
    path = lake.settings.storage.root / "cluster-model"
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(features, model.predict(features)),
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=model_requirements(),  # given: inferring them takes 20 s
    )
    return with_predictions(training_set, str(path), SCORED)


def main(root: str, master: str) -> None:
    """`master` is a standalone master (spark://...) or a Spark Connect server (sc://...),
    reached the way a person would: FEATUREHOUSE_SPARK_REMOTE."""
    if master.startswith("sc://"):
        os.environ["FEATUREHOUSE_SPARK_REMOTE"] = master
        settings = local_settings(Path(root))
        spark = get_spark(settings)
        assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
    else:
        settings = local_settings(Path(root), spark={"master": master})
        spark = get_spark(settings)
        assert spark.conf.get("spark.master") == master, spark.conf.get("spark.master")
    build(Lakehouse(spark, settings, USE_CASE.name))
    print("cluster job done")


if __name__ == "__main__":
    main(*sys.argv[1:])
