"""feature_repo/: the `feast` command works from it, and it agrees with the jobs' configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from feast.repo_config import load_repo_config

from featurehouse.config import load_settings
from featurehouse.discovery import load_use_cases
from featurehouse.spark import local_spark_conf
from featurehouse.store.feast_store import feast_repo_config
from tests.helpers import PROJECT_ROOT

FEAST = str(Path(sys.executable).parent / "feast")


def test_feature_store_yaml_matches_the_local_settings():
    repo = PROJECT_ROOT / "feature_repo"
    from_yaml = load_repo_config(repo, repo / "feature_store.yaml")
    from_settings = feast_repo_config(load_settings("local"))

    assert (repo / from_yaml.registry.path).resolve() == Path(from_settings.registry.path)
    assert Path(repo / from_yaml.online_store.path).resolve() == Path(
        from_settings.online_store.path
    )
    assert from_yaml.project == from_settings.project
    settings = load_settings("local")
    expected = {**local_spark_conf(settings), "spark.master": settings.spark.master}
    assert from_yaml.offline_store.spark_conf == expected


@pytest.mark.use_case("predictive_maintenance")
def test_feast_apply_runs_as_a_command_from_feature_repo(pipeline_run):
    """`feast apply` reads every source, so it runs over the tables the pipeline built;
    the repo is a copy next to a conf/ that points at them. The use cases this worker has
    not run (or that had no data) have no tables yet: apply leaves them out, and says so."""
    pipeline_run.outcome("predictive_maintenance")
    project = pipeline_run.conf_dir.parent
    repo = project / "feature_repo"
    shutil.copytree(
        PROJECT_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__", "data")
    )
    env = {**os.environ, "FEATUREHOUSE_CONF_DIR": str(pipeline_run.conf_dir)}

    applied = subprocess.run(
        [FEAST, "apply"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert applied.returncode == 0, applied.stderr[-3000:]
    listed = subprocess.run(
        [FEAST, "feature-views", "list"], cwd=repo, env=env, capture_output=True, text=True
    )

    assert listed.returncode == 0, listed.stderr[-3000:]
    for name, use_case in load_use_cases(pipeline_run.settings).items():
        views_listed = [t.view_name in listed.stdout for t in use_case.tables]
        outcome = pipeline_run.outcomes.get(name)
        if outcome is None or outcome.skipped:
            assert not any(views_listed), name
            assert f"skipping use case {name}: not built yet" in applied.stderr
        else:
            assert all(views_listed), name
    assert (repo / "data" / "registry.db").is_file()
