"""A leak-free point-in-time (as-of) join of feature tables onto entity rows, in plain Spark.

For each entity row and each `FeatureLookup`, the engine picks the newest feature row of
the same key(s) whose event timestamp is at or before the entity timestamp (and, with a
lookback window, not older than `entity_ts - lookback`). Every feature of one lookup comes
from that one row. No row, and the features are null (or their default).

How (per lookup one shuffle, one sort and one window; several lookups chain, each on the
previous one's output):

1. Entity rows and feature rows are unioned into one flat frame of
   `(keys, ts, created, features, entity_payload)` and shuffled by key. An entity row carries
   its whole row as a one-element array of structs; a feature row a null payload. With a
   lookback window, also by time bucket, so that one hot key spreads over many tasks
   (`BUCKET_LOOKBACKS`).
2. After the shuffle, each feature row packs its (ts, created, features) into one struct,
   non-null even when every value in it is null; on entity rows the struct is null.
3. A window per key, ordered by (ts, struct with nulls last), carries the last non-null
   struct forward with `last(..., ignorenulls=True)` over a running frame (unbounded
   preceding to current row). Nulls last puts feature rows before entity rows of the same
   timestamp: a feature row at exactly the entity timestamp is visible, a later one never
   is. Spark evaluates a running frame in one pass over the sorted rows of a key: no range
   join over all earlier rows, no `collect_list`, no plan that depends on data size.
4. `inline` of the payload turns the window's output back into exactly the entity rows
   (feature rows carry no payload, so they produce nothing); then the lookback is checked
   against the matched row's timestamp, which travels inside its struct.

Carrying the entity row through the union, instead of tagging it with an id and joining the
matches back, saves a second shuffle and needs no id at all: there is nothing
nondeterministic in the plan. The payload is an array of non-null structs so that `inline`
gives back the entity columns with their exact types and nullability.

Tie-breaking among feature rows of one key with the same event timestamp: the larger created
timestamp wins (a null created timestamp counts as older than any other); if those are
equal too, the row whose feature values are larger wins, comparing the features in the
order of `feature_names`, a null value counting as smaller than any other. Features of a
type Spark cannot order (maps) take no part in that comparison, so only rows that differ
in nothing but a map-typed feature are left in an unspecified order. The result does not
depend on how the inputs are partitioned or ordered.

Rows with a null key or a null timestamp on either side never match; such entity rows are
kept with null (or default) features. Pure DataFrame to DataFrame: no action runs, no
session setting changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DateType,
    IntegralType,
    LongType,
    MapType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

# Every column the engine adds lives under this prefix; entity frames may not use it.
_PREFIX = "__pit_"
_TS = f"{_PREFIX}ts"
_CREATED = f"{_PREFIX}created"
_FEATURES = f"{_PREFIX}features"
_MATCH = f"{_PREFIX}match"
_PAYLOAD = f"{_PREFIX}entity"
_BUCKET = f"{_PREFIX}bucket"
_MATCH_TS_FIELD = "ts"
# With a lookback window, a key's rows are also split into time buckets this many lookbacks
# wide, each feature row in the last lookback of a bucket copied into the next one: a key
# that holds much of the data (one hot machine) is then spread over many tasks, not one,
# for a quarter more feature rows in the shuffle.
BUCKET_LOOKBACKS = 4
_CREATED_FIELD = "created"


@dataclass(frozen=True)
class FeatureLookup:
    """Features to fetch from one feature table, as of each entity row's timestamp.

    `table` is a feature DataFrame (or the name of a catalog table, read with
    `spark.read.table`). `lookup_key` names the key column(s), the same name in the entity
    frame and in the feature table. `lookback_window` is Feast's TTL: a row matches only if
    `entity_ts - feature_ts <= lookback_window` (None: no limit). `default_values` fill a
    feature only where no row matched; a null value in the matched row stays null.
    """

    table: str | DataFrame
    feature_names: Sequence[str]
    lookup_key: str | Sequence[str]
    timestamp_lookup_key: str
    feature_timestamp_key: str = "event_timestamp"
    created_timestamp_key: str | None = None
    lookback_window: timedelta | None = None
    rename_outputs: Mapping[str, str] = field(default_factory=dict)
    default_values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        if isinstance(self.lookup_key, str):
            return (self.lookup_key,)
        return tuple(self.lookup_key)

    def output_name(self, feature: str) -> str:
        return self.rename_outputs.get(feature, feature)


def point_in_time_join(entity_df: DataFrame, lookups: Sequence[FeatureLookup]) -> DataFrame:
    """The entity rows, unchanged and all of them, with the features of each lookup as of
    the row's timestamp appended in lookup order. See the module docstring for the rules."""
    entity_columns = list(entity_df.columns)
    _check_entity_frame(entity_columns)
    resolved = [_resolve(entity_df, lookup, index) for index, lookup in enumerate(lookups)]
    _check_output_names(entity_columns, resolved)

    # One window per lookup, each on the previous one's output. Lookups on the same keys
    # could share one window, but then every row carries every lookup's columns through
    # shuffle and sort: measured slower than one lean pass per lookup.
    result = entity_df
    for item in resolved:
        result = _join_lookup(result, item)
    outputs = [name for item in resolved for name in item.output_names]
    return result.select(*[_col(c) for c in entity_columns + outputs])


@dataclass(frozen=True)
class _Resolved:
    """A lookup checked against the frames, with everything the plan needs."""

    lookup: FeatureLookup
    index: int
    features: DataFrame
    keys: tuple[str, ...]
    key_types: tuple[DataType, ...]
    ts_type: DataType
    feature_types: tuple[DataType, ...]
    created_type: DataType | None

    @property
    def output_names(self) -> list[str]:
        return [self.lookup.output_name(f) for f in self.lookup.feature_names]


def _check_entity_frame(columns: list[str]) -> None:
    if len(set(columns)) != len(columns):
        raise ValueError(f"entity frame has duplicate column names: {columns}")
    internal = [c for c in columns if c.startswith(_PREFIX)]
    if internal:
        raise ValueError(f"entity frame columns may not start with {_PREFIX!r}: {internal}")


def _resolve(entity_df: DataFrame, lookup: FeatureLookup, index: int) -> _Resolved:
    features = lookup.table
    if isinstance(features, str):
        features = entity_df.sparkSession.read.table(features)
    where = f"lookup {index}"
    if not lookup.feature_names:
        raise ValueError(f"{where}: no feature names")
    if len(set(lookup.feature_names)) != len(lookup.feature_names):
        raise ValueError(f"{where}: duplicate feature names {list(lookup.feature_names)}")
    keys = lookup.keys
    if not keys:
        raise ValueError(f"{where}: no lookup key")
    unknown_defaults = set(lookup.default_values) - set(lookup.feature_names)
    if unknown_defaults:
        raise ValueError(f"{where}: default values for unknown features {sorted(unknown_defaults)}")
    unknown_renames = set(lookup.rename_outputs) - set(lookup.feature_names)
    if unknown_renames:
        raise ValueError(f"{where}: renames of unknown features {sorted(unknown_renames)}")
    if lookup.lookback_window is not None and lookup.lookback_window < timedelta(0):
        raise ValueError(f"{where}: negative lookback window {lookup.lookback_window}")

    entity_schema = entity_df.schema
    feature_schema = features.schema
    _require(entity_schema, [*keys, lookup.timestamp_lookup_key], f"{where}: entity frame")
    wanted = [*keys, lookup.feature_timestamp_key, *lookup.feature_names]
    if lookup.created_timestamp_key:
        wanted.append(lookup.created_timestamp_key)
    _require(feature_schema, wanted, f"{where}: feature table")

    key_types = tuple(
        _common_key_type(entity_schema[k].dataType, feature_schema[k].dataType, f"{where}: key {k}")
        for k in keys
    )
    for name, schema in (
        (lookup.timestamp_lookup_key, entity_schema),
        (lookup.feature_timestamp_key, feature_schema),
    ):
        if not isinstance(schema[name].dataType, TimestampType | TimestampNTZType | DateType):
            raise TypeError(
                f"{where}: {name} is {schema[name].dataType.simpleString()}, not a timestamp"
            )
    ts_type = _common_ts_type(
        entity_schema[lookup.timestamp_lookup_key].dataType,
        feature_schema[lookup.feature_timestamp_key].dataType,
    )
    created_type = (
        feature_schema[lookup.created_timestamp_key].dataType
        if lookup.created_timestamp_key
        else None
    )
    return _Resolved(
        lookup=lookup,
        index=index,
        features=features,
        keys=keys,
        key_types=key_types,
        ts_type=ts_type,
        feature_types=tuple(feature_schema[f].dataType for f in lookup.feature_names),
        created_type=created_type,
    )


def _require(schema: StructType, names: Sequence[str], where: str) -> None:
    missing = [n for n in names if n not in schema.fieldNames()]
    if missing:
        raise ValueError(f"{where} has no column(s) {missing}; it has {schema.fieldNames()}")


def _common_key_type(entity: DataType, feature: DataType, where: str) -> DataType:
    if entity == feature:
        return entity
    if isinstance(entity, IntegralType) and isinstance(feature, IntegralType):
        return LongType()
    raise TypeError(
        f"{where}: entity frame has {entity.simpleString()}, feature table {feature.simpleString()}"
    )


def _common_ts_type(entity: DataType, feature: DataType) -> DataType:
    """Both sides compare in one type: as they are if equal, else as session-time-zone timestamps."""
    return entity if entity == feature else TimestampType()


def _check_output_names(entity_columns: list[str], resolved: list[_Resolved]) -> None:
    seen = set(entity_columns)
    for item in resolved:
        for name in item.output_names:
            if name in seen:
                raise ValueError(
                    f"lookup {item.index}: output column {name!r} already exists; "
                    "use rename_outputs"
                )
            if name.startswith(_PREFIX):
                raise ValueError(
                    f"lookup {item.index}: output names may not start with {_PREFIX!r}"
                )
            seen.add(name)


def _join_lookup(entity_df: DataFrame, lookup: _Resolved) -> DataFrame:
    """The entity frame with one lookup's features: one shuffle, one sort, one window."""
    keys, ts_type = lookup.keys, lookup.ts_type

    # The entity row travels whole: an array of one non-null struct, so that `inline` at the
    # end gives back every entity column with its exact type and nullability. Feature rows
    # carry a null payload instead, which is also how rows tell their side.
    payload = F.array(F.struct(*[_col(c) for c in entity_df.columns]))
    payload_type = entity_df.select(payload.alias("p")).schema["p"].dataType
    assert isinstance(payload_type, ArrayType) and not payload_type.containsNull

    def side(frame: DataFrame, ts_column: str, is_entity: bool) -> DataFrame:
        """Flat columns, the same on both sides: keys, ts, created, features, payload."""
        columns = [_col(k).cast(t).alias(k) for k, t in zip(keys, lookup.key_types, strict=True)]
        columns.append(_col(ts_column).cast(ts_type).alias(_TS))
        if lookup.created_type is not None:
            created = None if is_entity else _col(lookup.lookup.created_timestamp_key)
            columns.append(_typed(created, lookup.created_type).alias(_CREATED))
        for i, (name, dtype) in enumerate(
            zip(lookup.lookup.feature_names, lookup.feature_types, strict=True)
        ):
            columns.append(_typed(None if is_entity else _col(name), dtype).alias(_value(i)))
        columns.append((payload if is_entity else _typed(None, payload_type)).alias(_PAYLOAD))
        return frame.select(*columns)

    present = [_col(k).isNotNull() for k in keys]
    present.append(_col(lookup.lookup.feature_timestamp_key).isNotNull())
    features = lookup.features.where(_all(present))
    entities = side(entity_df, lookup.lookup.timestamp_lookup_key, True)
    feature_rows = side(features, lookup.lookup.feature_timestamp_key, False)
    partition = [_col(k) for k in keys]
    lookback = lookup.lookup.lookback_window
    if lookback is not None and lookback > timedelta(0):
        entities, feature_rows = _time_buckets(entities, feature_rows, lookback)
        partition.append(F.col(_BUCKET))
    union = entities.unionByName(feature_rows)

    # Shuffle the flat rows by key, and only then pack a feature row into the struct the
    # window carries forward (null on entity rows): the struct's framing never crosses the
    # shuffle.
    union = union.repartition(*partition)
    fields = [F.col(_value(i)).alias(f"v{i}") for i in range(len(lookup.feature_types))]
    if lookup.created_type is not None:
        fields.insert(0, F.col(_CREATED).alias(_CREATED_FIELD))
    if lookup.lookup.lookback_window is not None:
        fields.insert(0, F.col(_TS).alias(_MATCH_TS_FIELD))
    row = F.when(F.col(_PAYLOAD).isNull(), F.struct(*fields)).alias(_FEATURES)
    rows = union.select(*partition, F.col(_TS), F.col(_PAYLOAD), row)

    # Within a key: by timestamp; at equal timestamps feature rows (non-null struct) before
    # entity rows (null struct); among feature rows, by the struct: created timestamp, then
    # feature values, null first.
    struct = F.col(_FEATURES)
    order = [F.col(_TS).asc_nulls_first()]
    if _orderable(_struct_type(lookup)):
        order.append(struct.asc_nulls_last())
    else:
        order.append(struct.isNull().asc())
        if lookup.created_type is not None:
            order.append(struct.getField(_CREATED_FIELD).asc_nulls_first())
        order += [
            struct.getField(f"v{i}").asc_nulls_first()
            for i, dtype in enumerate(lookup.feature_types)
            if _orderable(dtype)
        ]
    window = (
        Window.partitionBy(*partition)
        .orderBy(*order)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    matched = rows.select(
        F.col(_TS), F.col(_PAYLOAD), F.last(_FEATURES, ignorenulls=True).over(window).alias(_MATCH)
    )

    match = F.col(_MATCH)
    # A null entity timestamp sorts before every feature row, so it finds no match anyway.
    condition = F.col(_TS).isNotNull() & match.isNotNull()
    if lookback is not None:
        age = F.unix_micros(F.col(_TS).cast(TimestampType())) - F.unix_micros(
            match.getField(_MATCH_TS_FIELD).cast(TimestampType())
        )
        condition = condition & (age <= F.lit(_micros(lookback)))
    outputs = []
    for i, (feature, dtype) in enumerate(
        zip(lookup.lookup.feature_names, lookup.feature_types, strict=True)
    ):
        value = F.when(condition, match.getField(f"v{i}"))
        if feature in lookup.lookup.default_values:
            value = value.otherwise(F.lit(lookup.lookup.default_values[feature]).cast(dtype))
        outputs.append(value.alias(lookup.lookup.output_name(feature)))
    # Feature rows carry a null payload, so inline yields exactly the entity rows.
    return matched.select(F.inline(F.col(_PAYLOAD)), *outputs)


def _time_buckets(
    entities: DataFrame, feature_rows: DataFrame, lookback: timedelta
) -> tuple[DataFrame, DataFrame]:
    """Both sides with a time bucket (BUCKET_LOOKBACKS lookbacks wide). An entity row's
    match is at most one lookback older, so it lies in the entity row's bucket or in the last
    lookback of the one before: feature rows there are also put in the next bucket."""
    reach = _micros(lookback)
    width = reach * BUCKET_LOOKBACKS
    micros = F.unix_micros(F.col(_TS).cast(TimestampType()))
    bucket = F.floor(micros / F.lit(width))
    near_next = micros >= (bucket + 1) * F.lit(width) - F.lit(reach)
    buckets = F.when(near_next, F.array(bucket, bucket + 1)).otherwise(F.array(bucket))
    return (
        entities.withColumn(_BUCKET, bucket),
        feature_rows.withColumn(_BUCKET, F.explode(buckets)),
    )


def _struct_type(lookup: _Resolved) -> StructType:
    """The type of the struct a feature row carries, its fields in the order they rank rows."""
    fields = [(f"v{i}", t) for i, t in enumerate(lookup.feature_types)]
    if lookup.created_type is not None:
        fields.insert(0, (_CREATED_FIELD, lookup.created_type))
    if lookup.lookup.lookback_window is not None:
        fields.insert(0, (_MATCH_TS_FIELD, lookup.ts_type))
    schema = StructType()
    for name, dtype in fields:
        schema = schema.add(name, dtype, nullable=True)
    return schema


def _value(position: int) -> str:
    return f"{_PREFIX}value_{position}"


def _typed(column: Column | None, dtype: DataType) -> Column:
    return F.lit(None).cast(dtype) if column is None else column


def _orderable(dtype: DataType) -> bool:
    if isinstance(dtype, MapType):
        return False
    if isinstance(dtype, ArrayType):
        return _orderable(dtype.elementType)
    if isinstance(dtype, StructType):
        return all(_orderable(f.dataType) for f in dtype.fields)
    return dtype.typeName() not in ("variant",)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _all(conditions: list[Column]) -> Column:
    result = conditions[0]
    for condition in conditions[1:]:
        result = result & condition
    return result


def _col(name: str) -> Column:
    """A top-level column by its exact name, even one holding dots or backticks."""
    return F.col("`" + name.replace("`", "``") + "`")
