"""The feature job: incremental runs, late data, reruns that change nothing, backfills,
quarantine and quality results, source schema changes, and the table layout."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_approx_df_equality
from delta.tables import DeltaTable

from featurehouse.errors import DataQualityError, SourceSchemaError
from featurehouse.features.build import FeatureRun, build_feature_tables, compute_batch
from featurehouse.features.quality import in_range
from featurehouse.ingest import ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.usecase import EVENT_TIMESTAMP
from featurehouse.usecases.predictive_maintenance import USE_CASE
from featurehouse.usecases.predictive_maintenance.datasets import MACHINE_ID as ENTITY_KEY
from featurehouse.usecases.predictive_maintenance.simulator import (
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)
from featurehouse.usecases.predictive_maintenance.telemetry import TELEMETRY_FEATURES
from tests.helpers import local_settings

FEATURE_TABLES = USE_CASE.tables

START = datetime(2015, 1, 1)
DAYS = 4
MACHINES = 3
# Held back from the first ingest, then loaded as a late event.
LATE_MACHINE, LATE_AT = 2, START + timedelta(days=2, hours=5)
PRECISION = 1e-6


def table_versions(lake: Lakehouse) -> dict[str, int]:
    return {t.name: lake.version(t.name) for t in FEATURE_TABLES}


def nullable(df):
    """The same rows with every column nullable (chispa's approximate comparison checks it)."""
    return df.select(*[F.when(F.lit(True), F.col(c)).alias(c) for c in df.columns])


def recomputed(lake: Lakehouse, table=TELEMETRY_FEATURES):
    """The table computed from scratch on the current bronze tables: what it must equal."""
    return compute_batch(table, {key: lake.read(key) for key in table.source_names})


def changed_timestamps(before, after, machine: int, features) -> set[datetime]:
    """Event times of `machine` whose rows are new or differ by more than rounding.

    Running sums recomputed from a later start round differently in the last bits, so
    "changed" means a relative difference above 1e-9.
    """
    keys = [ENTITY_KEY, EVENT_TIMESTAMP]
    old = before.where(F.col(ENTITY_KEY) == machine).select(
        *keys, *[F.col(f).alias(f"old_{f}") for f in features]
    )
    new = after.where(F.col(ENTITY_KEY) == machine)
    joined = new.join(old, keys, "left")
    differs = [
        ~F.coalesce(
            F.abs(F.col(f) - F.col(f"old_{f}"))
            <= 1e-9 * F.greatest(F.abs(F.col(f)), F.abs(F.col(f"old_{f}")), F.lit(1.0)),
            F.col(f).isNull() & F.col(f"old_{f}").isNull(),
        )
        for f in features
    ]
    is_new = F.col(f"old_{features[0]}").isNull() & F.col(features[0]).isNotNull()
    changed = joined.where(is_new | F.greatest(*[d.cast("int") for d in differs]).cast("boolean"))
    return {r[EVENT_TIMESTAMP] for r in changed.select(EVENT_TIMESTAMP).collect()}


@dataclass
class History:
    lake: Lakehouse
    first: list[FeatureRun]
    rerun: list[FeatureRun]
    versions_after_first: dict[str, int]
    versions_after_rerun: dict[str, int]
    incremental: list[FeatureRun]
    telemetry_before_late: object  # the telemetry feature table before the late run
    versions_after_incremental: dict[str, int]
    after_compaction: list[FeatureRun]  # runs after bronze telemetry was compacted
    rerun_after_compaction: list[FeatureRun]
    versions_after_compaction: dict[str, int]


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory) -> History:
    """Build, rerun, then load one late event and a new day, and run incrementally."""
    root = tmp_path_factory.mktemp("feature-job")
    lake = Lakehouse(spark, local_settings(root), "predictive_maintenance")
    write_raw_csv(simulate_fleet(FleetSpec(MACHINES, START, DAYS, seed=11)), root / "raw")
    ingest_use_case(lake, USE_CASE, root / "raw")
    telemetry = DeltaTable.forPath(spark, str(lake.location("telemetry")))
    late_row = (
        lake.read("telemetry")
        .where((F.col(ENTITY_KEY) == LATE_MACHINE) & (F.col("timestamp") == LATE_AT))
        .collect()
    )
    assert len(late_row) == 1
    telemetry.delete((F.col(ENTITY_KEY) == LATE_MACHINE) & (F.col("timestamp") == LATE_AT))

    first = build_feature_tables(lake, USE_CASE)
    versions_after_first = table_versions(lake)
    rerun = build_feature_tables(lake, USE_CASE)
    versions_after_rerun = table_versions(lake)
    before = lake.read(
        "machine_telemetry_features", version=lake.version("machine_telemetry_features")
    )

    # The late reading arrives together with the fleet's next day, out of order.
    last_day = lake.read("telemetry").where(F.col("timestamp") >= START + timedelta(days=DAYS - 1))
    next_day = last_day.withColumn("timestamp", F.col("timestamp") + F.expr("INTERVAL 1 DAY"))
    arrivals = next_day.unionByName(spark.createDataFrame(late_row, next_day.schema))
    lake.merge(arrivals, "telemetry", ["machine_id", "timestamp"])
    incremental = build_feature_tables(lake, USE_CASE)
    versions_after_incremental = table_versions(lake)

    # A bronze commit without data (a compaction) moves the source's version, not its rows.
    telemetry_version = lake.version("telemetry")
    lake.optimize("telemetry")
    assert lake.version("telemetry") > telemetry_version
    after_compaction = build_feature_tables(lake, USE_CASE)
    rerun_after_compaction = build_feature_tables(lake, USE_CASE)
    return History(
        lake, first, rerun, versions_after_first, versions_after_rerun, incremental, before,
        versions_after_incremental, after_compaction, rerun_after_compaction,
        table_versions(lake),
    )  # fmt: skip


def test_first_run_builds_every_table_in_full(history):
    assert [r.mode for r in history.first] == ["full"] * len(FEATURE_TABLES)
    telemetry = history.first[0]
    assert telemetry.inserted == telemetry.rows_computed == MACHINES * DAYS * 24 - 1
    for run in history.first:
        assert run.rows_computed == run.rows_valid + run.rows_quarantined


def test_a_second_run_changes_nothing(history):
    assert [r.mode for r in history.rerun] == ["up to date"] * len(FEATURE_TABLES)
    assert history.versions_after_rerun == history.versions_after_first


def test_incremental_run_equals_a_full_rebuild(history):
    lake = history.lake
    telemetry_run = history.incremental[0]
    assert telemetry_run.mode == "incremental"
    # Only the late machine's history from the late event on, and the new day, are computed.
    assert telemetry_run.rows_computed < (MACHINES * (DAYS + 1) * 24) / 2
    for table in FEATURE_TABLES:
        assert_approx_df_equality(
            nullable(lake.read(table.name)),
            nullable(recomputed(lake, table)),
            PRECISION,
            ignore_row_order=True,
            ignore_nullable=True,
        )


def test_a_source_commit_without_rows_moves_the_watermark_and_writes_nothing(history):
    expected = [
        "no rows changed" if "telemetry" in t.source_names else "up to date" for t in FEATURE_TABLES
    ]
    assert [r.mode for r in history.after_compaction] == expected
    assert [r.mode for r in history.rerun_after_compaction] == ["up to date"] * len(FEATURE_TABLES)
    assert history.versions_after_compaction == history.versions_after_incremental


def test_a_late_event_updates_exactly_the_rows_whose_windows_hold_it(history):
    lake = history.lake
    after = lake.read("machine_telemetry_features")
    before_new_day = after.where(F.col(EVENT_TIMESTAMP) < START + timedelta(days=DAYS))
    changed = changed_timestamps(
        history.telemetry_before_late,
        before_new_day,
        LATE_MACHINE,
        TELEMETRY_FEATURES.feature_names,
    )
    # The late row itself is new; rows within 24 h after it (the longest window) changed.
    assert changed == {LATE_AT + timedelta(hours=h) for h in range(0, 24)}
    run = history.incremental[0]
    assert run.inserted == MACHINES * 24 + 1  # the new day and the late row
    # MERGE rewrites a row whose value changed in any bit: the 23 rows above, and maybe
    # later rows of the machine whose sums rounded differently (within 1e-9).
    assert run.updated >= 23


def test_backfill_of_unchanged_range_changes_nothing_and_repairs_a_tampered_row(history):
    lake = history.lake
    target = DeltaTable.forPath(lake.spark, str(lake.location("machine_telemetry_features")))
    at = START + timedelta(days=1, hours=3)
    target.update(
        (F.col(ENTITY_KEY) == 1) & (F.col(EVENT_TIMESTAMP) == at), {"volt_mean_3h": F.lit(-1.0)}
    )

    runs = build_feature_tables(
        lake, [TELEMETRY_FEATURES], start=START + timedelta(days=1), end=START + timedelta(days=2)
    )

    assert runs[0].mode == "backfill"
    assert runs[0].rows_computed == MACHINES * 24
    assert (runs[0].inserted, runs[0].updated) == (0, 1)
    repaired = lake.read("machine_telemetry_features").where(
        (F.col(ENTITY_KEY) == 1) & (F.col(EVENT_TIMESTAMP) == at)
    )
    assert repaired.first()["volt_mean_3h"] > 0


# --- quality -----------------------------------------------------------------------------


@pytest.fixture
def small_lake(spark, tmp_path) -> Lakehouse:
    lake = Lakehouse(spark, local_settings(tmp_path), "predictive_maintenance")
    write_raw_csv(simulate_fleet(FleetSpec(2, START, 2, seed=5)), tmp_path / "raw")
    ingest_use_case(lake, USE_CASE, tmp_path / "raw")
    return lake


def test_rows_failing_an_expectation_are_quarantined_and_counts_reconcile(small_lake):
    strict = replace(
        TELEMETRY_FEATURES,
        expectations=(in_range("volt_mean_3h", high=170.0, severity="warn"),),
    )

    run = build_feature_tables(small_lake, [strict])[0]

    total = 2 * 2 * 24
    assert run.rows_computed == total
    assert 0 < run.rows_quarantined < total
    assert run.rows_valid + run.rows_quarantined == total
    assert small_lake.read("machine_telemetry_features").count() == run.rows_valid
    assert (
        small_lake.read("machine_telemetry_features").agg(F.max("volt_mean_3h")).first()[0] <= 170
    )
    quarantined = small_lake.read("quarantine").where(
        F.col("dataset") == "machine_telemetry_features"
    )
    assert quarantined.count() == run.rows_quarantined
    assert {r["reason"] for r in quarantined.collect()} == {"volt_mean_3h in [-inf, 170.0]"}
    results = small_lake.read("data_quality").where(F.col("expectation").contains("volt"))
    row = results.first()
    assert (row["status"], row["severity"], row["failed_rows"]) == (
        "fail",
        "warn",
        run.rows_quarantined,
    )
    assert any("volt_mean_3h" in w for w in run.warnings)


def test_a_failed_expectation_of_severity_fail_publishes_nothing(small_lake):
    duplicated = replace(
        TELEMETRY_FEATURES,
        build=lambda bronze: TELEMETRY_FEATURES.build(bronze).unionByName(
            TELEMETRY_FEATURES.build(bronze).limit(3)
        ),
    )

    with pytest.raises(DataQualityError, match=r"\(machine_id, event_timestamp\) unique: 3 of"):
        build_feature_tables(small_lake, [duplicated])

    assert not small_lake.exists("machine_telemetry_features")
    results = small_lake.read("data_quality").where(F.col("status") == "fail").collect()
    assert [(r["expectation"], r["failed_rows"]) for r in results] == [
        ("(machine_id, event_timestamp) unique", 3)
    ]
    assert not small_lake.exists("feature_watermarks")


def test_freshness_is_checked_against_the_configured_maximum_age(spark, small_lake, tmp_path):
    settings = local_settings(tmp_path, quality={"max_staleness": "24h"})
    lake = Lakehouse(spark, settings, "predictive_maintenance")
    newest = START + timedelta(days=2) - timedelta(hours=1)

    stale = build_feature_tables(lake, [TELEMETRY_FEATURES], now=newest + timedelta(hours=30))
    fresh = build_feature_tables(
        lake, [TELEMETRY_FEATURES], full=True, now=newest + timedelta(hours=2)
    )

    def freshness(run):
        return next(c for c in run.quality.results if c.expectation.kind == "fresh")

    assert freshness(stale[0]).status == "fail"
    assert "event_timestamp fresh" in stale[0].warnings[0]
    assert freshness(fresh[0]).status == "pass"


# --- source schema changes -------------------------------------------------------------------


def test_a_new_source_column_is_ignored(small_lake):
    bronze = small_lake.read("telemetry").withColumn("humidity", F.lit(0.5))
    small_lake.overwrite(bronze, "telemetry")

    run = build_feature_tables(small_lake, [TELEMETRY_FEATURES])[0]

    assert run.rows_valid == 2 * 2 * 24


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda df: df.drop("volt"),
            r"predictive_maintenance.telemetry: required column\(s\) missing: volt",
        ),
        (
            lambda df: df.withColumn("rotate", F.col("rotate").cast("string")),
            r"predictive_maintenance.telemetry: column type changed: rotate is string, expected double",
        ),
    ],
    ids=["missing", "retyped"],
)
def test_a_missing_or_retyped_source_column_stops_the_run_before_writing(
    small_lake, change, message
):
    build_feature_tables(small_lake, [TELEMETRY_FEATURES])
    version = small_lake.version("machine_telemetry_features")
    small_lake.overwrite(change(small_lake.read("telemetry")), "telemetry")

    with pytest.raises(SourceSchemaError, match=message):
        build_feature_tables(small_lake, [TELEMETRY_FEATURES], full=True)

    assert small_lake.version("machine_telemetry_features") == version


# --- layout ----------------------------------------------------------------------------------


def test_tables_are_clustered_commented_and_optimized_as_configured(spark, tmp_path, small_lake):
    settings = local_settings(
        tmp_path, layout={"optimize": True, "vacuum": True, "vacuum_retention_hours": 168}
    )
    lake = Lakehouse(spark, settings, "predictive_maintenance")

    build_feature_tables(lake, [TELEMETRY_FEATURES])

    detail = spark.sql(f"DESCRIBE DETAIL {lake.sql_name('machine_telemetry_features')}").first()
    assert detail["clusteringColumns"] == list(TELEMETRY_FEATURES.cluster_by)
    assert detail["description"] == TELEMETRY_FEATURES.description
    assert detail["properties"]["delta.enableChangeDataFeed"] == "true"
    operations = [
        r["operation"] for r in DeltaTable.forPath(spark, str(lake.location("machine_telemetry_features")))
        .history().collect()
    ]  # fmt: skip
    assert {"OPTIMIZE", "VACUUM END"} <= set(operations)
