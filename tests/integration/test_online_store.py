"""The online store: our materialization writes what stock `feast materialize` writes, Feast's
own reader reads it back, runs after the first write only the entities that changed, and the
direct reader says per entity what it found.

Every shipped use case's feature tables are filled with generated rows of their declared
schema (nulls, NaN, negative and large numbers, non-ASCII and long strings, timestamps
with microseconds, keys that are composite, partial or a constant string), so that the
comparison covers each declared key shape and feature type. Two Feast stores share the
same Delta tables: "stock" is filled by `feast materialize`, "ours" by
`materialize_online`; then both are compared byte for byte and through
`FeatureStore.get_online_features`. SQLite always; Redis on a server of the test's own
(skipped, saying why, where redis-server is not installed).
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyspark.sql.functions as F
import pytest
from delta.tables import DeltaTable

from featurehouse import jobs
from featurehouse.config import Settings
from featurehouse.discovery import load_use_case
from featurehouse.errors import FeaturehouseError
from featurehouse.features.build import schema_ddl
from featurehouse.io import Lakehouse
from featurehouse.store import online
from featurehouse.store.feast_store import (
    apply_definitions,
    feature_store,
    materialize,
    sqlite_path,
)
from featurehouse.usecase import FeatureTable, UseCase
from tests.helpers import local_settings

KEY_VALUES = {"bigint": [3, -7, 2**40], "string": ["north", "süd-ost", "k" * 140]}
UNKNOWN = {"bigint": 999_999, "string": "nowhere"}
OLD = datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)  # past every TTL
STORES = ["sqlite", "redis"]


# ---------------------------------------------------------------------------------------
# Stores and settings


@pytest.fixture(params=STORES)
def store_kind(request) -> str:
    return request.param


def store_settings(root: Path, name: str, kind: str, redis: str | None, db: int) -> Settings:
    """Settings of one online store over the lakehouse at `root` (its own registry too)."""
    if kind == "sqlite":
        online_store: dict[str, Any] = {"type": "sqlite"}
    else:
        online_store = {"type": "redis", "connection_string": f"{redis},db={db}"}
    return local_settings(
        root, feast={"store_dir": str(root / f"feast-{name}"), "online_store": online_store}
    )


@pytest.fixture
def make_settings(request, tmp_path, store_kind):
    """settings(name) for the store of this test's kind; Redis databases start empty."""
    redis = request.getfixturevalue("redis_address") if store_kind == "redis" else None
    databases: dict[str, int] = {}

    def settings(name: str = "ours") -> Settings:
        db = databases.setdefault(name, len(databases))
        made = store_settings(tmp_path, name, store_kind, redis, db)
        if redis:
            _redis(made).flushdb()
        return made

    return settings


def _redis(settings: Settings):
    return online.open_store(settings).client


def store_contents(settings: Settings, use_case: UseCase) -> dict:
    """Everything the views hold, as stored: SQLite rows, or Redis hashes by key."""
    if settings.feast.online_store.type == "redis":
        client = _redis(settings)
        keys = [k for k in client.scan_iter() if not k.startswith(b"featurehouse:")]
        return {key: client.hgetall(key) for key in sorted(keys)}
    with sqlite3.connect(sqlite_path(settings)) as conn:
        return {
            t.view_name: conn.execute(
                "SELECT entity_key, feature_name, value, value_text, vector_value, event_ts,"
                f' created_ts FROM "{settings.project}_{t.view_name}" ORDER BY 1, 2'
            ).fetchall()
            for t in use_case.tables
        }


def read_through_feast(settings: Settings, use_case: UseCase, rows: list[dict]) -> dict:
    store = feature_store(settings)
    service = store.get_feature_service(settings.feature_service(use_case.name))
    return store.get_online_features(features=service, entity_rows=rows).to_dict()


# ---------------------------------------------------------------------------------------
# Feature tables filled with generated rows of their declared schema


def entities(use_case: UseCase) -> list[dict[str, Any]]:
    """Every combination of a few values per key (one value for a single string key: a
    city's one bike system)."""
    key_types = use_case.entity.keys
    constant = len(key_types) == 1 and "string" in key_types.values()
    rows: list[dict[str, Any]] = [{}]
    for key, dtype in key_types.items():
        values = KEY_VALUES[dtype][:1] if constant else KEY_VALUES[dtype]
        rows = [{**row, key: value} for row in rows for value in values]
    return rows


def feature_value(dtype: str, rng: random.Random) -> Any:
    if rng.random() < 0.2:
        return None
    if dtype == "double":
        return rng.choice([rng.uniform(-1e3, 1e3), float("nan"), -0.0, 1e-300, float("inf"), 0.1])
    if dtype == "bigint":
        return rng.choice([0, 1, 127, 128, -1, -(2**40), 2**62, rng.randint(-500, 500)])
    return rng.choice(["", "ok", "grüße ✓", "s" * 200, str(rng.random())])


def table_rows(table: FeatureTable, keys: list[dict], newest: datetime, seed: int) -> list[tuple]:
    """Three rows per entity of the table (its keys may be a part of the entity's), the
    newest at `newest` less up to a few hours, with microseconds."""
    rng = random.Random(seed)
    distinct = list(dict.fromkeys(tuple(k[name] for name in table.keys) for k in keys))
    rows = []
    for i, key in enumerate(distinct):
        top = newest - timedelta(hours=i % 5, microseconds=i * 1_001)
        for age in range(3):
            features = [feature_value(f.dtype, rng) for f in table.features]
            rows.append((*key, top - timedelta(days=age), *features))
    return rows


def write_table(
    lake: Lakehouse, table: FeatureTable, rows: list[tuple], *, overwrite: bool = True
) -> None:
    schema = ", ".join(f"`{c}` {t}" for c, t in table.column_types.items())
    if not lake.exists(table.name):
        lake.create_table(
            table.name, schema_ddl(table), comment="test", cluster_by=table.cluster_by
        )
    lake.insert(lake.spark.createDataFrame(rows, schema), table.name, overwrite=overwrite)


def fill_tables(lake: Lakehouse, use_case: UseCase, newest: datetime = OLD) -> list[dict]:
    keys = entities(use_case)
    for seed, table in enumerate(use_case.tables):
        write_table(lake, table, table_rows(table, keys, newest, seed))
    return keys


def feast_materialize(settings: Settings, spark, use_case: UseCase) -> None:
    store = feature_store(settings)
    views = apply_definitions(store, settings, use_case)
    materialize(store, spark, views, datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC))


def our_materialize(settings: Settings, lake: Lakehouse, use_case: UseCase, **kw):
    apply_definitions(feature_store(settings), settings, use_case)
    return {m.view: m for m in online.materialize_online(lake, settings, use_case, **kw)}


# ---------------------------------------------------------------------------------------
# Equivalence with stock Feast


@pytest.mark.parametrize("name", ["predictive_maintenance", "demand_forecasting", "bike_sharing"])
def test_our_materialization_equals_feast_materialize(spark, make_settings, name):
    stock, ours = make_settings("stock"), make_settings("ours")
    use_case = load_use_case(ours, name)
    lake = Lakehouse(spark, ours, name)
    keys = fill_tables(lake, use_case)

    feast_materialize(stock, spark, use_case)
    done = our_materialize(ours, lake, use_case)

    assert {v: m.mode for v, m in done.items()} == {t.view_name: "full" for t in use_case.tables}
    assert store_contents(ours, use_case) == store_contents(stock, use_case)
    unknown = {k: UNKNOWN[t] for k, t in use_case.entity.keys.items()}
    rows = [*keys, unknown]
    through_feast = read_through_feast(ours, use_case, rows)
    assert through_feast == read_through_feast(stock, use_case, rows)
    # The direct reader gives the values Feast's reader gives, and says what it found.
    read = online.read_online(ours, use_case, rows)
    assert online.online_columns(use_case, read) == through_feast
    assert [r.found for r in read] == [True] * len(keys) + [False]
    assert read[-1].status == online.NOT_FOUND


# ---------------------------------------------------------------------------------------
# Incremental runs


def sql_time(at: datetime) -> str:
    return f"TIMESTAMP '{at.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}'"


def change_rows(lake: Lakehouse, table: FeatureTable) -> tuple[int, int]:
    """Edits of a (store_id, item_id) table, one commit each, that reach an entity's newest
    row or not; returns (entities whose newest row changed, entities left without rows)."""
    newest = {
        (r.store_id, r.item_id): r.newest
        for r in lake.read(table.name)
        .groupBy("store_id", "item_id")
        .agg(F.max("event_timestamp").alias("newest"))
        .collect()
    }
    delta = DeltaTable.forPath(lake.spark, str(lake.location(table.name)))
    feature = table.features[0].name

    def where(store: int, item: int, at: datetime | None = None) -> str:
        on = f"store_id = {store} AND item_id = {item}"
        return on if at is None else f"{on} AND event_timestamp = {sql_time(at)}"

    delta.update(where(3, 3, newest[3, 3]), {feature: "42.5"})  # the newest row corrected
    older = newest[3, -7] - timedelta(days=2)
    delta.update(where(3, -7, older), {feature: "-1.0"})  # an older row: newest unchanged
    delta.delete(where(-7, -7))  # every row of an entity
    delta.delete(where(2**40, 3, newest[2**40, 3]))  # the newest row: the one before it
    later = (-7, 3, newest[-7, 3] + timedelta(hours=1)), (5, 5, OLD)  # a newer row; a new entity
    rows = [(*key, at, *[None] * len(table.features)) for *key, at in later]
    write_table(lake, table, rows, overwrite=False)
    return 4, 1


def test_a_second_run_writes_only_the_entities_whose_newest_row_changed(spark, make_settings):
    ours, check = make_settings("ours"), make_settings("check")
    use_case = load_use_case(ours, "demand_forecasting")
    lake = Lakehouse(spark, ours, use_case.name)
    fill_tables(lake, use_case)
    daily = next(t for t in use_case.tables if t.keys == ("store_id", "item_id"))

    def run(**kw) -> dict[str, tuple]:
        done = jobs.materialize(ours, use_case, **kw)
        return {m.view: (m.mode, m.entities, m.deleted) for m in done}

    first = run()
    again = run()
    changed, removed = change_rows(lake, daily)
    incremental = run()
    after_changes = store_contents(ours, use_case)
    rerun = run()
    full = run(full=True)
    our_materialize(check, lake, use_case)

    views = [t.view_name for t in use_case.tables]
    # 9 (store, item) pairs; 3 stores and 3 items in the tables of their attributes.
    per_pair = {t.view_name for t in use_case.tables if t.keys == daily.keys}
    assert first == {v: ("full", 9 if v in per_pair else 3, 0) for v in views}
    assert again == {v: ("up to date", 0, 0) for v in views}
    assert incremental == {v: ("up to date", 0, 0) for v in views} | {
        "store_item_daily": ("incremental", changed, removed)
    }
    assert rerun == again
    assert full["store_item_daily"] == ("full", 9, 0)
    # Both runs leave what one full load of the current tables gives a new store.
    assert after_changes == store_contents(ours, use_case) == store_contents(check, use_case)


def drop_view_rows(settings: Settings, view: str) -> None:
    """What `feast apply` does to a view it drops and registers again: its rows are gone."""
    if settings.feast.online_store.type == "redis":
        client = _redis(settings)
        for key in client.scan_iter():
            if not key.startswith(b"featurehouse:"):
                client.delete(key)
        return
    with sqlite3.connect(sqlite_path(settings)) as conn:
        conn.execute(f'DELETE FROM "{settings.project}_{view}"')


def test_a_store_that_lost_a_views_rows_is_loaded_in_full(spark, make_settings):
    settings = make_settings()
    use_case = load_use_case(settings, "bike_sharing")
    lake = Lakehouse(spark, settings, use_case.name)
    fill_tables(lake, use_case)
    (view,) = [t.view_name for t in use_case.tables]
    our_materialize(settings, lake, use_case)

    drop_view_rows(settings, view)
    (again,) = our_materialize(settings, lake, use_case).values()

    assert (again.mode, again.entities) == ("full", 1)
    assert again.reason.startswith("the store lost the view's rows")


# ---------------------------------------------------------------------------------------
# What the direct reader says about each entity


def test_each_entity_read_says_what_was_found_missing_or_expired(spark, make_settings):
    settings = make_settings()
    use_case = load_use_case(settings, "predictive_maintenance")
    lake = Lakehouse(spark, settings, use_case.name)
    fresh = datetime.now(UTC) - timedelta(hours=1)
    held = {  # view -> the machines it has rows of, and the time of their newest rows
        "machine_telemetry": {3: fresh},
        "machine_errors": {3: fresh, -7: fresh},
        "machine_maintenance": {3: fresh, -7: OLD},  # -7: older than the view's 2-day TTL
        "machine_attributes": {3: OLD, -7: OLD, 2**40: OLD},  # no TTL
    }
    for seed, table in enumerate(use_case.tables):
        for machine, newest in held[table.view_name].items():
            rows = table_rows(table, [{"machine_id": machine}], newest, seed)
            write_table(lake, table, rows, overwrite=False)
    our_materialize(settings, lake, use_case)
    asked = [{"machine_id": m} for m in (3, -7, 2**40, 999_999)]

    ok, partial, attributes_only, unknown = online.read_online(settings, use_case, asked)

    assert (ok.status, ok.ok, ok.found) == ("ok", True, True)
    assert partial.status == "missing machine_telemetry; expired machine_maintenance"
    assert partial.views["machine_maintenance"] == "expired"
    assert attributes_only.status == (
        "missing machine_telemetry, machine_errors, machine_maintenance"
    )
    assert (unknown.status, unknown.found, unknown.ok) == ("not found", False, False)
    assert set(unknown.features.values()) == {None} and unknown.event_timestamps == {}
    assert unknown.oldest_event_timestamp is None
    assert ok.oldest_event_timestamp == min(ok.event_timestamps.values())
    assert ok.event_timestamps["machine_attributes"] < OLD + timedelta(seconds=1)
    # Expired features are still given, as Feast gives them.
    through_feast = read_through_feast(settings, use_case, asked)
    read = [ok, partial, attributes_only, unknown]
    assert online.online_columns(use_case, read) == through_feast


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"store_id": 1}, "missing item_id"),
        ({"store_id": "one", "item_id": 2}, "bad key value"),
        ({"store_id": None, "item_id": 2}, "bad key value"),
    ],
)
def test_a_bad_entity_key_is_a_clear_error(tmp_path, row, message):
    settings = local_settings(tmp_path)
    use_case = load_use_case(settings, "demand_forecasting")
    sqlite_path(settings).parent.mkdir(parents=True)
    sqlite3.connect(sqlite_path(settings)).close()

    with pytest.raises(FeaturehouseError, match=message):
        online.read_online(settings, use_case, [row])


def test_reading_a_store_never_materialized_is_a_clear_error(tmp_path):
    settings = local_settings(tmp_path)
    use_case = load_use_case(settings, "demand_forecasting")

    with pytest.raises(
        FeaturehouseError, match="no online store at .*run featurehouse materialize"
    ):
        online.read_online(settings, use_case, [{"store_id": 1, "item_id": 2}])
    assert not sqlite_path(settings).exists()
