"""The whole pipeline end to end on a small simulated fleet, with real Spark, Delta, Feast, MLflow."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from featurehouse import cli
from featurehouse.features import FEATURE_TABLES
from featurehouse.io import Lakehouse
from featurehouse.training.registry import CHALLENGER, CHAMPION, configure_mlflow
from featurehouse.training.train import model_features
from tests.integration.conftest import E2E_SIMULATION

MACHINES, DAYS = E2E_SIMULATION["machines"], E2E_SIMULATION["days"]
HOURS = MACHINES * DAYS * 24


@pytest.fixture(scope="module")
def run(pipeline_run):
    return pipeline_run


@pytest.fixture(scope="module")
def lake(spark, run):
    return Lakehouse(spark, run.settings)


def table_counts(lake: Lakehouse) -> dict[str, int]:
    keys = type(lake.settings.tables).model_fields
    return {key: lake.read(key).count() for key in keys if lake.exists(key)}


def test_every_table_is_written_with_the_expected_rows(lake):
    counts = table_counts(lake)

    assert counts["telemetry"] == HOURS
    assert counts["machines"] == MACHINES
    for table in FEATURE_TABLES:
        expected = MACHINES if table.table_key == "machine_attributes" else HOURS
        assert counts[table.table_key] == expected, table.table_key
    assert counts["predictions"] == MACHINES
    numeric, _ = model_features()
    assert counts["drift_metrics"] == len(numeric) + 1
    assert "quarantine" not in counts  # the simulator writes no bad rows


def test_feature_tables_match_their_declarations(lake):
    for table in FEATURE_TABLES:
        df = lake.read(table.table_key)
        assert df.columns == table.columns
        types = dict(df.dtypes)
        assert {f.name: types[f.name] for f in table.features} == {
            f.name: f.dtype for f in table.features
        }
        keys = df.groupBy("machine_id", "event_timestamp").count().where("count > 1")
        assert keys.count() == 0, f"{table.table_key} has duplicate keys"


def test_training_logs_metrics_model_and_feature_references(run):
    settings = run.settings
    configure_mlflow(settings)
    client = MlflowClient()
    result = run.outcome.training[0]
    logged = client.get_run(result.run_id).data

    for metric in ("precision", "recall", "f1", "roc_auc", "pr_auc"):
        assert 0.0 <= logged.metrics[f"test_{metric}"] <= 1.0
    assert logged.params["feature_service"] == settings.feast.feature_service
    features = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/features.json"))
    declared = {f"{t.view_name}:{f.name}" for t in FEATURE_TABLES for f in t.features}
    assert set(features["feature_references"]) == declared
    model_version = client.get_model_version(settings.mlflow.model_name, result.model.version)
    assert model_version.run_id == result.run_id
    assert client.get_model_version_by_alias(settings.mlflow.model_name, CHALLENGER).version


def test_model_learns_the_failure_signal(run):
    metrics = run.outcome.training[0].test_metrics
    # PR AUC of a random ranking equals the positive rate; the simulated wear signal
    # should let the model do far better.
    assert metrics["pr_auc"] > 3 * metrics["positive_rate"]
    assert metrics["roc_auc"] > 0.75


def test_rising_wear_signals_raise_the_failure_probability(run):
    """Behaviour, not just a score: the same machine-hour with the signs of a worn
    component (more errors, higher vibration) must look riskier."""
    configure_mlflow(run.settings)
    model = mlflow.sklearn.load_model(run.outcome.training[0].model.uri)
    numeric, categorical = model_features()
    reference = mlflow.artifacts.download_artifacts(
        run_id=run.outcome.training[0].run_id, artifact_path="reference/training_reference.parquet"
    )
    typical = pd.read_parquet(reference)[categorical + numeric].median(numeric_only=True)
    healthy = pd.DataFrame([typical])
    healthy.insert(0, "model", "model3")
    worn = healthy.copy()
    worn["errors_count_24h"] = 4
    worn["error4_count_24h"] = 3
    for window in ("3h", "24h"):
        worn[f"vibration_mean_{window}"] = healthy[f"vibration_mean_{window}"] * 1.3

    p_healthy, p_worn = model.predict_proba(pd.concat([healthy, worn]))[:, 1]

    assert p_worn > p_healthy


def test_first_model_becomes_champion(run):
    configure_mlflow(run.settings)
    champion = MlflowClient().get_model_version_by_alias(run.settings.mlflow.model_name, CHAMPION)
    assert str(champion.version) == run.outcome.training[0].champion_version


def test_scoring_writes_one_prediction_per_machine_with_the_champion(lake, run):
    predictions = lake.read("predictions")
    newest = lake.read("telemetry").groupBy("machine_id").agg(F.max("timestamp").alias("ts"))
    joined = predictions.join(
        newest,
        (predictions.machine_id == newest.machine_id) & (predictions.event_timestamp == newest.ts),
    )
    assert joined.count() == MACHINES
    rows = predictions.collect()
    assert {r["model_version"] for r in rows} == {run.outcome.training[0].champion_version}
    assert all(0.0 <= r["failure_probability"] <= 1.0 for r in rows)
    assert all(r["predicted_failure"] in (0, 1) for r in rows)


def test_drift_metrics_cover_every_numeric_feature_and_the_prediction(lake, run):
    rows = lake.read("drift_metrics").collect()
    numeric, _ = model_features()
    assert sorted(r["column"] for r in rows) == sorted([*numeric, "failure_probability"])
    assert {r["dataset_drifted"] for r in rows} == {run.outcome.drift.drifted}
    for r in rows:
        assert r["current_rows"] > 0 and r["reference_rows"] > 0
        assert r["psi"] is not None and not math.isnan(r["psi"])


def test_online_features_equal_the_newest_offline_row(lake, run):
    machine = run.outcome.online_machine
    online = run.outcome.online
    newest = (
        lake.read("telemetry_features")
        .where(F.col("machine_id") == machine)
        .orderBy(F.col("event_timestamp").desc())
        .first()
    )
    assert online["machine_id"] == [machine]
    for feature in ("volt_mean_24h", "vibration_std_3h"):
        assert online[feature][0] == pytest.approx(newest[feature])
    assert online["model"][0] is not None


def test_rerunning_the_jobs_changes_no_table_and_keeps_the_champion(lake, run):
    before = table_counts(lake)
    settings = run.settings

    cli.run_ingest(settings)
    cli.run_features(settings)
    cli.run_materialize(settings)
    retrained = cli.run_train(settings)
    cli.run_score(settings)
    cli.run_drift(settings)

    assert table_counts(lake) == before
    # Same data, same seed: the retrained model scores the same, so it does not take over.
    assert retrained.promoted is False
    assert retrained.champion_version == run.outcome.training[0].champion_version


def test_cli_prints_a_machines_online_features(run, monkeypatch):
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(run.conf_dir))

    result = CliRunner().invoke(cli.app, ["online", "--machine-id", "3"])

    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.strip().splitlines())
    assert lines["machine_id"] == "[3]"
    assert set(lines) >= {f.name for t in FEATURE_TABLES for f in t.features}
    assert lines["volt_mean_24h"] != "[None]"


def test_cli_rebuilds_a_runs_training_set(run, monkeypatch, tmp_path):
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(run.conf_dir))
    run_id = run.outcome.training[0].run_id
    configure_mlflow(run.settings)
    spec = mlflow.artifacts.load_dict(f"runs:/{run_id}/training_set.json")

    result = CliRunner().invoke(
        cli.app, ["training-set", "rebuild", "--run-id", run_id, "--output", str(tmp_path / "set")]
    )

    assert result.exit_code == 0, result.output
    assert f"{spec['entity_rows']} rows" in result.output
    rebuilt = pd.read_parquet(tmp_path / "set")
    assert len(rebuilt) == spec["entity_rows"]
    assert {f for lookup in spec["lookups"] for f in lookup["features"]} <= set(rebuilt.columns)
