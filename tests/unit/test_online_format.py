"""Feast's online format, as `featurehouse.store.online` encodes it column by column, against
Feast's own serialization of the same values (entity keys, `Value` messages, timestamps,
Redis field names): byte for byte, edge values included."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from feast import ValueType
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, extract_text_and_num
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from google.protobuf.timestamp_pb2 import Timestamp

from featurehouse.store import online

DOUBLES = [0.0, -0.0, 1.5, -2.25e-300, 1e308, math.inf, -math.inf, math.nan, None, 0.1]
INT64S = [0, 1, 127, 128, 300, -1, -128, 2**63 - 1, -(2**63), None, 16384]
STRINGS = ["", "a", "grüße ✓", "x" * 127, "y" * 128, "z" * 20_000, None]
VALUE_TYPES = {"double": ValueType.DOUBLE, "bigint": ValueType.INT64, "string": ValueType.STRING}


def feast_values(dtype: str, values: list) -> list[bytes]:
    """What `feast materialize` stores for each value (a null, and NaN, as the empty Value)."""
    protos = python_values_to_proto_values(values, VALUE_TYPES[dtype])
    return [p.SerializeToString() for p in protos]


@pytest.mark.parametrize(
    ("dtype", "values", "arrow_type"),
    [
        ("double", DOUBLES, pa.float64()),
        ("bigint", INT64S, pa.int64()),
        ("string", STRINGS, pa.string()),
    ],
)
def test_feature_values_encode_as_feasts_value_messages(dtype, values, arrow_type):
    encoded = online.ENCODERS[dtype](pa.array(values, arrow_type))

    assert encoded.values == feast_values(dtype, values)


@pytest.mark.parametrize(
    ("dtype", "values", "arrow_type"),
    [
        ("double", DOUBLES, pa.float64()),
        ("bigint", INT64S, pa.int64()),
        ("string", STRINGS, pa.string()),
    ],
)
def test_value_texts_are_what_feasts_sqlite_store_writes(dtype, values, arrow_type):
    protos = python_values_to_proto_values(values, VALUE_TYPES[dtype])

    texts = online.value_texts(pa.array(values, arrow_type))

    assert texts == [extract_text_and_num(p, compute_num=False)[0] for p in protos]


@pytest.mark.parametrize(
    ("dtype", "values", "arrow_type"),
    [
        ("double", DOUBLES, pa.float64()),
        ("bigint", INT64S, pa.int64()),
        ("string", STRINGS, pa.string()),
    ],
)
def test_values_decode_to_what_was_encoded(dtype, values, arrow_type):
    blobs = online.ENCODERS[dtype](pa.array(values, arrow_type)).values

    decoded = [online.decode_value(b) for b in blobs]

    expected = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    assert decoded == expected


def test_a_value_of_another_type_is_decoded_through_feast():
    assert online.decode_value(Value(bool_val=True).SerializeToString()) is True


def feast_entity_key(keys: dict) -> bytes:
    values = [
        Value(int64_val=v) if isinstance(v, int) else Value(string_val=v) for v in keys.values()
    ]
    proto = EntityKey(join_keys=list(keys), entity_values=values)
    return serialize_entity_key(proto, entity_key_serialization_version=3)


@pytest.mark.parametrize(
    "key_types",
    [
        {"machine_id": "bigint"},
        {"system": "string"},
        {"store_id": "bigint", "item_id": "bigint"},  # serialized sorted by name
        {"shop": "string", "product": "bigint"},
    ],
)
def test_entity_keys_serialize_as_feasts_version_3(key_types):
    samples = {"bigint": [0, 7, -3, 2**62], "string": ["north", "süd", "", "k" * 300]}
    columns = {k: samples[t] for k, t in key_types.items()}

    ours = online.serialize_entity_keys(key_types, columns)

    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    assert ours == [feast_entity_key(row) for row in rows]


@pytest.mark.parametrize(
    "when",
    [
        datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2024, 3, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    ],
)
def test_event_timestamps_serialize_as_protobuf_timestamps(when):
    micros = round((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    stamp = Timestamp()
    stamp.FromDatetime(when)

    blob = online.timestamp_proto(micros)

    assert blob == stamp.SerializeToString()
    assert online.decode_timestamp_proto(blob) == when


def test_redis_fields_are_feasts_murmur_hashes():
    assert online.redis_field("machine_telemetry", "volt_mean_24h") == _mmh3(
        "machine_telemetry:volt_mean_24h"
    )


def test_a_redis_hset_is_the_protocol_redis_py_sends():
    from redis.connection import Encoder, PythonRespSerializer

    packed = PythonRespSerializer(1_000_000, Encoder("utf-8", "strict", False).encode).pack(
        "HSET", b"key", b"f", b"\x00v"
    )

    assert online.resp_command(b"HSET", b"key", b"f", b"\x00v") == b"".join(packed)
