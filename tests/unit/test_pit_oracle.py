"""The point-in-time join against a brute-force oracle on random inputs, and on hand-worked edge cases.

Random inputs: each Hypothesis example draws one configuration of two lookups and a batch
of independent cases. A case owns its key space (its id is folded into the key), so one
Spark job checks the whole batch; the oracle below implements the rules row by row.
Timestamps are whole seconds from a small range, so equal timestamps, created-timestamp
ties and lookback boundaries come up often.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession

from featurehouse.store.pit import FeatureLookup, point_in_time_join

# ---------------------------------------------------------------------------------------
# The oracle


def oracle(entities: pd.DataFrame, lookups: list[tuple[pd.DataFrame, FeatureLookup]]) -> list:
    """The expected output rows, brute force: for every entity row and every lookup, scan
    all feature rows. Timestamps are integers (seconds); None is null."""
    rows = []
    for entity in entities.to_dict("records"):
        row = [entity[c] for c in entities.columns]
        for features, lookup in lookups:
            row += _oracle_lookup(entity, features, lookup)
        rows.append(tuple(row))
    return rows


def _oracle_lookup(entity: dict, features: pd.DataFrame, lookup: FeatureLookup) -> list:
    keys = [lookup.lookup_key] if isinstance(lookup.lookup_key, str) else list(lookup.lookup_key)
    entity_ts = entity[lookup.timestamp_lookup_key]
    best, best_rank = None, None
    if entity_ts is not None and all(entity[k] is not None for k in keys):
        for feature in features.to_dict("records"):
            feature_ts = feature[lookup.feature_timestamp_key]
            if feature_ts is None or any(feature[k] != entity[k] for k in keys):
                continue
            if feature_ts > entity_ts:
                continue
            lookback = lookup.lookback_window
            if lookback is not None and entity_ts - feature_ts > lookback.total_seconds():
                continue
            # Newest event first; then newest created (null oldest); then the larger
            # feature values, compared in order, null smallest.
            created = (
                feature[lookup.created_timestamp_key] if lookup.created_timestamp_key else None
            )
            rank = (
                feature_ts,
                _null_smallest(created),
                tuple(_null_smallest(feature[f]) for f in lookup.feature_names),
            )
            if best_rank is None or rank > best_rank:
                best, best_rank = feature, rank
    if best is None:
        return [lookup.default_values.get(f) for f in lookup.feature_names]
    return [best[f] for f in lookup.feature_names]


def _null_smallest(value: Any) -> tuple:
    return (0,) if value is None else (1, value)


# ---------------------------------------------------------------------------------------
# Random batches

ENTITY_SCHEMA = "k long, s string, ts long, ts2 long, p int"
TABLE_A_SCHEMA = "k long, s string, event_timestamp long, created long, fa long, fb string"
TABLE_B_SCHEMA = "k long, s string, feature_ts long, fa long, fc double"

KEY_CHOICES = [("k",), ("k", "s")]


def sometimes_null(values: list, nulls_in: int = 8) -> st.SearchStrategy:
    """One of `values`, or None about once in `nulls_in` draws (None last: it is not the
    value Hypothesis shrinks towards)."""
    repeated = (values * (nulls_in // len(values) + 1))[: max(nulls_in - 1, len(values))]
    return st.sampled_from([*repeated, None])


small_ts = sometimes_null(list(range(10)), nulls_in=12)
lookbacks = st.one_of(st.none(), st.integers(0, 5).map(lambda s: timedelta(seconds=s)))


@dataclass(frozen=True)
class Config:
    keys_a: tuple[str, ...]
    keys_b: tuple[str, ...]
    ts_b: str  # lookup b's entity timestamp: "ts" (with equal keys) puts both in one window
    created_a: bool
    lookback_a: timedelta | None
    lookback_b: timedelta | None
    default_a: bool
    default_b: bool


configs = st.builds(
    Config,
    keys_a=st.sampled_from(KEY_CHOICES),
    keys_b=st.sampled_from(KEY_CHOICES),
    ts_b=st.sampled_from(["ts", "ts2"]),
    created_a=st.booleans(),
    lookback_a=lookbacks,
    lookback_b=lookbacks,
    default_a=st.booleans(),
    default_b=st.booleans(),
)


@st.composite
def cases(draw, case_id: int) -> tuple[list, list, list]:
    """One case: entity rows and the rows of tables a and b, all in the case's own keys."""
    key = sometimes_null([case_id * 10, case_id * 10 + 1])
    sensor = sometimes_null(["x", "y"])
    entity = st.tuples(key, sensor, small_ts, small_ts, st.integers(0, 3))
    entities = draw(st.lists(entity, min_size=1, max_size=5))
    duplicates = draw(st.lists(st.sampled_from(entities), max_size=2))
    empty = st.sampled_from([False] * 9 + [True])  # a case without feature rows
    row_a = st.tuples(
        key,
        sensor,
        small_ts,
        sometimes_null([0, 1, 2], nulls_in=4),  # created
        sometimes_null([0, 1, 2, 3], nulls_in=4),
        sometimes_null(["u", "v"], nulls_in=4),
    )
    row_b = st.tuples(
        key,
        sensor,
        small_ts,
        sometimes_null([0, 1, 2], nulls_in=4),
        sometimes_null([-1.5, 0.5, 2.0], nulls_in=4),
    )
    return (
        entities + duplicates,
        [] if draw(empty) else draw(st.lists(row_a, min_size=1, max_size=8)),
        [] if draw(empty) else draw(st.lists(row_b, min_size=1, max_size=8)),
    )


def lookups_for(config: Config, table_a: Any, table_b: Any) -> list[FeatureLookup]:
    return [
        FeatureLookup(
            table=table_a,
            feature_names=["fa", "fb"],
            lookup_key=list(config.keys_a),
            timestamp_lookup_key="ts",
            created_timestamp_key="created" if config.created_a else None,
            lookback_window=config.lookback_a,
            default_values={"fa": -1, "fb": "none"} if config.default_a else {},
        ),
        FeatureLookup(
            table=table_b,
            feature_names=["fa", "fc"],
            lookup_key=list(config.keys_b),
            timestamp_lookup_key=config.ts_b,
            feature_timestamp_key="feature_ts",
            lookback_window=config.lookback_b,
            rename_outputs={"fa": "b_fa"},
            default_values={"fc": -9.0} if config.default_b else {},
        ),
    ]


def seconds_to_timestamps(df: DataFrame, *columns: str) -> DataFrame:
    return df.withColumns({c: F.timestamp_seconds(c) for c in columns})


CASES_PER_EXAMPLE = 21
EXAMPLES = 25  # 25 examples x at least 21 cases: at least 525 independent cases


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(config=configs, data=st.data())
def test_point_in_time_join_matches_the_brute_force_oracle(spark, config, data):
    n_cases = data.draw(st.integers(CASES_PER_EXAMPLE, CASES_PER_EXAMPLE + 5), label="cases")
    entity_rows, rows_a, rows_b = [], [], []
    for case_id in range(n_cases):
        entities, a, b = data.draw(cases(case_id), label=f"case {case_id}")
        entity_rows += entities
        rows_a += a
        rows_b += b

    entity_pd = pd.DataFrame(entity_rows, columns=["k", "s", "ts", "ts2", "p"], dtype=object)
    table_a_pd = pd.DataFrame(
        rows_a, columns=[c.split()[0] for c in TABLE_A_SCHEMA.split(", ")], dtype=object
    )
    table_b_pd = pd.DataFrame(
        rows_b, columns=[c.split()[0] for c in TABLE_B_SCHEMA.split(", ")], dtype=object
    )
    expected = oracle(
        entity_pd, list(zip([table_a_pd, table_b_pd], lookups_for(config, None, None), strict=True))
    )

    entity_df = seconds_to_timestamps(
        spark.createDataFrame(entity_rows, ENTITY_SCHEMA), "ts", "ts2"
    )
    table_a = seconds_to_timestamps(
        spark.createDataFrame(rows_a, TABLE_A_SCHEMA), "event_timestamp", "created"
    )
    table_b = seconds_to_timestamps(spark.createDataFrame(rows_b, TABLE_B_SCHEMA), "feature_ts")
    result = point_in_time_join(entity_df, lookups_for(config, table_a, table_b))

    assert result.columns == ["k", "s", "ts", "ts2", "p", "fa", "fb", "b_fa", "fc"]
    assert result.schema.fields[:5] == entity_df.schema.fields
    rows = result.withColumns({c: F.unix_seconds(c) for c in ("ts", "ts2")}).collect()
    actual, wanted = Counter(tuple(r) for r in rows), Counter(expected)
    assert actual == wanted, (
        f"{config}\nunexpected rows: {sorted((actual - wanted).elements(), key=repr)}"
        f"\nmissing rows: {sorted((wanted - actual).elements(), key=repr)}"
    )


def test_oracle_prefers_newest_event_then_newest_created_then_larger_values():
    """The oracle's own rules on a hand-made case, so a wrong oracle cannot pass silently."""
    lookup = FeatureLookup(None, ["v"], "k", "ts", created_timestamp_key="c")
    features = pd.DataFrame(
        [(1, 5, 1, "old"), (1, 7, 0, None), (1, 7, 2, "a"), (1, 7, 2, "b"), (1, 9, 9, "late")],
        columns=["k", "event_timestamp", "c", "v"],
        dtype=object,
    )
    entities = pd.DataFrame([(1, 8), (1, 6), (1, 4), (None, 8)], columns=["k", "ts"], dtype=object)
    assert oracle(entities, [(features, lookup)]) == [
        (1, 8, "b"),
        (1, 6, "old"),
        (1, 4, None),
        (None, 8, None),
    ]


# ---------------------------------------------------------------------------------------
# Hand-worked cases

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: int | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


ENTITIES = "machine_id long, ts timestamp, label string"
FEATURES = (
    "machine_id long, event_timestamp timestamp, created timestamp, temp double, state string"
)
JOINED = f"{ENTITIES}, temp double, state string"


def join_one(spark: SparkSession, entities: list, features: list, **lookup_args: Any) -> DataFrame:
    lookup = FeatureLookup(
        table=spark.createDataFrame(features, FEATURES),
        feature_names=["temp", "state"],
        lookup_key="machine_id",
        timestamp_lookup_key="ts",
        **lookup_args,
    )
    return point_in_time_join(spark.createDataFrame(entities, ENTITIES), [lookup])


def test_feature_row_at_exactly_the_entity_timestamp_is_visible_and_later_rows_are_not(spark):
    features = [
        (1, at(10), None, 1.0, "a"),
        (1, at(20), None, 2.0, "b"),
        (1, at(21), None, 3.0, "c"),
    ]
    entities = [(1, at(20), "same second"), (1, at(15), "between"), (1, at(5), "before any row")]

    result = join_one(spark, entities, features)

    expected = [
        (1, at(20), "same second", 2.0, "b"),
        (1, at(15), "between", 1.0, "a"),
        (1, at(5), "before any row", None, None),
    ]
    assert_df_equality(result, spark.createDataFrame(expected, JOINED), ignore_row_order=True)


def test_newer_created_timestamp_wins_among_rows_with_equal_event_timestamps(spark):
    features = [
        (1, at(10), at(100), 1.0, "first write"),
        (1, at(10), at(300), 2.0, "correction"),
        (1, at(10), None, 9.0, "no created"),
        (1, at(10), at(200), 3.0, "second write"),
    ]
    result = join_one(spark, [(1, at(10), "x")], features, created_timestamp_key="created")

    expected = spark.createDataFrame([(1, at(10), "x", 2.0, "correction")], JOINED)
    assert_df_equality(result, expected)


def test_equal_event_and_created_timestamps_are_broken_by_the_larger_feature_values(spark):
    features = [
        (1, at(10), at(1), 1.0, "b"),
        (1, at(10), at(1), 2.0, None),
        (1, at(10), at(1), 2.0, "a"),
        (1, at(10), at(1), None, "z"),
    ]
    shuffled = [features[i] for i in (2, 0, 3, 1)]
    for rows in (features, shuffled):
        result = join_one(spark, [(1, at(10), "x")], rows, created_timestamp_key="created")
        assert_df_equality(result, spark.createDataFrame([(1, at(10), "x", 2.0, "a")], JOINED))


def test_null_feature_in_the_matched_row_stays_null_and_is_not_filled_from_an_older_row(spark):
    features = [(1, at(10), None, 1.0, "a"), (1, at(20), None, None, "b")]
    result = join_one(
        spark, [(1, at(25), "x")], features, default_values={"temp": -1.0, "state": "?"}
    )

    expected = spark.createDataFrame([(1, at(25), "x", None, "b")], JOINED)
    assert_df_equality(result, expected)


@pytest.mark.parametrize(
    ("age_seconds", "expected_temp"),
    [(0, 1.0), (3599, 1.0), (3600, 1.0), (3601, -1.0)],
    ids=["same-time", "inside", "exactly-at-lookback", "one-second-past"],
)
def test_lookback_includes_a_row_exactly_lookback_old_and_excludes_older(
    spark, age_seconds, expected_temp
):
    features = [(1, at(0), None, 1.0, "a")]
    result = join_one(
        spark,
        [(1, at(age_seconds), "x")],
        features,
        lookback_window=timedelta(hours=1),
        default_values={"temp": -1.0},
    )

    state = "a" if expected_temp == 1.0 else None
    expected = spark.createDataFrame([(1, at(age_seconds), "x", expected_temp, state)], JOINED)
    assert_df_equality(result, expected)


def test_lookback_does_not_fall_back_to_an_older_row(spark):
    """The newest row before the entity decides; if it is too old, so is every older one."""
    features = [(1, at(0), None, 1.0, "a"), (1, at(100), None, 2.0, "b")]
    result = join_one(spark, [(1, at(200), "x")], features, lookback_window=timedelta(seconds=50))

    assert_df_equality(result, spark.createDataFrame([(1, at(200), "x", None, None)], JOINED))


def test_null_keys_and_null_timestamps_match_nothing_and_their_rows_are_kept(spark):
    features = [
        (1, at(10), None, 1.0, "a"),
        (None, at(10), None, 2.0, "null key"),
        (1, None, None, 3.0, "null time"),
    ]
    entities = [(None, at(20), "null key"), (1, None, "null time"), (1, at(20), "ok")]
    result = join_one(spark, entities, features, default_values={"state": "none"})

    expected = [
        (None, at(20), "null key", None, "none"),
        (1, None, "null time", None, "none"),
        (1, at(20), "ok", 1.0, "a"),
    ]
    assert_df_equality(result, spark.createDataFrame(expected, JOINED), ignore_row_order=True)


def test_duplicate_entity_rows_stay_duplicates(spark):
    entities = [(1, at(20), "x"), (1, at(20), "x"), (1, at(20), "x"), (2, at(20), "y")]
    result = join_one(spark, entities, [(1, at(10), None, 1.0, "a")])

    expected = [(1, at(20), "x", 1.0, "a")] * 3 + [(2, at(20), "y", None, None)]
    assert_df_equality(result, spark.createDataFrame(expected, JOINED), ignore_row_order=True)


def test_empty_feature_table_gives_null_or_default_features(spark):
    entities = [(1, at(20), "x"), (2, None, "y")]
    result = join_one(spark, entities, [], default_values={"temp": 0.0})

    expected = [(1, at(20), "x", 0.0, None), (2, None, "y", 0.0, None)]
    assert_df_equality(result, spark.createDataFrame(expected, JOINED), ignore_row_order=True)


def test_two_lookups_with_different_keys_including_a_composite_key(spark):
    entities = spark.createDataFrame(
        [(1, "s1", at(50)), (1, "s2", at(50)), (2, "s1", at(5))],
        "machine_id long, site string, ts timestamp",
    )
    machine_features = spark.createDataFrame(
        [(1, at(40), 0.5), (1, at(60), 0.7), (2, at(1), 0.9)],
        "machine_id long, event_timestamp timestamp, age double",
    )
    site_features = spark.createDataFrame(
        [(1, "s1", at(50), 10), (1, "s2", at(30), 20), (2, "s1", at(6), 30), (1, "s1", at(49), 40)],
        "machine_id long, site string, event_timestamp timestamp, reading int",
    )
    result = point_in_time_join(
        entities,
        [
            FeatureLookup(machine_features, ["age"], "machine_id", "ts"),
            FeatureLookup(
                site_features,
                ["reading"],
                ["machine_id", "site"],
                "ts",
                rename_outputs={"reading": "site_reading"},
                default_values={"reading": -1},
            ),
        ],
    )

    expected = spark.createDataFrame(
        [(1, "s1", at(50), 0.5, 10), (1, "s2", at(50), 0.5, 20), (2, "s1", at(5), 0.9, -1)],
        "machine_id long, site string, ts timestamp, age double, site_reading int",
    )
    assert_df_equality(result, expected, ignore_row_order=True)


def test_entity_columns_keep_their_types_and_nullability(spark):
    entities = spark.range(3).select(
        F.col("id").alias("machine_id"),
        F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id")).alias("ts"),
        F.array(F.lit(1)).alias("tags"),
    )
    features = spark.createDataFrame([(0, at(0), None, 1.0, "a")], FEATURES)
    result = point_in_time_join(entities, [FeatureLookup(features, ["temp"], "machine_id", "ts")])

    assert result.schema.fields[:3] == entities.schema.fields
    assert result.count() == 3


def test_building_the_join_runs_no_spark_job(spark):
    entities = spark.createDataFrame([(1, at(20), "x")], ENTITIES)
    features = spark.createDataFrame([(1, at(10), None, 1.0, "a")], FEATURES)
    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("pit-build", "building the plan only")
    try:
        point_in_time_join(entities, [FeatureLookup(features, ["temp"], "machine_id", "ts")])
        assert tracker.getJobIdsForGroup("pit-build") == []
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        spark.sparkContext.setLocalProperty("spark.job.description", None)


@pytest.mark.parametrize(
    ("lookup_args", "message"),
    [
        ({"feature_names": ["machine_id"]}, "machine_id"),
        ({"feature_names": ["temp"], "rename_outputs": {"temp": "label"}}, "label"),
        ({"feature_names": ["nope"]}, "nope"),
        ({"feature_names": ["temp"], "default_values": {"state": "?"}}, "state"),
        ({"feature_names": ["temp"], "lookback_window": timedelta(seconds=-1)}, "negative"),
    ],
    ids=[
        "feature-named-like-a-key",
        "rename-onto-entity-column",
        "unknown-feature",
        "default-for-unrequested",
        "negative-lookback",
    ],
)
def test_invalid_lookups_are_rejected_before_any_work(spark, lookup_args, message):
    entities = spark.createDataFrame([(1, at(20), "x")], ENTITIES)
    features = spark.createDataFrame([], FEATURES)
    with pytest.raises(ValueError, match=message):
        point_in_time_join(
            entities,
            [
                FeatureLookup(
                    features, lookup_key="machine_id", timestamp_lookup_key="ts", **lookup_args
                )
            ],
        )


def test_map_typed_feature_rides_along_and_ties_break_on_the_orderable_features(spark):
    features = spark.createDataFrame(
        [
            (1, at(10), 1.0, {"a": 1}),
            (1, at(10), 2.0, {"b": 2}),
            (1, at(5), 3.0, {"c": 3}),
        ],
        "machine_id long, event_timestamp timestamp, temp double, tags map<string,int>",
    )
    entities = spark.createDataFrame([(1, at(10), "x"), (1, at(7), "y")], ENTITIES)
    result = point_in_time_join(
        entities, [FeatureLookup(features, ["temp", "tags"], "machine_id", "ts")]
    )

    rows = {r["label"]: (r["temp"], r["tags"]) for r in result.collect()}
    assert rows == {"x": (2.0, {"b": 2}), "y": (3.0, {"c": 3})}


def test_date_entity_timestamps_see_features_up_to_midnight_utc(spark):
    entities = spark.createDataFrame(
        [(1, datetime(2024, 1, 2).date())], "machine_id long, day date"
    )
    features = spark.createDataFrame(
        [
            (1, at(0), None, 1.0, "a"),
            (1, at(86_400), None, 2.0, "b"),
            (1, at(86_401), None, 3.0, "c"),
        ],
        FEATURES,
    )
    result = point_in_time_join(entities, [FeatureLookup(features, ["temp"], "machine_id", "day")])

    expected = spark.createDataFrame(
        [(1, datetime(2024, 1, 2).date(), 2.0)], "machine_id long, day date, temp double"
    )
    assert_df_equality(result, expected)


def test_join_works_while_feast_left_quoted_regex_column_names_on(spark):
    """Feast's Spark store turns this on in the shared session and leaves it on."""
    key = "spark.sql.parser.quotedRegexColumnNames"
    before = spark.conf.get(key, "false")
    spark.conf.set(key, "true")
    try:
        result = join_one(spark, [(1, at(20), "x")], [(1, at(10), None, 1.0, "a")])
        rows = result.withColumn("ts", F.unix_seconds("ts")).collect()
    finally:
        spark.conf.set(key, before)

    assert [tuple(r) for r in rows] == [(1, int(at(20).timestamp()), "x", 1.0, "a")]
