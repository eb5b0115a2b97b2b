"""One small pipeline run of every use case, shared by the end-to-end tests; each use
case's pipeline runs when a test first asks for its outcome.

Predictive maintenance and demand forecasting run on their simulators at a size small
enough for CI and big enough for every split to hold signal; bike sharing runs on the
published data when ../shared is there (and is skipped by the pipeline otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from featurehouse.config import Settings, deep_merge, load_settings
from tests.helpers import local_overrides, local_settings, write_conf_dir
from tests.redis_server import redis_server_binary, running_redis

# Two tuning trials per candidate: the search is tested, the suite stays short.
E2E_USE_CASES = {
    "predictive_maintenance": {
        "simulation": {"machines": 30, "days": 90, "seed": 7},
        "tuning": {"trials": 2},
    },
    "demand_forecasting": {
        "simulation": {"stores": 3, "items": 5, "days": 420, "seed": 7, "start": date(2023, 1, 1)},
        "tuning": {"trials": 2},
    },
    "bike_sharing": {"tuning": {"trials": 2}},
    "anomaly_detection": {"simulation": {"series": 4, "days": 14, "seed": 7}},
}


@dataclass(frozen=True)
class PipelineRun:
    settings: Settings
    use_cases: dict  # name -> UseCase
    outcomes: dict  # name -> featurehouse.jobs.PipelineOutcome, of the pipelines run so far
    conf_dir: Path  # conf/ pointing at the same lakehouse, for notebooks and `feast`

    def outcome(self, name: str):
        """The use case's pipeline outcome, run on first use (skips, with the reason, a use
        case that did not run)."""
        from featurehouse.jobs import run_pipelines

        if name not in self.outcomes:
            (self.outcomes[name],) = run_pipelines(
                self.settings, [self.use_cases[name]], step=lambda _: None
            )
        outcome = self.outcomes[name]
        if outcome.skipped:
            pytest.skip(f"{name} did not run: {outcome.skipped}")
        return outcome


@pytest.fixture(scope="session")
def pipeline_run(spark, tmp_path_factory) -> PipelineRun:
    from featurehouse.discovery import load_use_cases

    root = tmp_path_factory.mktemp("e2e")
    overrides = deep_merge(local_overrides(root / "lake"), {"use_cases": E2E_USE_CASES})
    settings = local_settings(root / "lake", use_cases=E2E_USE_CASES)
    conf_dir = write_conf_dir(root, overrides)
    assert load_settings("local", conf_dir=conf_dir).storage.root == settings.storage.root
    return PipelineRun(
        settings=settings, use_cases=load_use_cases(settings), outcomes={}, conf_dir=conf_dir
    )


def shop_use_cases(root: Path) -> dict:
    """The small shop use case's settings, for a project in `root` (see write_shop_project)."""
    return {
        "shop_orders": {
            "declaration": "shop_orders:USE_CASE",
            "raw_dir": str(root / "raw"),
            "models": {"boosted_trees": {"max_iter": 60, "random_state": 1}},
            "tuning": {"trials": 2},
            "training": {"promotion_metric": "mae"},
            "drift": {"window": "14d"},
        }
    }


def write_shop_project(root: Path) -> Path:
    """The files a person writes for the shop use case: its module, in root/plugins (the
    folder returned, to put on the path), and its raw orders, in root/raw."""
    from tests.integration.small_use_case import MODULE, write_orders

    (root / "plugins").mkdir(parents=True)
    (root / "plugins" / "shop_orders.py").write_text(MODULE)
    write_orders(root / "raw")
    return root / "plugins"


@pytest.fixture(scope="session")
def shop_project(tmp_path_factory):
    """A use case declared in a module outside the package, on the path, with settings that
    point at it: the files a person writes are that module and its conf/use_cases file."""
    from featurehouse.discovery import load_use_case

    root = tmp_path_factory.mktemp("new-use-case")
    plugins = write_shop_project(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(plugins))
        settings = local_settings(root / "lake", use_cases=shop_use_cases(root))
        yield settings, load_use_case(settings, "shop_orders")


@pytest.fixture(scope="session")
def shop_outcome(spark, shop_project):
    """The small use case's whole pipeline, run once."""
    from featurehouse.jobs import run_pipeline

    settings, use_case = shop_project
    return run_pipeline(settings, use_case, step=lambda _: None)


@pytest.fixture(scope="session")
def redis_address(tmp_path_factory):
    """A redis-server on loopback for the session, "127.0.0.1:port" (tests use their own db)."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (make setup installs it from Debian)")
    with running_redis(tmp_path_factory.mktemp("redis")) as address:
        yield address
