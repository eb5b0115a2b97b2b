"""The point-in-time join gives what Feast's Spark offline store gives, where their rules coincide.

Two small Delta feature tables are registered in a Feast store built in code (file
registry, SQLite online store, Spark offline store on the test session), and
`get_historical_features` is compared with `point_in_time_join` on the same tables.
The data keep to what both define the same way: unique (key, event timestamp) in the
features (no created-timestamp tie-break), no null keys or timestamps, and Feast's TTL
condition `feature_ts >= entity_ts - ttl`, which is the lookback window's
`entity_ts - feature_ts <= lookback`; the entity rows sit on both sides of that boundary.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from chispa import assert_df_equality
from feast import Entity, FeatureStore, FeatureView, Field, RepoConfig, ValueType
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64, String

from featurehouse.spark import local_spark_conf
from featurehouse.store.feast_store import _feast_spark_settings
from featurehouse.store.pit import FeatureLookup, point_in_time_join

T0 = datetime(2024, 3, 1)
TELEMETRY_TTL = timedelta(hours=2)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


TELEMETRY = [  # machine_id, event_timestamp, volt_mean, vibration_max
    (1, at(0), 170.0, 40.0),
    (1, at(60), 171.5, None),
    (1, at(300), 169.0, 42.0),
    (2, at(30), 160.0, 35.5),
    (3, at(500), 150.0, 30.0),
]
SENSORS = [  # machine_id, sensor, event_timestamp, reading, error_count
    (1, "temp", at(10), 71.0, 0),
    (1, "temp", at(200), 75.5, 2),
    (1, "vib", at(20), 0.3, 1),
    (2, "temp", at(0), 65.0, None),
    (2, "vib", at(400), 0.9, 5),
]
ENTITIES = [  # machine_id, sensor, event_timestamp, label
    (1, "temp", at(60), "feature at exactly the entity timestamp"),
    (1, "temp", at(60), "duplicate entity row"),
    (1, "temp", at(180), "telemetry row exactly at its ttl"),
    (1, "vib", at(181), "telemetry row one minute past its ttl"),
    (1, "vib", at(300), "telemetry at the same minute; sensor row hours old"),
    (1, "temp", at(5), "before every sensor row of its key"),
    (2, "temp", at(151), "telemetry one minute past ttl; null sensor count"),
    (2, "vib", at(120), "sensor row of its key only later"),
    (3, "temp", at(499), "before its only telemetry row"),
    (4, "temp", at(100), "machine without any feature row"),
]


@pytest.fixture
def feature_tables(lake):
    lake.overwrite(
        lake.spark.createDataFrame(
            TELEMETRY,
            "machine_id long, event_timestamp timestamp, volt_mean double, vibration_max double",
        ),
        "telemetry_features",
    )
    lake.overwrite(
        lake.spark.createDataFrame(
            SENSORS,
            "machine_id long, sensor string, event_timestamp timestamp, reading double, error_count long",
        ),
        "error_features",
    )
    return lake


@pytest.fixture
def feast_store(feature_tables, settings, tmp_path) -> FeatureStore:
    lake = feature_tables
    store_dir = tmp_path / "feast"
    store_dir.mkdir()
    config = RepoConfig(
        project="pit_equivalence",
        provider="local",
        registry=str(store_dir / "registry.db"),
        online_store={"type": "sqlite", "path": str(store_dir / "online_store.db")},
        offline_store={"type": "spark", "spark_conf": local_spark_conf(settings)},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )
    machine = Entity(name="machine", join_keys=["machine_id"], value_type=ValueType.INT64)
    sensor = Entity(name="sensor", join_keys=["sensor"], value_type=ValueType.STRING)

    def source(key: str) -> SparkSource:
        return SparkSource(
            name=f"{key}_source",
            path=str(lake.location(key)),
            file_format="parquet",
            table_format=DeltaFormat(),
            timestamp_field="event_timestamp",
        )

    telemetry = FeatureView(
        name="telemetry",
        entities=[machine],
        ttl=TELEMETRY_TTL,
        schema=[
            Field(name="machine_id", dtype=Int64),
            Field(name="volt_mean", dtype=Float64),
            Field(name="vibration_max", dtype=Float64),
        ],
        source=source("telemetry_features"),
    )
    sensors = FeatureView(
        name="sensors",
        entities=[machine, sensor],
        ttl=timedelta(0),  # Feast: no limit
        schema=[
            Field(name="machine_id", dtype=Int64),
            Field(name="sensor", dtype=String),
            Field(name="reading", dtype=Float64),
            Field(name="error_count", dtype=Int64),
        ],
        source=source("error_features"),
    )
    store = FeatureStore(config=config)
    with _feast_spark_settings(lake.spark):
        store.apply([machine, sensor, telemetry, sensors])
    return store


def test_point_in_time_join_equals_feast_historical_features(spark, feature_tables, feast_store):
    lake = feature_tables
    entities = spark.createDataFrame(
        ENTITIES, "machine_id long, sensor string, event_timestamp timestamp, label string"
    )
    features = ["volt_mean", "vibration_max", "reading", "error_count"]

    with _feast_spark_settings(spark):
        job = feast_store.get_historical_features(
            entity_df=entities,
            features=[
                "telemetry:volt_mean",
                "telemetry:vibration_max",
                "sensors:reading",
                "sensors:error_count",
            ],
        )
        from_feast = job.to_spark_df()
    ours = point_in_time_join(
        entities,
        [
            FeatureLookup(
                lake.read("telemetry_features"),
                ["volt_mean", "vibration_max"],
                "machine_id",
                "event_timestamp",
                lookback_window=TELEMETRY_TTL,
            ),
            FeatureLookup(
                lake.read("error_features"),
                ["reading", "error_count"],
                ["machine_id", "sensor"],
                "event_timestamp",
            ),
        ],
    )

    columns = [*entities.columns, *features]
    assert ours.columns == columns
    assert_df_equality(
        from_feast.select(*columns),
        ours,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # The data reach every rule: matches, misses, the TTL boundary on both sides.
    rows = {r["label"]: r for r in ours.collect()}
    assert rows["telemetry row exactly at its ttl"]["volt_mean"] == 171.5
    assert rows["telemetry row one minute past its ttl"]["volt_mean"] is None
    assert rows["feature at exactly the entity timestamp"]["vibration_max"] is None
    assert rows["feature at exactly the entity timestamp"]["volt_mean"] == 171.5
    assert rows["telemetry at the same minute; sensor row hours old"]["reading"] == 0.3
    assert rows["machine without any feature row"]["reading"] is None
