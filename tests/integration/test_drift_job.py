"""The drift job end to end on the small shop use case (its pipeline runs once): the profile
and drift tables, both comparisons, the verdict's wording, and a rerun of the same window
that writes every row once."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from featurehouse.io import Lakehouse
from featurehouse.io.lakehouse import sql_timestamp
from featurehouse.monitoring.drift import ASSESSED
from featurehouse.monitoring.job import (
    DRIFT_KEYS,
    DRIFT_TABLE,
    PROFILE_KEYS,
    PROFILE_TABLE,
    replace_rows,
)
from tests.helpers import local_settings

VERDICT = re.compile(
    r"^\d+ of \d+ feature columns drifted \((below|at or above) the 30% threshold\)"
    r"(, and the prediction \(\w+\) drifted)?: (no )?dataset drift$"
)


@pytest.fixture(scope="module")
def shop(spark, shop_project, shop_outcome):
    settings, use_case = shop_project
    return Lakehouse(spark, settings, use_case.name), use_case, shop_outcome.drift


def test_drift_rows_cover_every_column_in_both_comparisons(shop):
    lake, use_case, report = shop
    rows = [r for r in lake.read(DRIFT_TABLE).collect() if r["slice_key"] is None]
    columns = {*(f.name for f in use_case.features), use_case.task.prediction}

    assert {(r["comparison"], r["column"]) for r in rows} == {
        (comparison, column) for comparison in ("baseline", "consecutive") for column in columns
    }
    baseline = [r for r in rows if r["comparison"] == "baseline"]
    assert all(r["status"] == ASSESSED and r["current_rows"] > 0 for r in baseline)
    assert all(r["ks_statistic"] is not None and r["wasserstein"] is not None for r in baseline)
    assert {r["dataset_drifted"] for r in baseline} == {report.drifted}
    assert {r["window_end"] for r in rows} == {report.window_end}
    assert sorted(report.drifted_columns) == sorted(r["column"] for r in baseline if r["drifted"])


def test_the_verdict_reads_as_a_share_of_the_feature_columns(shop):
    _, use_case, report = shop

    assert VERDICT.match(report.summary), report.summary
    assert (
        report.summary.startswith(
            f"{len(report.drifted_columns)} of {len(use_case.features)} feature columns drifted"
        )
        or report.verdict.prediction_drifted
    )


def test_profiles_hold_the_current_window_and_the_baseline(shop):
    lake, use_case, report = shop
    profiles = lake.read(PROFILE_TABLE).collect()
    columns = {*(f.name for f in use_case.features), use_case.task.prediction}

    for log_type in ("input", "baseline"):
        rows = [r for r in profiles if r["log_type"] == log_type and r["slice_key"] is None]
        assert {r["column"] for r in rows} == columns
        assert all(r["count"] + r["nulls"] == r["rows"] > 0 for r in rows)
        assert all(r["min"] <= r["quantiles"][0.5] <= r["max"] for r in rows if r["count"])
    current = [r for r in profiles if r["log_type"] == "input"]
    assert {(r["window_start"], r["window_end"]) for r in current} == {
        (report.window_start, report.window_end)
    }
    assert current[0]["rows"] == report.current_rows


def test_a_rerun_for_the_same_window_writes_its_rows_once(spark, shop_project, shop):
    from featurehouse import jobs

    lake, use_case, first = shop
    settings, _ = shop_project
    before = {key: lake.read(key).count() for key in (DRIFT_TABLE, PROFILE_TABLE)}

    again = jobs.drift(settings, use_case)

    assert (again.window_start, again.window_end) == (first.window_start, first.window_end)
    assert again.summary == first.summary
    for key, keys in ((DRIFT_TABLE, DRIFT_KEYS), (PROFILE_TABLE, PROFILE_KEYS)):
        table = lake.read(key)
        assert table.count() == before[key]
        assert table.groupBy(*keys).count().where("count > 1").count() == 0


T1, T2 = datetime(2024, 1, 1), datetime(2024, 1, 2)


def test_replace_rows_replaces_only_its_scope_and_adds_missing_columns(spark, tmp_path):
    lake = Lakehouse(spark, local_settings(tmp_path), "predictive_maintenance")
    # A table in an older layout: no `comparison` column.
    lake.append(
        spark.createDataFrame(
            [(T1, "a", 1.0), (T1, "b", 1.0), (T2, "a", 2.0)],
            "window_end timestamp, column string, psi double",
        ),
        DRIFT_TABLE,
    )
    new = spark.createDataFrame(
        [(T1, "a", 5.0, "baseline")],
        "window_end timestamp, column string, psi double, comparison string",
    )
    keys = ("window_end", "column", "comparison")

    for _ in range(2):
        replace_rows(lake, DRIFT_TABLE, new, keys, f"t.window_end = {sql_timestamp(T1)}")

        rows = sorted(tuple(r) for r in lake.read(DRIFT_TABLE).select(*keys, "psi").collect())
        assert rows == [(T1, "a", "baseline", 5.0), (T2, "a", None, 2.0)]
