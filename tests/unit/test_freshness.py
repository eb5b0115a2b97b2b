"""When a feature table is stale: behind its sources beyond its lookup TTL, or (with a
maximum age configured) old by the clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from featurehouse.monitoring.freshness import staleness

NOW = datetime(2024, 6, 1, 12)
DAY = timedelta(days=1)


def test_a_table_within_its_ttl_of_its_sources_is_fresh():
    assert staleness(NOW - DAY, NOW, ttl=2 * DAY, now=NOW, max_age=None) is None


def test_a_table_behind_its_sources_beyond_its_ttl_is_stale_and_says_by_how_much():
    why = staleness(NOW - 3 * DAY, NOW, ttl=2 * DAY, now=NOW, max_age=None)

    assert why == (
        "its newest row (2024-05-29 12:00) is 72.0 h behind its sources (2024-06-01 12:00),"
        " beyond its lookup TTL of 48.0 h: has the feature job run?"
    )


def test_a_table_valid_forever_is_only_stale_by_the_clock_when_a_maximum_age_is_set():
    assert staleness(NOW - 30 * DAY, NOW, ttl=None, now=NOW, max_age=None) is None
    why = staleness(NOW - 30 * DAY, NOW, ttl=None, now=NOW, max_age=7 * DAY)
    assert why == "its newest row (2024-05-02 12:00) is 720.0 h old"


def test_an_empty_table_over_sources_with_events_is_stale_and_no_events_is_not():
    assert staleness(None, NOW, ttl=DAY, now=NOW, max_age=None).startswith("no rows")
    assert staleness(None, None, ttl=DAY, now=NOW, max_age=None) is None
