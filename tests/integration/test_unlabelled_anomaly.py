"""An anomaly use case declared with no label at all runs end to end: the detector is
fitted, thresholded and gated without any ground truth, scoring finds the one injected
incident as an anomaly event, and performance monitoring says it has nothing to judge by.
"""

from __future__ import annotations

import mlflow
import pyspark.sql.functions as F
import pytest

from featurehouse.errors import ConfigError
from featurehouse.io import Lakehouse
from featurehouse.training.evaluate import promotion_metric
from featurehouse.training.train import LABEL_USE_NONE
from featurehouse.usecase import UNLABELLED_ANOMALY_METRICS
from tests.helpers import local_settings
from tests.integration.unlabelled_use_case import (
    INCIDENT_END,
    INCIDENT_SENSOR,
    INCIDENT_START,
    MODULE,
    write_readings,
)

NAME = "room_temperatures"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from featurehouse.discovery import load_use_case

    root = tmp_path_factory.mktemp("unlabelled")
    (root / "plugins").mkdir()
    (root / "plugins" / "room_temperatures.py").write_text(MODULE)
    write_readings(root / "raw")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root / "plugins"))
        settings = local_settings(
            root / "lake",
            use_cases={
                NAME: {
                    "declaration": "room_temperatures:USE_CASE",
                    "raw_dir": str(root / "raw"),
                    "models": {"isolation_forest": {"n_estimators": 50}},
                    "training": {"anomaly_threshold": 0.995},
                    # A budget: at most 3% of the test rows flagged.
                    "validation": {"floors": {"flag_rate": 0.03}},
                    "scoring": {"window": "1d"},
                    "drift": {"window": "1d"},
                }
            },
        )
        yield settings, load_use_case(settings, NAME)


@pytest.fixture(scope="module")
def outcome(spark, project):
    from featurehouse.jobs import run_pipeline

    settings, use_case = project
    return run_pipeline(settings, use_case, step=lambda _: None)


def test_training_measures_what_it_flags_and_uses_the_configured_threshold(project, outcome):
    settings, use_case = project
    result = outcome.training[0]

    assert use_case.label is None
    assert result.promotion_metric == "alarms_per_day"
    assert set(UNLABELLED_ANOMALY_METRICS) <= set(result.test_metrics)
    assert 0 < result.test_metrics["flag_rate"] < 0.03
    assert set(result.candidate_metrics) == {"isolation_forest", "kmeans_distance"}
    assert result.baseline == "zscore_6h" and "alarms_per_day" in result.baseline_metrics
    run = mlflow.get_run(result.model.run_id)
    assert run.data.params["label"] == "none"
    assert run.data.params["label_use"] == LABEL_USE_NONE
    assert float(run.data.params["decision_threshold"]) == 0.995
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert {"plots/anomaly_scores.png", "plots/permutation_importance.png"} <= artifacts


def test_the_gate_reads_its_floor_as_a_ceiling_and_promotes(outcome):
    validation = outcome.validation[0]
    floors = next(c for c in validation.checks if c.name == "floors")

    assert floors.passed and "flag_rate" in floors.detail
    assert validation.promoted


def test_scoring_finds_the_injected_incident_as_an_event(spark, project, outcome):
    settings, _ = project
    lake = Lakehouse(spark, settings, NAME)
    events = lake.read("anomaly_events").collect()

    assert outcome.scoring.events == len(events) >= 1
    found = [
        e
        for e in events
        if e["sensor"] == INCIDENT_SENSOR
        and e["start"] < INCIDENT_END
        and e["end"] >= INCIDENT_START
    ]
    assert found, f"no event overlaps the incident; events: {events}"
    flagged = lake.read("predictions").where(F.col("anomaly_flag") == 1)
    assert flagged.where(F.col("sensor") == INCIDENT_SENSOR).count() >= 1


def test_performance_says_there_is_no_label_to_judge_by(project, outcome):
    from featurehouse.summary import use_case_summary

    settings, use_case = project
    report = outcome.performance
    print("\n".join(use_case_summary(settings, use_case, outcome)))

    assert not report.label_declared and report.labelled == 0
    assert "no label declared" in report.verdict


def test_a_label_metric_is_refused_as_its_promotion_metric(project):
    settings, use_case = project
    uc_settings = settings.use_case(NAME)
    training = uc_settings.training.model_copy(update={"promotion_metric": "pr_auc"})
    uc_settings = uc_settings.model_copy(update={"training": training})

    with pytest.raises(ConfigError, match="not among the unlabelled anomaly metrics"):
        promotion_metric(use_case, uc_settings)
