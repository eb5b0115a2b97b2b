"""The exploration notebook: valid Databricks source, and it runs top to bottom on a real lakehouse."""

from __future__ import annotations

import runpy
from pathlib import Path

import pyspark.sql.functions as F
import pytest

from featurehouse.io import Lakehouse
from featurehouse.usecase import EVENT_TIMESTAMP
from tests.helpers import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore_features.py"
GATE_NOTEBOOK = PROJECT_ROOT / "notebooks" / "retrain_gate.py"
HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
NAME = "predictive_maintenance"


def notebook_cells(path: Path = NOTEBOOK) -> list[list[str]]:
    lines = path.read_text().splitlines()
    cells: list[list[str]] = [[]]
    for line in lines[1:]:
        if line == SEPARATOR:
            cells.append([])
        else:
            cells[-1].append(line)
    return [[line for line in cell if line.strip()] for cell in cells]


@pytest.mark.parametrize(("path", "code_cells"), [(NOTEBOOK, 5), (GATE_NOTEBOOK, 3)])
def test_notebook_is_databricks_source_format(path, code_cells):
    text = path.read_text()
    assert text.splitlines()[0] == HEADER
    cells = notebook_cells(path)
    assert len(cells) >= code_cells
    assert all(cells), "empty cell"
    for cell in cells:
        if any(line.startswith("# MAGIC") for line in cell):
            # Markdown, or the cell that installs the project's wheel.
            assert cell[0] == "# MAGIC %md" or cell[0].startswith("# MAGIC %pip install"), cell[0]
            assert all(line.startswith("# MAGIC") for line in cell), cell
    markdown = [c for c in cells if c[0] == "# MAGIC %md"]
    assert markdown and cells[0][0] == "# MAGIC %md", "starts with a markdown introduction"
    assert len(cells) - len(markdown) >= code_cells, f"at least {code_cells} code cells"
    # Spark Connect and serverless compute have neither.
    assert ".sparkContext" not in text
    assert ".rdd" not in text


@pytest.fixture(scope="module")
def notebook(pipeline_run) -> dict:
    """The notebook's globals after running it as a script against the e2e lakehouse."""
    pipeline_run.outcome(NAME)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATUREHOUSE_CONF_DIR", str(pipeline_run.conf_dir))
        mp.setenv("FEATUREHOUSE_ENV", "local")
        mp.setenv("FEATUREHOUSE_USE_CASE", NAME)
        return runpy.run_path(str(NOTEBOOK), run_name="__main__")


@pytest.fixture(scope="module")
def lake(pipeline_run, spark) -> Lakehouse:
    return Lakehouse(spark, pipeline_run.settings, NAME)


@pytest.fixture(scope="module")
def use_case(pipeline_run):
    return pipeline_run.use_cases[NAME]


@pytest.mark.e2e
def test_notebook_reads_the_configured_lakehouse(notebook, pipeline_run):
    assert notebook["settings"].storage.root == pipeline_run.settings.storage.root
    assert notebook["use_case"].name == NAME


@pytest.mark.e2e
def test_row_counts_match_every_existing_table(notebook, lake):
    expected = {k: lake.read(k).count() for k in lake.table_keys()}
    assert notebook["row_counts"] == expected
    for key in ("telemetry", "failures", "machine_telemetry_features", "predictions"):
        assert expected.get(key, 0) > 0, key


@pytest.mark.e2e
def test_declarations_list_every_declared_feature(notebook, lake, use_case):
    declarations = notebook["declarations"]
    declared = [(t.view_name, f.name) for t in use_case.tables for f in t.features]
    assert list(zip(declarations["feature_view"], declarations["feature"], strict=True)) == declared
    assert declarations["description"].str.len().gt(0).all()
    assert set(declarations["table"]) == {lake.name(t.name) for t in use_case.tables}


@pytest.mark.e2e
def test_feature_summary_covers_every_row(notebook):
    summary = notebook["feature_summary"]
    rows = notebook["row_counts"]["machine_telemetry_features"]
    assert int(summary.loc["count", "vibration_mean_24h"]) == rows
    assert float(summary.loc["min", "vibration_mean_24h"]) > 0


@pytest.mark.e2e
def test_entity_rows_are_that_entitys_newest(notebook, lake):
    machine_id = notebook["entity"]["machine_id"]
    rows = notebook["entity_rows"].collect()
    assert 0 < len(rows) <= 24
    assert {r["machine_id"] for r in rows} == {machine_id}
    times = [r[EVENT_TIMESTAMP] for r in rows]
    assert times == sorted(times, reverse=True)
    newest = (
        lake.read("machine_telemetry_features")
        .where(F.col("machine_id") == machine_id)
        .agg(F.max(EVENT_TIMESTAMP))
        .first()[0]
    )
    assert times[0] == newest


@pytest.mark.e2e
def test_vibration_and_errors_are_higher_before_failures(notebook, use_case):
    signal = notebook["signal"].set_index(use_case.label.name)
    assert list(signal.index) == [0, 1]
    assert signal.loc[1, "rows"] > 0
    assert signal.loc[1, "mean_vibration_mean_24h"] > signal.loc[0, "mean_vibration_mean_24h"]
    assert signal.loc[1, "mean_errors_count_24h"] > signal.loc[0, "mean_errors_count_24h"]


@pytest.mark.e2e
def test_history_reaches_the_current_version(notebook, lake):
    versions = [r["version"] for r in notebook["history"].collect()]
    assert versions[0] == lake.version("machine_telemetry_features")
    assert 0 in versions


@pytest.mark.e2e
def test_latest_drift_and_predictions_come_from_the_pipeline_run(notebook, pipeline_run):
    outcome = pipeline_run.outcome(NAME)
    drift = notebook["latest_drift"]
    assert drift is not None
    assert drift["window_end"].nunique() == 1
    assert set(drift["column"]) == {c.column for c in outcome.drift.columns}

    predictions = notebook["latest_predictions"]
    assert predictions is not None
    assert len(predictions) == outcome.scoring.entities
    probabilities = predictions["failure_probability"].tolist()
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["predictive_maintenance", "demand_forecasting"])
def test_the_retrain_gate_decides_from_the_tables_as_the_pipeline_did(pipeline_run, name):
    from featurehouse.monitoring.gate import decide

    outcome = pipeline_run.outcome(name)
    expected = decide(
        name,
        outcome.drift.drifted,
        outcome.performance.dropped,
        pipeline_run.settings.use_case(name),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATUREHOUSE_CONF_DIR", str(pipeline_run.conf_dir))
        mp.setenv("FEATUREHOUSE_ENV", "local")
        mp.setenv("FEATUREHOUSE_USE_CASE", name)
        decision = runpy.run_path(str(GATE_NOTEBOOK), run_name="__main__")["decision"]

    assert decision.retrain == expected.retrain == (len(outcome.training) > 1)
    assert len(decision.reasons) == len(expected.reasons)
