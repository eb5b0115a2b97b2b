"""Training sets: no leakage on the predictive-maintenance data, and exact rebuilds by Delta time travel."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from featurehouse.features.build import build_feature_tables
from featurehouse.ingest import ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import apply_definitions, feature_store
from featurehouse.store.pit import FeatureLookup
from featurehouse.store.training_set import build_training_set
from featurehouse.training.dataset import build_training_dataset, rebuild_from_spec
from featurehouse.training.labels import spine_rows, with_label
from featurehouse.usecase import EVENT_TIMESTAMP, Spine
from featurehouse.usecases.predictive_maintenance import USE_CASE
from featurehouse.usecases.predictive_maintenance.datasets import MACHINE_ID as ENTITY_KEY
from featurehouse.usecases.predictive_maintenance.datasets import TELEMETRY
from featurehouse.usecases.predictive_maintenance.simulator import (
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)
from tests.helpers import AZURE_PDM, local_settings

FEATURE_TABLES = USE_CASE.tables
LABEL = USE_CASE.label.name

START = datetime(2015, 1, 1)


def simulate_into(lake: Lakehouse, *, start: datetime, days: int, seed: int) -> None:
    raw = lake.settings.storage.root / f"raw-{start:%Y%m%d}"
    write_raw_csv(simulate_fleet(FleetSpec(machines=3, start=start, days=days, seed=seed)), raw)
    ingest_use_case(lake, USE_CASE, raw)
    build_feature_tables(lake, USE_CASE)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    settings = local_settings(tmp_path_factory.mktemp("training-set"))
    lake = Lakehouse(spark, settings, USE_CASE.name)
    simulate_into(lake, start=START, days=12, seed=5)
    apply_definitions(feature_store(settings), settings, USE_CASE)
    return lake


def ordered(df):
    return df.orderBy(ENTITY_KEY, EVENT_TIMESTAMP)


def test_rebuild_equals_the_original_after_new_data_arrives(lake):
    original, spec = build_training_dataset(lake, lake.settings, USE_CASE)
    original_rows = original.collect()

    # Twelve more days of telemetry, errors and failures arrive; features are rebuilt.
    simulate_into(lake, start=START + timedelta(days=12), days=12, seed=6)
    rebuilt = rebuild_from_spec(lake, USE_CASE, spec)
    fresh, _ = build_training_dataset(lake, lake.settings, USE_CASE)

    assert_df_equality(
        ordered(rebuilt), ordered(lake.spark.createDataFrame(original_rows, original.schema))
    )
    assert fresh.count() > len(original_rows)  # the new data would have changed a fresh build
    assert {lookup.view for lookup in spec.lookups} == {t.view_name for t in FEATURE_TABLES}
    assert all(lookup.delta_version >= 0 for lookup in spec.lookups)


def test_rebuild_refuses_an_entity_frame_that_changed(lake):
    _, spec = build_training_dataset(lake, lake.settings, USE_CASE)
    tampered = type(spec)(**{**spec.__dict__, "entity_fingerprint": "0:0"})

    with pytest.raises(Exception, match="the rebuilt entity frame differs from the original"):
        rebuild_from_spec(lake, USE_CASE, tampered)


def azure_or_simulated_lake(spark, tmp_path) -> Lakehouse:
    lake = Lakehouse(spark, local_settings(tmp_path), USE_CASE.name)
    folder = AZURE_PDM / "telemetry_subset_m1-20_2015Q1"
    if folder.is_dir():
        ingest_use_case(lake, USE_CASE, folder)
        build_feature_tables(lake, USE_CASE)
    else:
        print(f"{folder} is absent: checking leakage on simulated data instead")
        simulate_into(lake, start=START, days=30, seed=9)
    return lake


def test_no_training_row_sees_a_feature_from_after_its_timestamp(spark, tmp_path):
    """On the published Azure data: every feature row a training row uses is at or before
    the row's timestamp and within the view's lookback."""
    lake = azure_or_simulated_lake(spark, tmp_path)
    telemetry = lake.read("telemetry")
    observed_until = telemetry.agg(F.max("timestamp")).first()[0]
    entities = with_label(
        spine_rows(telemetry, Spine(TELEMETRY, every=timedelta(hours=3)), USE_CASE.entity.keys),
        lake.read("failures"),
        USE_CASE.label,
        USE_CASE.keys,
        observed_until=observed_until,
    )
    lookups = []
    for table in FEATURE_TABLES:
        source_ts = f"{table.view_name}_ts"
        features = lake.read(table.name).withColumn(source_ts, F.col(EVENT_TIMESTAMP))
        lookups.append(
            FeatureLookup(
                table=features,
                feature_names=[*table.feature_names, source_ts],
                lookup_key=ENTITY_KEY,
                timestamp_lookup_key=EVENT_TIMESTAMP,
                lookback_window=table.ttl,
            )
        )

    training = build_training_set(entities, lookups, label=LABEL)

    # One pass: per view, rows using a feature row from after their time or beyond the TTL.
    checks = []
    for table in FEATURE_TABLES:
        source_ts = F.col(f"{table.view_name}_ts")
        checks.append(
            F.count_if(source_ts > F.col(EVENT_TIMESTAMP)).alias(f"{table.view_name} leaks")
        )
        if table.ttl is not None:
            oldest = F.col(EVENT_TIMESTAMP) - F.expr(
                f"INTERVAL {int(table.ttl.total_seconds())} SECONDS"
            )
            checks.append(F.count_if(source_ts < oldest).alias(f"{table.view_name} beyond its TTL"))
    found = training.agg(F.count(F.lit(1)).alias("rows"), *checks).first().asDict()

    assert found.pop("rows") == entities.count()
    assert found and all(n == 0 for n in found.values()), found
