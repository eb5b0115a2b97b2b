"""The suite's own grouping: under `make test` (pytest-xdist, --dist loadgroup) every test
carries its group in its node id, so the tests of one shared pipeline run on one worker
and each pipeline is built once. A pytest or xdist upgrade that breaks this would double
the suite's time without failing anything else."""

from __future__ import annotations

import pytest


def test_this_test_is_sent_to_a_worker_by_its_group(request):
    if not request.config.getoption("loadgroup", default=False):
        pytest.skip("not run under pytest-xdist --dist loadgroup (make test runs it that way)")

    assert request.node.nodeid.endswith("@tests.unit.test_test_grouping")
