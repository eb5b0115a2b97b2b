"""One small pipeline run shared by the end-to-end tests (it takes about two minutes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from featurehouse.config import Settings, deep_merge, load_settings
from tests.helpers import local_overrides, local_settings, write_conf_dir

# Small enough for CI, big enough for every time split to hold failures.
E2E_SIMULATION = {"machines": 30, "days": 90, "seed": 7}


@dataclass(frozen=True)
class PipelineRun:
    settings: Settings
    outcome: object  # featurehouse.summary.PipelineOutcome
    conf_dir: Path  # conf/ pointing at the same lakehouse, for notebooks and `feast`


@pytest.fixture(scope="session")
def pipeline_run(spark, tmp_path_factory) -> PipelineRun:
    from featurehouse.summary import run_pipeline

    root = tmp_path_factory.mktemp("e2e")
    settings = local_settings(root / "lake", simulation=E2E_SIMULATION)
    outcome = run_pipeline(settings, simulate_data=True, step=lambda _: None)
    overrides = deep_merge(local_overrides(root / "lake"), {"simulation": E2E_SIMULATION})
    conf_dir = write_conf_dir(root, overrides)
    assert load_settings("local", conf_dir=conf_dir).storage.root == settings.storage.root
    return PipelineRun(settings=settings, outcome=outcome, conf_dir=conf_dir)
