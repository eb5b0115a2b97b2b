"""Shared fixtures: one local Spark session for the whole run, settings in a temporary lakehouse."""

from __future__ import annotations

import pytest

from featurehouse.config import Settings
from tests.helpers import local_settings


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
