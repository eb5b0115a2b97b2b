"""The exploration notebook: valid Databricks source, and it runs top to bottom on a real lakehouse."""

from __future__ import annotations

import runpy

import pyspark.sql.functions as F
import pytest

from featurehouse.features import ENTITY_KEY, EVENT_TIMESTAMP, FEATURE_TABLES
from featurehouse.io import Lakehouse
from tests.helpers import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore_features.py"
HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"


def notebook_cells() -> list[list[str]]:
    lines = NOTEBOOK.read_text().splitlines()
    cells: list[list[str]] = [[]]
    for line in lines[1:]:
        if line == SEPARATOR:
            cells.append([])
        else:
            cells[-1].append(line)
    return [[line for line in cell if line.strip()] for cell in cells]


def test_notebook_is_databricks_source_format():
    text = NOTEBOOK.read_text()
    assert text.splitlines()[0] == HEADER
    cells = notebook_cells()
    assert len(cells) >= 5
    assert all(cells), "empty cell"
    for cell in cells:
        if any(line.startswith("# MAGIC") for line in cell):
            assert cell[0] == "# MAGIC %md", cell[0]
            assert all(line.startswith("# MAGIC") for line in cell), cell
    markdown = [c for c in cells if c[0] == "# MAGIC %md"]
    assert markdown and cells[0][0] == "# MAGIC %md", "starts with a markdown introduction"
    assert len(cells) - len(markdown) >= 5, "at least five code cells"
    # Spark Connect and serverless compute have neither.
    assert ".sparkContext" not in text
    assert ".rdd" not in text


@pytest.fixture(scope="module")
def notebook(pipeline_run) -> dict:
    """The notebook's globals after running it as a script against the e2e lakehouse."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATUREHOUSE_CONF_DIR", str(pipeline_run.conf_dir))
        mp.setenv("FEATUREHOUSE_ENV", "local")
        return runpy.run_path(str(NOTEBOOK), run_name="__main__")


@pytest.fixture(scope="module")
def lake(pipeline_run, spark) -> Lakehouse:
    return Lakehouse(spark, pipeline_run.settings)


@pytest.mark.e2e
def test_notebook_reads_the_configured_lakehouse(notebook, pipeline_run):
    assert notebook["settings"].storage.root == pipeline_run.settings.storage.root
    assert notebook["settings"].tables == pipeline_run.settings.tables


@pytest.mark.e2e
def test_row_counts_match_every_existing_table(notebook, lake):
    keys = type(lake.settings.tables).model_fields
    expected = {k: lake.read(k).count() for k in keys if lake.exists(k)}
    assert notebook["row_counts"] == expected
    for key in ("telemetry", "failures", "telemetry_features", "predictions", "drift_metrics"):
        assert expected.get(key, 0) > 0, key


@pytest.mark.e2e
def test_declarations_list_every_declared_feature(notebook, lake):
    declarations = notebook["declarations"]
    declared = [(t.view_name, f.name) for t in FEATURE_TABLES for f in t.features]
    assert len(declarations) == len(declared)
    assert list(zip(declarations["feature_view"], declarations["feature"], strict=True)) == declared
    assert declarations["description"].str.len().gt(0).all()
    assert set(declarations["table"]) == {lake.name(t.table_key) for t in FEATURE_TABLES}


@pytest.mark.e2e
def test_telemetry_summary_covers_every_row(notebook):
    summary = notebook["telemetry_summary"]
    rows = notebook["row_counts"]["telemetry_features"]
    assert int(summary.loc["count", "vibration_mean_24h"]) == rows
    assert float(summary.loc["min", "vibration_mean_24h"]) > 0


@pytest.mark.e2e
def test_machine_rows_are_that_machines_newest(notebook, lake):
    machine_id = notebook["machine_id"]
    rows = notebook["machine_rows"].collect()
    assert 0 < len(rows) <= 24
    assert {r[ENTITY_KEY] for r in rows} == {machine_id}
    times = [r[EVENT_TIMESTAMP] for r in rows]
    assert times == sorted(times, reverse=True)
    newest = (
        lake.read("telemetry_features")
        .where(F.col(ENTITY_KEY) == machine_id)
        .agg(F.max(EVENT_TIMESTAMP))
        .first()[0]
    )
    assert times[0] == newest


@pytest.mark.e2e
def test_vibration_and_errors_are_higher_before_failures(notebook):
    signal = notebook["signal"].set_index("failure_within_24h")
    assert list(signal.index) == [0, 1]
    assert signal.loc[1, "rows"] > 0
    assert signal["rows"].sum() <= notebook["row_counts"]["telemetry_features"]
    assert signal.loc[1, "mean_vibration_mean_24h"] > signal.loc[0, "mean_vibration_mean_24h"]
    assert signal.loc[1, "mean_errors_count_24h"] > signal.loc[0, "mean_errors_count_24h"]


@pytest.mark.e2e
def test_history_reaches_the_current_version(notebook, lake):
    versions = [r["version"] for r in notebook["history"].collect()]
    assert versions[0] == lake.version("telemetry_features")
    assert 0 in versions


@pytest.mark.e2e
def test_latest_drift_and_predictions_come_from_the_pipeline_run(notebook, pipeline_run):
    drift = notebook["latest_drift"]
    report = pipeline_run.outcome.drift
    assert drift is not None
    assert drift["window_end"].nunique() == 1
    assert set(drift["column"]) == {c.column for c in report.columns}
    assert set(drift["model_version"]) == {report.model_version}

    predictions = notebook["latest_predictions"]
    scoring = pipeline_run.outcome.scoring
    assert predictions is not None
    assert len(predictions) == scoring.machines
    assert set(predictions["model_version"]) == {scoring.model_version}
    probabilities = predictions["failure_probability"].tolist()
    assert probabilities == sorted(probabilities, reverse=True)
