"""The `featurehouse` command: every job per use case, and one clear line for bad input."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from featurehouse.cli import app
from featurehouse.training.registry import configure_mlflow
from tests.helpers import local_overrides, write_conf_dir


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def empty_project(tmp_path, monkeypatch):
    """A conf/ pointing at an empty lakehouse."""
    conf_dir = write_conf_dir(tmp_path, local_overrides(tmp_path / "lake"))
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(conf_dir))
    return tmp_path


def test_use_cases_lists_each_with_its_entity_tables_task_and_model():
    result = invoke("use-cases")

    assert result.exit_code == 0, result.output
    assert "predictive_maintenance: Will a machine have a component failure" in result.output
    assert "entity     store_item (store_id bigint, item_id bigint)" in result.output
    assert "task       regression of units_next_7d over 1w, every 1d per entity" in result.output
    assert "model      predictive_maintenance.machine_failure" in result.output


def test_a_missing_input_folder_is_one_line(empty_project):
    missing = empty_project / "nowhere"

    result = invoke("ingest", "--use-case", "predictive_maintenance", "--input", str(missing))

    assert result.exit_code == 2
    assert result.output.strip() == f"error: input folder not found: {missing}"


def test_a_misspelt_environment_is_one_line():
    result = invoke("ingest", "--env", "prdo")

    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown environment 'prdo': choose one of local, dev, staging, prod"
    )


def test_an_unknown_use_case_names_the_known_ones():
    result = invoke("train", "--use-case", "maintenance")

    assert result.exit_code == 2
    assert "error: unknown use case 'maintenance': known use cases are" in result.output
    assert "Traceback" not in result.output


def test_a_job_on_a_table_that_does_not_exist_yet_is_one_line(empty_project):
    """The feature job before any ingest: no stack trace, the table and what to do."""
    result = invoke("features", "--use-case", "predictive_maintenance")

    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: predictive_maintenance.machine_telemetry_features:")
    assert "source table predictive_maintenance.telemetry does not exist: ingest" in result.output
    assert "Traceback" not in result.output and "PATH_NOT_FOUND" not in result.output


def test_training_before_any_data_is_one_line(empty_project):
    result = invoke("train", "--use-case", "demand_forecasting")

    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(
        "error: table demand_forecasting.sales does not exist yet: run the job that writes it"
    )


@pytest.mark.e2e
@pytest.mark.use_case("predictive_maintenance")
def test_online_reads_a_single_key_entity_by_its_bare_value(pipeline_run, monkeypatch):
    pipeline_run.outcome("predictive_maintenance")
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(pipeline_run.conf_dir))

    result = invoke("online", "--use-case", "predictive_maintenance", "--key", "3")

    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.strip().splitlines())
    assert lines["machine_id"] == "[3]"
    use_case = pipeline_run.use_cases["predictive_maintenance"]
    assert set(lines) >= {f.name for f in use_case.features}
    assert lines["volt_mean_24h"] != "[None]"


@pytest.mark.e2e
@pytest.mark.use_case("demand_forecasting")
def test_online_reads_a_composite_key_entity_by_name_value_pairs(pipeline_run, monkeypatch):
    pipeline_run.outcome("demand_forecasting")
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(pipeline_run.conf_dir))

    result = invoke(
        "online", "-u", "demand_forecasting", "--key", "store_id=2", "--key", "item_id=3"
    )

    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.strip().splitlines())
    assert (lines["store_id"], lines["item_id"]) == ("[2]", "[3]")
    assert lines["units_mean_28d"] != "[None]" and lines["category"] != "[None]"


@pytest.mark.e2e
@pytest.mark.use_case("predictive_maintenance")
def test_online_with_a_missing_key_says_which(pipeline_run, monkeypatch):
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(pipeline_run.conf_dir))

    result = invoke("online", "-u", "demand_forecasting", "--key", "store_id=2")

    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: use case demand_forecasting identifies an entity by store_id, item_id;"
        " missing item_id"
    )


@pytest.mark.e2e
@pytest.mark.use_case("predictive_maintenance")
def test_training_set_rebuild_gives_the_runs_rows(pipeline_run, monkeypatch, tmp_path):
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(pipeline_run.conf_dir))
    run_id = pipeline_run.outcome("predictive_maintenance").training[0].run_id
    configure_mlflow(pipeline_run.settings)
    spec = mlflow.artifacts.load_dict(f"runs:/{run_id}/training_set.json")

    result = invoke(
        "training-set", "rebuild", "--use-case", "predictive_maintenance", "--run-id", run_id,
        "--output", str(tmp_path / "set"),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert f"{spec['entity_rows']} rows" in result.output
    rebuilt = pd.read_parquet(tmp_path / "set")
    assert len(rebuilt) == spec["entity_rows"]
    assert {f for lookup in spec["lookups"] for f in lookup["features"]} <= set(rebuilt.columns)


def test_report_on_a_new_project_writes_a_page_that_says_what_is_missing(empty_project):
    page = empty_project / "report.html"

    result = invoke("report", "--use-case", "demand_forecasting", "--out", str(page))

    assert result.exit_code == 0, result.output
    # The last line (a new MLflow store logs its set-up first when the CLI runs in-process).
    last = result.output.strip().splitlines()[-1]
    assert last == f"demand_forecasting: monitoring report (0 charts) at {page}"
    text = page.read_text()
    assert "No drift results yet." in text and "No registered version." in text


def test_report_out_with_several_use_cases_is_one_line(empty_project):
    result = invoke("report", "--out", str(empty_project / "report.html"))

    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --out writes one page: choose one use case with --use-case"
    )


def test_inference_log_with_no_batches_says_so(empty_project):
    result = invoke("inference-log", "--use-case", "predictive_maintenance")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "predictive_maintenance: no inference log batches to load"
