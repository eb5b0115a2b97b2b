"""Shared fixtures: one local Spark session for the whole run, settings in a temporary lakehouse."""

from __future__ import annotations

import pytest

from featurehouse.config import Settings
from tests.helpers import local_settings

# Session fixtures that run a whole pipeline: the tests that use one share a worker.
SHARED_RUNS = {"shop_project": "shop", "shop_outcome": "shop"}


# tryfirst: pytest-xdist turns the marker into the test's group in its own hook, which
# would otherwise run before this one and find no marker (every test its own group).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """`make test` runs pytest-xdist with --dist loadgroup: tests are sent to a worker by
    group. The shared end-to-end run builds each use case's pipeline when a test first asks
    for it, so a test that reads it goes with the other tests of that use case (its
    `use_case` marker, its `name` parameter, or its module's NAME) and the use cases spread
    over the workers. A test of another shared run goes with that run; any other test goes
    with its module, so module fixtures are built once."""
    for item in items:
        if "pipeline_run" in item.fixturenames:
            group = f"pipeline-{pipeline_use_case(item)}"
        else:
            group = next(
                (name for fixture, name in SHARED_RUNS.items() if fixture in item.fixturenames),
                item.module.__name__,
            )
        item.add_marker(pytest.mark.xdist_group(group))


def pipeline_use_case(item) -> str:
    marker = item.get_closest_marker("use_case")
    if marker is not None:
        return marker.args[0]
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "name" in callspec.params:
        return callspec.params["name"]
    return getattr(item.module, "NAME", "all")


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
