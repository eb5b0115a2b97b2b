"""Predictive maintenance end to end: what is specific to the fleet (the shared checks are
in test_pipeline.py)."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from featurehouse.io import Lakehouse
from featurehouse.training.evaluate import model_inputs
from featurehouse.training.registry import configure_mlflow
from featurehouse.training.train import REFERENCE_ARTIFACT
from tests.integration.conftest import E2E_USE_CASES

NAME = "predictive_maintenance"
SIMULATION = E2E_USE_CASES[NAME]["simulation"]
MACHINES, HOURS = SIMULATION["machines"], SIMULATION["machines"] * SIMULATION["days"] * 24
pytestmark = pytest.mark.e2e


def test_every_table_holds_one_row_per_machine_hour(spark, pipeline_run):
    pipeline_run.outcome(NAME)
    lake = Lakehouse(spark, pipeline_run.settings, NAME)
    use_case = pipeline_run.use_cases[NAME]
    counts = {key: lake.read(key).count() for key in lake.table_keys()}

    assert counts["telemetry"] == HOURS
    assert counts["machines"] == MACHINES
    for table in use_case.tables:
        expected = MACHINES if table.name == "machine_attributes" else HOURS
        assert counts[table.name] == expected, table.name
    assert counts["predictions"] == MACHINES
    baseline = lake.read("drift_metrics").where("comparison = 'baseline' AND slice_key IS NULL")
    assert baseline.count() == len(use_case.features) + 1  # every feature, and the prediction
    assert "quarantine" not in counts  # the simulator writes no bad rows


def test_rising_wear_signals_raise_the_failure_probability(pipeline_run):
    """Behaviour, not just a score: the same machine-hour with the signs of a worn
    component (more errors, higher vibration) must look riskier."""
    result = pipeline_run.outcome(NAME).training[0]
    configure_mlflow(pipeline_run.settings)
    model = mlflow.sklearn.load_model(result.model.uri)
    inputs = model_inputs(pipeline_run.use_cases[NAME], {})
    reference = mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path=REFERENCE_ARTIFACT
    )
    typical = pd.read_parquet(reference)[list(inputs.numeric)].median()
    healthy = pd.DataFrame([typical])
    healthy.insert(0, "model", "model3")
    worn = healthy.copy()
    worn["errors_count_24h"] = 4
    worn["error4_count_24h"] = 3
    for window in ("3h", "24h"):
        worn[f"vibration_mean_{window}"] = healthy[f"vibration_mean_{window}"] * 1.3

    p_healthy, p_worn = model.predict_proba(pd.concat([healthy, worn])[inputs.columns])[:, 1]

    assert p_worn > p_healthy
