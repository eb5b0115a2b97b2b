"""Jobs killed part way, and two jobs at once, on the small shop use case.

Each job that writes (ingest, features, training, scoring, drift) runs as the real
`featurehouse` command in a process of its own (`tests.crash_job`), killed with SIGKILL at
the most awkward point: between its two writes, or, for training, between registering the
model and naming it challenger. Then:
- every table the job writes is either as it was before the job or exactly as the
  uninterrupted run left it (the shared shop pipeline, the same use case and settings);
- the same job, run again, completes the work: every table equals the uninterrupted
  run's, no row lost and none twice.
Then two feature jobs are started together and meet at their first write: the feature
batch, staged before it is checked and published.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import pandas as pd
import pytest
from mlflow import MlflowClient
from pandas.testing import assert_frame_equal

from featurehouse import jobs
from featurehouse.config import Settings, deep_merge
from featurehouse.io import Lakehouse
from featurehouse.monitoring.job import DRIFT_TABLE, PROFILE_TABLE
from featurehouse.training.registry import CHALLENGER, CHAMPION, configure_mlflow
from featurehouse.usecase import UseCase
from tests.helpers import (
    PROJECT_ROOT,
    local_overrides,
    local_settings,
    table_rows,
    write_conf_dir,
)
from tests.integration.conftest import shop_use_cases, write_shop_project

# Columns that differ between two runs by design: where and when a row was written, and
# the run and model version that wrote it (the killed training run took version 1 here).
VARYING = [
    "source_file", "ingested_at", "run_id", "updated_at", "scored_at", "computed_at",
    "model_version", "score_run_id", "seconds",
]  # fmt: skip
# The rows of a table that several jobs write that the job killed here writes.
SCOPES = {"quarantine": "dataset = 'orders'"}
FEATURES = "shop_product_daily"

# job -> (when, the write it is killed at, every table it writes)
CRASHES = {
    "ingest": ("after", "orders", ["orders", "quarantine"]),
    "features": ("before", "feature_watermarks", [FEATURES, "feature_watermarks"]),
    "score": ("after", "predictions", ["predictions", "scoring_runs"]),
    "drift": ("after", DRIFT_TABLE, [DRIFT_TABLE, PROFILE_TABLE]),
}


@dataclass(frozen=True)
class Project:
    settings: Settings
    use_case: UseCase
    env: dict[str, str]  # for a `featurehouse` process: its conf/ and the use case's module

    def lake(self, spark) -> Lakehouse:
        return Lakehouse(spark, self.settings, self.use_case.name)


@dataclass
class Crash:
    returncode: int
    output: str
    before: dict = field(default_factory=dict)  # table -> rows (None: no table yet)
    killed: dict = field(default_factory=dict)
    rerun: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def project(tmp_path_factory, shop_project) -> Project:
    """A second shop project: the same module, files and settings as the shared one, its
    own lakehouse and registry."""
    _, use_case = shop_project
    root = tmp_path_factory.mktemp("crashes")
    plugins = write_shop_project(root)
    use_cases = shop_use_cases(root)
    conf_dir = write_conf_dir(
        root, deep_merge(local_overrides(root / "lake"), {"use_cases": use_cases})
    )
    env = {
        **os.environ,
        "FEATUREHOUSE_CONF_DIR": str(conf_dir),
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(plugins)]),
    }
    return Project(local_settings(root / "lake", use_cases=use_cases), use_case, env)


def rows(lake: Lakehouse, key: str) -> pd.DataFrame | None:
    return table_rows(lake, key, VARYING, SCOPES.get(key))


def same(actual: pd.DataFrame | None, expected: pd.DataFrame | None) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    try:
        assert_frame_equal(actual, expected, check_exact=False, rtol=1e-9)
    except AssertionError:
        return False
    return True


def run_command(
    project: Project, when: str, key: str, *arguments: str, **env: str
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_job", when, key, *arguments,
         "--use-case", project.use_case.name],
        cwd=PROJECT_ROOT,
        env={**project.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def killed_run(project: Project, when: str, key: str, job: str) -> tuple[int, str]:
    process = run_command(project, when, key, job)
    output, _ = process.communicate(timeout=600)
    return process.returncode, output[-3000:]


def crash(spark, project: Project, job: str, rerun) -> Crash:
    when, key, tables = CRASHES[job]
    lake = project.lake(spark)
    before = {t: rows(lake, t) for t in tables}
    result = Crash(*killed_run(project, when, key, job), before=before)
    result.killed = {t: rows(lake, t) for t in tables}
    rerun()
    result.rerun = {t: rows(lake, t) for t in tables}
    return result


@dataclass
class Training:
    returncode: int
    output: str
    versions: list  # (version, aliases, status of its run) after the kill
    rerun: object  # the TrainingResult of the rerun
    champion: str | None  # after the rerun and validation


@pytest.fixture(scope="module")
def crashes(spark, project, shop_outcome) -> dict:
    """Every job in order on the second project, each killed once, then run again."""
    settings, use_case = project.settings, project.use_case
    found: dict = {}
    found["ingest"] = crash(spark, project, "ingest", lambda: jobs.ingest(settings, use_case))
    found["features"] = crash(spark, project, "features", lambda: jobs.features(settings, use_case))

    jobs.apply(settings, use_case)
    returncode, output = killed_run(project, "before", CHALLENGER, "train")
    client = client_of(settings, use_case)
    name = settings.model_name(use_case.name, use_case.model_name)
    versions = [
        (str(v.version), list(v.aliases), client.get_run(v.run_id).info.status)
        for v in client.search_model_versions(f"name = '{name}'")
    ]
    retrained = jobs.train(settings, use_case)
    jobs.validate(settings, use_case)
    champion = str(client.get_model_version_by_alias(name, CHAMPION).version)
    found["train"] = Training(returncode, output, versions, retrained, champion)

    found["score"] = crash(spark, project, "score", lambda: jobs.score(settings, use_case))
    found["drift"] = crash(spark, project, "drift", lambda: jobs.drift(settings, use_case))
    return found


def client_of(settings: Settings, use_case: UseCase) -> MlflowClient:
    configure_mlflow(settings, use_case.name)
    return MlflowClient()


@pytest.fixture(scope="module")
def reference(spark, shop_project, shop_outcome) -> dict:
    """The uninterrupted run's rows of every table a crashed job writes, read once."""
    settings, use_case = shop_project
    lake = Lakehouse(spark, settings, use_case.name)
    return {t: rows(lake, t) for _, _, tables in CRASHES.values() for t in tables}


@pytest.mark.parametrize("job", list(CRASHES))
def test_a_killed_job_leaves_each_table_as_it_was_or_whole(crashes, reference, job):
    when, key, tables = CRASHES[job]
    crashed = crashes[job]
    assert crashed.returncode == -signal.SIGKILL, crashed.output

    for table in tables:
        killed = crashed.killed[table]
        assert same(killed, crashed.before[table]) or same(killed, reference[table]), table
    # The write it was killed at: committed whole, or not at all.
    reached = crashed.killed[key]
    assert same(reached, reference[key] if when == "after" else crashed.before[key])
    # And something is left to do: the kill came before the job's last write.
    assert any(not same(crashed.killed[t], reference[t]) for t in tables)


@pytest.mark.parametrize("job", list(CRASHES))
def test_the_job_run_again_completes_it_with_no_row_lost_or_twice(crashes, reference, job):
    _, _, tables = CRASHES[job]

    for table in tables:
        expected = reference[table]
        assert expected is not None and len(expected) > 0, table
        assert_frame_equal(crashes[job].rerun[table], expected, check_exact=False, rtol=1e-9)


def test_a_killed_training_leaves_the_champion_alone_and_a_rerun_trains_the_same_model(
    crashes, shop_outcome
):
    training = crashes["train"]
    assert training.returncode == -signal.SIGKILL, training.output

    # Registered, but never named challenger: nothing downstream can pick it up. Its MLflow
    # run stays RUNNING (a killed process cannot end it), as on Databricks.
    assert training.versions == [("1", [], "RUNNING")]
    assert training.rerun.model.version == "2"
    assert training.champion == "2"
    assert training.rerun.test_metrics == pytest.approx(shop_outcome.training[0].test_metrics)


def test_two_feature_jobs_at_once_one_wins_and_the_tables_stay_whole(
    spark, project, crashes, reference, tmp_path
):
    """Both rebuild the feature table in full and meet just before staging the batch: both
    replace the staged batch at once, which Delta lets only one of them commit."""
    started = [
        run_command(project, "meet", FEATURES, "features", "--full", CRASH_JOB_MEET=str(tmp_path))
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in started]
    codes = sorted(p.returncode for p in started)
    print("exit codes", codes)

    assert codes == [0, 2], outputs
    (lost,) = [o for p, o in zip(started, outputs, strict=True) if p.returncode == 2]
    error = lost.strip().splitlines()[-1]
    assert error.startswith(f"error: table {FEATURES} (staging) was changed by another job"), lost
    assert "not committed" in error
    lake = project.lake(spark)
    assert_frame_equal(rows(lake, FEATURES), reference[FEATURES], check_exact=False, rtol=1e-9)
