"""Every use case end to end, with real Spark, Delta, Feast and MLflow: the same checks for
each, read from its declarations (use-case-specific checks are in test_<use case>.py)."""

from __future__ import annotations

import json
import math

import mlflow
import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import Window

from featurehouse import jobs
from featurehouse.io import Lakehouse
from featurehouse.scoring import prediction_columns
from featurehouse.training.registry import CHALLENGER, CHAMPION, configure_mlflow
from featurehouse.usecase import EVENT_TIMESTAMP, Anomaly, Classification, micros

USE_CASES = ["predictive_maintenance", "demand_forecasting", "bike_sharing", "anomaly_detection"]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(pipeline_run):
    return pipeline_run


def lake_of(spark, run, name: str) -> Lakehouse:
    run.outcome(name)  # skips, with the reason, a use case that did not run
    return Lakehouse(spark, run.settings, name)


def table_counts(lake: Lakehouse) -> dict[str, int]:
    return {key: lake.read(key).count() for key in lake.table_keys()}


@pytest.mark.parametrize("name", USE_CASES)
def test_every_declared_table_is_written_with_its_declared_columns(spark, run, name):
    lake, use_case = lake_of(spark, run, name), run.use_cases[name]

    for dataset in use_case.datasets:
        bronze = lake.read(dataset.name)
        assert bronze.count() > 0, dataset.name
        assert list(bronze.columns[: len(dataset.bronze_columns)]) == list(dataset.bronze_columns)
    for table in use_case.tables:
        df = lake.read(table.name)
        assert df.columns == table.columns
        types = dict(df.dtypes)
        assert {c: types[c] for c in table.columns} == table.column_types
        duplicated = df.groupBy(*table.row_key).count().where("count > 1")
        assert duplicated.count() == 0, f"{table.name} has duplicate keys"
        assert df.count() > 0, table.name


@pytest.mark.parametrize("name", USE_CASES)
def test_training_logs_metrics_model_and_feature_references(run, name):
    result = run.outcome(name).training[0]
    use_case, settings = run.use_cases[name], run.settings
    configure_mlflow(settings)
    client = MlflowClient()
    logged = client.get_run(result.run_id).data

    for metric in use_case.task.metrics:
        assert f"test_{metric}" in logged.metrics, metric
        assert f"validation_{metric}" in logged.metrics, metric
    assert logged.params["feature_service"] == settings.feature_service(name)
    assert logged.params["use_case"] == name
    features = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/features.json"))
    declared = {f"{t.view_name}:{f.name}" for t in use_case.tables for f in t.features}
    assert set(features["feature_references"]) == declared
    model_name = settings.model_name(name, use_case.model_name)
    assert client.get_model_version(model_name, result.model.version).run_id == result.run_id
    assert client.get_model_version_by_alias(model_name, CHALLENGER).version
    champion = client.get_model_version_by_alias(model_name, CHAMPION)
    validation = run.outcome(name).validation[0]
    assert validation.promoted, validation.verdict  # the first model becomes champion
    assert str(champion.version) == result.model.version == validation.champion_version


@pytest.mark.parametrize("name", USE_CASES)
def test_the_model_beats_its_reference(run, name):
    """A classifier ranks far better than chance; a regressor beats the seasonal-naive
    baseline its use case declares, on the same test window; a detector ranks and finds
    the labelled windows better than its declared rule (the simulator's injected anomalies)."""
    result = run.outcome(name).training[0]
    metrics, baseline = result.test_metrics, result.baseline_metrics
    if isinstance(run.use_cases[name].task, Anomaly):
        assert metrics["pr_auc"] > baseline["pr_auc"], (metrics, baseline)
        assert metrics["window_recall"] >= baseline["window_recall"], (metrics, baseline)
        assert metrics["point_f1"] > baseline["point_f1"], (metrics, baseline)
    if isinstance(run.use_cases[name].task, Classification):
        # PR AUC of a random ranking equals the positive rate.
        assert metrics["pr_auc"] > 3 * metrics["positive_rate"]
        assert metrics["roc_auc"] > 0.75
    else:
        assert metrics["rmse"] < baseline["rmse"], (metrics, baseline)
        assert metrics["mae"] < baseline["mae"], (metrics, baseline)
        assert metrics["r2"] > 0.5


@pytest.mark.parametrize("name", USE_CASES)
def test_scoring_writes_a_prediction_per_entity_at_its_newest_time_or_window(spark, run, name):
    """One row per entity at its newest time; with `scoring.window`, one per spine row of
    the entity within that window of its newest."""
    lake, use_case = lake_of(spark, run, name), run.use_cases[name]
    keys, source = list(use_case.keys), use_case.spine.source
    window = run.settings.use_case(name).scoring.window
    newest = lake.read(source.name).groupBy(*keys).agg(F.max(source.event_time).alias("ts"))
    expected = newest
    if window is not None:
        rows = lake.read(source.name).join(newest, keys)
        age = F.unix_micros("ts") - F.unix_micros(source.event_time)
        expected = rows.where(age < micros(window)).select(*keys, source.event_time).distinct()

    predictions = lake.read("predictions")
    matched = predictions.join(expected.withColumnRenamed(source.event_time, "ts"), keys).where(
        F.col(EVENT_TIMESTAMP) == F.col("ts")
    )

    assert predictions.count() == expected.count() == matched.count()
    assert (window is None) == (predictions.count() == newest.count())
    rows = predictions.collect()
    assert {r["model_version"] for r in rows} == {run.outcome(name).scoring.model_version}
    value = use_case.task.prediction
    assert set(prediction_columns(use_case)) <= set(predictions.columns)
    if isinstance(use_case.task, Classification):
        assert all(0.0 <= r[value] <= 1.0 for r in rows)
        assert all(r[use_case.task.flag] in (0, 1) for r in rows)
    else:
        assert all(math.isfinite(r[value]) and r[value] >= 0 for r in rows)


@pytest.mark.parametrize("name", USE_CASES)
def test_each_scoring_run_records_its_rows_and_duration_beside_performance(spark, run, name):
    lake, outcome = lake_of(spark, run, name), run.outcome(name)
    scoring = outcome.scoring

    runs = lake.read("scoring_runs").toPandas()

    mine = runs[runs["score_run_id"] == scoring.score_run_id]
    assert len(mine) == 1
    assert mine["rows"].iloc[0] == scoring.entities and mine["seconds"].iloc[0] > 0
    assert mine["model_version"].iloc[0] == scoring.model_version
    assert f"scored {scoring.entities:,d} rows with v{scoring.model_version}" in (
        outcome.performance.operations
    )


@pytest.mark.parametrize("name", USE_CASES)
def test_the_service_predicts_the_batch_prediction_for_the_demo_entity(spark, run, name):
    lake, use_case = lake_of(spark, run, name), run.use_cases[name]
    outcome = run.outcome(name)
    served, value = outcome.served, use_case.task.prediction
    mine = F.lit(True)
    for key, key_value in outcome.online_entity.items():
        mine = mine & (F.col(key) == key_value)
    newest_first = Window.orderBy(F.col(EVENT_TIMESTAMP).desc())
    batch = lake.read("predictions").where(mine).withColumn("_n", F.row_number().over(newest_first))
    (batch,) = batch.where("_n = 1").collect()

    # The simulated data are older than the views' TTL: served, and said to be expired.
    assert served["status"] == "ok" or served["status"].startswith("expired "), served
    assert served[value] is not None
    assert served["model"]["version"] == str(outcome.validation[-1].champion_version)
    if batch["model_version"] == served["model"]["version"]:  # else retrained after scoring
        assert served[value] == pytest.approx(batch[value], rel=1e-9)


@pytest.mark.parametrize("name", USE_CASES)
def test_drift_metrics_cover_every_feature_and_the_prediction(spark, run, name):
    lake, use_case = lake_of(spark, run, name), run.use_cases[name]
    rows = lake.read("drift_metrics").where("comparison = 'baseline' AND slice_key IS NULL")
    rows = rows.collect()
    features = [f.name for f in use_case.features]

    assert sorted(r["column"] for r in rows) == sorted([*features, use_case.task.prediction])
    assert {r["dataset_drifted"] for r in rows} == {run.outcome(name).drift.drifted}
    assert all(r["current_rows"] > 0 and r["reference_rows"] > 0 for r in rows)


@pytest.mark.parametrize("name", USE_CASES)
def test_online_features_equal_the_newest_offline_row_of_every_view(spark, run, name):
    lake, use_case = lake_of(spark, run, name), run.use_cases[name]
    outcome = run.outcome(name)
    entity, online = outcome.online_entity, outcome.online

    for key, value in entity.items():
        assert online[key] == [value]
    for table in use_case.tables:
        mine = F.lit(True)
        for key in table.keys:
            mine = mine & (F.col(key) == entity[key])
        newest_first = Window.orderBy(F.col(table.timestamp).desc())
        newest = (
            (lake.read(table.name).where(mine).withColumn("_n", F.row_number().over(newest_first)))
            .where("_n = 1")
            .first()
        )
        for feature in table.features:
            expected, got = newest[feature.name], online[feature.name][0]
            if isinstance(expected, float):
                assert got == pytest.approx(expected, nan_ok=True), feature.name
            else:
                assert got == expected, feature.name


@pytest.mark.parametrize("name", USE_CASES)
def test_rerunning_the_jobs_changes_no_table_and_keeps_the_champion(spark, run, name):
    """Every job that writes a table, again on the same data. (Training writes no table; that
    a retrained model no better than the champion does not take over is the validation
    step's, tested in test_model_lifecycle.)"""
    lake, use_case, settings = lake_of(spark, run, name), run.use_cases[name], run.settings
    before = table_counts(lake)
    latest = run.outcome(name).validation[-1]

    jobs.ingest(settings, use_case)
    jobs.features(settings, use_case)
    jobs.materialize(settings, use_case)
    scoring = jobs.score(settings, use_case)
    jobs.drift(settings, use_case)
    jobs.performance(settings, use_case)

    assert table_counts(lake) == before
    assert scoring.inserted == 0  # the same scoring run replaced its own rows
    assert scoring.model_version == str(latest.champion_version)


@pytest.mark.use_case("predictive_maintenance")
def test_the_demo_summary_shows_each_use_cases_verdicts_report_and_served_prediction(run):
    """Over the use cases this worker has run (predictive maintenance at least)."""
    from featurehouse.summary import pipeline_summary

    run.outcome("predictive_maintenance")
    names = [name for name in USE_CASES if name in run.outcomes and not run.outcomes[name].skipped]
    summary = pipeline_summary(
        run.settings, [run.use_cases[n] for n in names], [run.outcomes[n] for n in names]
    )

    for name in names:
        outcome = run.outcomes[name]
        assert f"--- {name}: " in summary
        assert outcome.drift.summary in summary
        assert f"performance: {outcome.performance.verdict}" in summary
        assert f"report: {outcome.report.path}" in summary
        assert f"v{outcome.served['model']['version']}" in summary
    assert summary.count("  service (") == len(names)
