"""Shared fixtures: one local Spark session for the whole run, settings in a temporary lakehouse."""

from __future__ import annotations

import pytest

from featurehouse.config import Settings
from tests.helpers import local_settings

# Session fixtures that run a whole pipeline: the tests that use one share a worker.
SHARED_RUNS = {"pipeline_run": "pipeline", "shop_project": "shop", "shop_outcome": "shop"}


def pytest_collection_modifyitems(items):
    """`make test` runs pytest-xdist with --dist loadgroup: tests are sent to a worker by
    group. A test that uses a shared run goes with that run; any other test goes with its
    module, so module fixtures are built once."""
    for item in items:
        group = next(
            (name for fixture, name in SHARED_RUNS.items() if fixture in item.fixturenames),
            item.module.__name__,
        )
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """Started once (about 10 s); every test that needs Spark shares it."""
    from featurehouse.spark import get_spark

    session = get_spark(local_settings(tmp_path_factory.mktemp("session")))
    yield session
    session.stop()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return local_settings(tmp_path)


@pytest.fixture
def lake(spark, settings):
    """The predictive-maintenance use case's lakehouse in a temporary folder."""
    from featurehouse.io import Lakehouse

    return Lakehouse(spark, settings, "predictive_maintenance")
