"""The anomaly detection use case: events and alerts from the shared pipeline run on the
simulator's data, and the whole training on the published NAB series when ../shared is
there (the numbers are printed for the record)."""

from __future__ import annotations

import mlflow
import pandas as pd
import pyspark.sql.functions as F
import pytest
from pyspark.sql import Window

from featurehouse import jobs
from featurehouse.discovery import load_use_case
from featurehouse.io import Lakehouse
from featurehouse.training.registry import configure_mlflow
from featurehouse.training.train import LABEL_USE_UNSUPERVISED
from featurehouse.usecase import EVENT_TIMESTAMP
from tests.helpers import SHARED, local_settings

NAME = "anomaly_detection"
NAB = SHARED / "data" / "nab_aws"
DATASETS = ("metrics", "anomaly_windows")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(pipeline_run):
    pipeline_run.outcome(NAME)
    return pipeline_run


def newest_scores(lake: Lakehouse, use_case) -> pd.DataFrame:
    keys = list(use_case.keys)
    newest = Window.partitionBy(*keys, EVENT_TIMESTAMP).orderBy(F.col("scored_at").desc())
    rows = lake.read("predictions").withColumn("_n", F.row_number().over(newest)).where("_n = 1")
    return rows.toPandas()


def test_events_are_the_runs_of_flagged_rows_and_each_raised_an_alert(spark, run):
    lake, use_case = Lakehouse(spark, run.settings, NAME), run.use_cases[NAME]
    scores = newest_scores(lake, use_case).sort_values(["series", EVENT_TIMESTAMP])
    events = lake.read("anomaly_events").toPandas()
    flag = use_case.task.flag

    assert len(events) == run.outcome(NAME).scoring.events > 0
    assert events["rows"].sum() == scores[flag].sum()
    for event in events.itertuples():
        mine = scores[scores["series"] == event.series]
        inside = mine[mine[EVENT_TIMESTAMP].between(event.start, event.end)]
        assert (inside[flag] == 1).all() and len(inside) == event.rows
        assert inside[use_case.task.prediction].max() == pytest.approx(event.peak_score)
        # The rows just outside the event are not flagged: it is a whole run.
        before = mine[mine[EVENT_TIMESTAMP] < event.start].tail(1)
        after = mine[mine[EVENT_TIMESTAMP] > event.end].head(1)
        assert (pd.concat([before, after])[flag] == 0).all()
    alerts = lake.read("alerts").where("kind = 'anomaly'").collect()
    assert len(alerts) == len(events)
    assert all(a["subject"].startswith("series=simulated/") for a in alerts)


def test_the_run_says_the_label_only_chose_the_threshold_and_evaluated(run):
    result = run.outcome(NAME).training[0]
    configure_mlflow(run.settings)
    params = mlflow.get_run(result.run_id).data.params

    assert params["label_use"] == LABEL_USE_UNSUPERVISED
    assert result.candidate in ("isolation_forest", "kmeans_distance")
    assert 0 < float(params["decision_threshold"]) < 1


@pytest.fixture(scope="module")
def nab(spark, tmp_path_factory):
    """Ingest, features and training on NAB's 17 real AWS CloudWatch series."""
    if not (NAB / "combined_windows.json").is_file():
        pytest.skip(f"the NAB data set is not at {NAB} (see ../shared/data/README.md)")
    settings = local_settings(
        tmp_path_factory.mktemp("nab"),
        use_cases={
            NAME: {
                "raw_dir": str(NAB),
                "patterns": {"metrics": "data/realAWSCloudwatch/*.csv"},
            }
        },
    )
    use_case = load_use_case(settings, NAME)
    reports = jobs.ingest(settings, use_case)
    jobs.features(settings, use_case)
    jobs.apply(settings, use_case)
    result = jobs.train(settings, use_case)
    return settings, use_case, reports, result


def test_nab_windows_of_series_not_loaded_are_quarantined_with_the_reason(nab):
    _, _, reports, _ = nab
    metrics, windows = (next(r for r in reports if r.dataset == d) for d in DATASETS)

    # 67,740 rows in the 17 files (wc -l minus headers); two files repeat 11 timestamps each.
    assert metrics.files == 17 and metrics.rows_read == 67_740
    assert metrics.quarantine_reasons == {"duplicate key": 22}
    assert metrics.accepted == 67_740 - 22
    # The six artificialWithAnomaly series are not in the pattern: their windows are refused.
    assert windows.quarantine_reasons == {"unknown series (not in metrics)": 6}
    assert windows.accepted == 30 and windows.rows_read == 36


def test_nab_each_series_health_names_its_duplicates_gaps_and_stuck_stretches(nab):
    _, _, reports, _ = nab
    metrics = next(r for r in reports if r.dataset == "metrics")
    print("\n" + "\n".join(f"{h.entity}: {h.status}" for h in metrics.series))

    assert len(metrics.series) == 17
    duplicated = [h for h in metrics.series if h.duplicates]
    assert [h.duplicates for h in duplicated] == [11, 11]
    assert all("11 duplicate timestamps (quarantined)" in h.status for h in duplicated)
    assert sum(h.rows for h in metrics.series) == metrics.accepted


def test_nab_the_detector_finds_the_windows_with_fewer_false_alarms_than_the_z_score_rule(nab):
    _, _, _, result = nab
    model, rule = result.test_metrics, result.baseline_metrics
    print(f"\nNAB test window, {result.candidate}: {model}\nNAB z-score rule: {rule}")

    assert model["windows"] == rule["windows"] > 0
    assert model["window_recall"] >= rule["window_recall"], (model, rule)
    assert model["false_alarms_per_day"] < rule["false_alarms_per_day"], (model, rule)
