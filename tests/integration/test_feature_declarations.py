"""One declaration per feature table: the Delta tables, the Feast registry and the feature
catalogue all agree with it, and a disagreement is reported."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from featurehouse.config import load_settings
from featurehouse.discovery import load_use_cases
from featurehouse.features.build import build_feature_tables
from featurehouse.features.docs import catalogue_markdown
from featurehouse.ingest import ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.store.consistency import declaration_mismatches
from featurehouse.store.feast_store import apply_definitions, feature_store
from featurehouse.usecase import Feature
from featurehouse.usecases.predictive_maintenance import USE_CASE
from featurehouse.usecases.predictive_maintenance.simulator import (
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)
from tests.helpers import PROJECT_ROOT, local_settings

FEATURE_TABLES = USE_CASE.tables


def test_the_committed_feature_catalogue_is_generated_from_the_declarations():
    committed = (PROJECT_ROOT / "docs" / "features.md").read_text()
    settings = load_settings("local")
    use_cases = list(load_use_cases(settings).values())
    assert committed == catalogue_markdown(use_cases, settings), (
        "docs/features.md is out of date: run `make docs`"
    )


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("declarations")
    lake = Lakehouse(spark, local_settings(root), USE_CASE.name)
    write_raw_csv(simulate_fleet(FleetSpec(2, datetime(2015, 1, 1), 2, seed=4)), root / "raw")
    ingest_use_case(lake, USE_CASE, root / "raw")
    build_feature_tables(lake, USE_CASE)
    store = feature_store(lake.settings)
    apply_definitions(store, lake.settings, USE_CASE)
    return lake, store


def test_delta_tables_feast_registry_and_declarations_agree(built):
    lake, store = built
    assert declaration_mismatches(lake, store, FEATURE_TABLES) == []


def test_a_feature_missing_from_delta_and_feast_is_reported(built):
    lake, store = built
    telemetry = FEATURE_TABLES[0]
    extra = Feature("volt_median_24h", "double", "Median of volt over the last 24 hours")
    changed = replace(telemetry, features=(*telemetry.features, extra))

    problems = declaration_mismatches(lake, store, [changed])

    assert any("columns" in p and "volt_median_24h" in p for p in problems), problems
    assert any(p.startswith("Feast view machine_telemetry: features") for p in problems), problems


def test_a_retyped_feature_is_reported(built):
    lake, store = built
    errors = FEATURE_TABLES[1]
    first = errors.features[0]
    retyped = replace(errors, features=(replace(first, dtype="double"), *errors.features[1:]))

    problems = declaration_mismatches(lake, store, [retyped])

    table = "predictive_maintenance.machine_error_features"
    assert f"{table}.{first.name}: Delta type bigint, declared double" in problems
    assert any(f"{first.name}: type Int64, declared double" in p for p in problems), problems


def test_delta_columns_carry_the_declared_descriptions(built):
    lake, _ = built
    for table in FEATURE_TABLES:
        comments = {f.name: f.metadata.get("comment") for f in lake.read(table.name).schema.fields}
        assert {f.name: comments[f.name] for f in table.features} == {
            f.name: f.description for f in table.features
        }
