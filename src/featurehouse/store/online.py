"""The online store: materialization at the speed of the data, and direct online reads.

Stock `feast materialize` turns every feature value into a Python protobuf object and
writes it with one SQL statement (SQLite) or one Python-packed command per entity (Redis).
Here, per feature view:

1. Spark computes each entity's newest row: of every entity on a full load; otherwise only
   of the entities whose rows changed since the Delta version the store holds (the change
   data feed between the two versions), and only where the change reaches the newest row.
2. The rows come to the driver once, through Arrow.
3. numpy encodes them in Feast's exact online format a column at a time, and they are
   written in one transaction (SQLite) or as pre-packed, pipelined commands (Redis).

What Feast 0.67 writes and reads (entity_key_serialization_version 3), and so this too:

- entity key: u32 number of join keys; per join key, sorted by name: u32 2 (STRING),
  u32 length, the name; then per value in that order: u32 type (INT64 4, STRING 2), u32
  length, the value (int64 little-endian, or UTF-8).
- value: a serialized `feast.types.Value`. double: 0x29 + 8 bytes little-endian; int64:
  0x20 + varint (two's complement: 10 bytes when negative); string: 0x12 + varint length +
  UTF-8. A null is the empty message b"", and so is NaN (Feast's conversion drops it).
- SQLite: table `<project>_<view>`, one row per (entity key, feature): the value, its text
  (`value_text`: str() of the value), `event_ts` in whole seconds (Feast's adapter stores
  `int(naive_utc.timestamp())`) and a null `created_ts` (the sources have no created column).
- Redis: one hash per entity key (serialized key + project), shared by the views with the
  same join keys; field mmh3_32("<view>:<feature>") as 4 little-endian bytes -> value, and
  "_ts:<view>" -> a serialized google.protobuf.Timestamp (seconds, nanos).

Event timestamps are the rows' own, so TTLs mean what they mean after stock Feast.

Watermarks (which Delta version of its table a view holds) live in the online store itself,
next to the data: a table `featurehouse_online_watermarks` in the SQLite file (written in
the same transaction as the rows), or a hash in Redis (written after them). So a store that
is wiped or replaced loses its watermarks with its data and the next run loads everything,
each store (local SQLite, an environment's Redis) knows its own state, and no Delta commit
is paid per run. A watermark also records the Delta table's id, a fingerprint of the view's
definition and one entity the view holds (the probe): a replaced table, a changed view or
a probe gone from the store (`feast apply` dropped the view) makes the next run a full one.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.usecase import FeatureTable, UseCase

if TYPE_CHECKING:  # Spark only materializes; reading (the prediction service) needs none.
    from pyspark.sql import DataFrame

    from featurehouse.io.lakehouse import Lakehouse

log = logging.getLogger(__name__)

FULL, INCREMENTAL, UP_TO_DATE = "full", "incremental", "up to date"
OK, NOT_FOUND, MISSING, EXPIRED = "ok", "not found", "missing", "expired"
WATERMARKS = "featurehouse_online_watermarks"
# The columns of Feast's SQLite table that a write fills, in the order `sqlite_rows` gives.
SQLITE_COLUMNS = "entity_key, feature_name, value, value_text, event_ts, created_ts"

# ---------------------------------------------------------------------------------------
# Feast's online format: pure functions over Arrow arrays, numpy arrays and bytes

_INT64_TYPE, _STRING_TYPE = 4, 2  # feast.ValueType numbers, in serialized entity keys
# A Value's one field, as its protobuf tag: double_val = 5, int64_val = 4, string_val = 2.
_DOUBLE_TAG, _INT64_TAG, _STRING_TAG = 0x29, 0x20, 0x12
_U64 = (1 << 64) - 1


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of an int64 (a negative one as its 64-bit two's complement)."""
    value &= _U64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, position after it) of the varint at `at`."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def rows_as_bytes(matrix: np.ndarray) -> list[bytes]:
    """One bytes object per row of a 2-D uint8 array. (A void view keeps trailing zero
    bytes, which a bytes view would strip.)"""
    matrix = np.ascontiguousarray(matrix, dtype=np.uint8)
    return matrix.view(f"V{matrix.shape[1]}").ravel().tolist()


def key_header(keys: Sequence[str]) -> bytes:
    """The part of a serialized entity key that names its join keys (sorted, as Feast does)."""
    out = [struct.pack("<I", len(keys))]
    for name in sorted(keys):
        encoded = name.encode()
        out.append(struct.pack("<II", _STRING_TYPE, len(encoded)) + encoded)
    return b"".join(out)


def _key_values(dtype: str, values: Sequence[Any]) -> list[bytes]:
    """The serialized values of one join key: type, length, value."""
    if dtype == "bigint":
        ints = np.asarray(values, dtype="<i8")
        matrix = np.empty((len(ints), 16), np.uint8)
        matrix[:, :8] = np.frombuffer(struct.pack("<II", _INT64_TYPE, 8), np.uint8)
        matrix[:, 8:] = ints.view(np.uint8).reshape(-1, 8)
        return rows_as_bytes(matrix)
    encoded = (str(v).encode() for v in values)
    return [struct.pack("<II", _STRING_TYPE, len(b)) + b for b in encoded]


def serialize_entity_keys(
    key_types: Mapping[str, str], columns: Mapping[str, Sequence]
) -> list[bytes]:
    """Feast's serialized entity key (version 3) of every row of `columns` (a sequence of
    values per join key)."""
    names = sorted(key_types)
    head = key_header(names)
    parts = [_key_values(key_types[k], columns[k]) for k in names]
    return [head + b"".join(p) for p in zip(*parts, strict=True)]


@dataclass(frozen=True)
class EncodedColumn:
    """One feature's serialized `Value`s, a bytes object per row (b"" for a null). Doubles
    also keep their encodings as one fixed-width matrix (nulls included, flagged in
    `null`), from which Redis commands are built without a Python step per value."""

    values: list[bytes]
    fixed: np.ndarray | None = None
    null: np.ndarray | None = None


def encode_doubles(array: pa.ChunkedArray | pa.Array) -> EncodedColumn:
    """0x29 + the IEEE double, little-endian; null and NaN as b"" (Feast's `pd.isnull`)."""
    numbers = np.asarray(array.to_numpy(zero_copy_only=False), dtype="<f8")
    null = np.isnan(numbers)  # Arrow gives NaN for a null double
    fixed = np.empty((len(numbers), 9), np.uint8)
    fixed[:, 0] = _DOUBLE_TAG
    fixed[:, 1:] = numbers.view(np.uint8).reshape(-1, 8)
    values = rows_as_bytes(fixed)
    for i in np.flatnonzero(null).tolist():
        values[i] = b""
    return EncodedColumn(values, fixed, null)


def encode_int64s(array: pa.ChunkedArray | pa.Array) -> EncodedColumn:
    """0x20 + the varint of the two's complement."""
    tag = bytes([_INT64_TAG])
    return EncodedColumn([b"" if v is None else tag + varint(v) for v in array.to_pylist()])


def encode_strings(array: pa.ChunkedArray | pa.Array) -> EncodedColumn:
    """0x12 + varint length + UTF-8; a null as b"" (an empty string is a value)."""
    tag = bytes([_STRING_TAG])

    def encode(text: str) -> bytes:
        data = text.encode()
        return tag + varint(len(data)) + data

    return EncodedColumn([b"" if v is None else encode(v) for v in array.to_pylist()])


ENCODERS = {"double": encode_doubles, "bigint": encode_int64s, "string": encode_strings}


def value_texts(array: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Feast's SQLite `value_text`: str() of the value (a float's shortest repr), None for a
    null and for NaN (stored as the empty Value)."""
    return [None if v is None or v != v else str(v) for v in array.to_pylist()]


def decode_value(blob: bytes | None) -> Any:
    """A Python value from a serialized `Value` (None for the empty message)."""
    if not blob:
        return None
    tag = blob[0]
    if tag == _DOUBLE_TAG:
        return struct.unpack_from("<d", blob, 1)[0]
    if tag == _INT64_TAG:
        return _signed(_read_varint(blob, 1)[0])
    if tag == _STRING_TAG:
        size, at = _read_varint(blob, 1)
        return blob[at : at + size].decode()
    # A type this module never writes (another writer's): Feast decodes it.
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    message = Value()
    message.ParseFromString(blob)
    return feast_value_type_to_python_type(message)


def timestamp_proto(micros: int) -> bytes:
    """A serialized google.protobuf.Timestamp (Feast's "_ts:<view>" in Redis); proto3
    leaves out a field that is zero."""
    seconds, rest = divmod(micros, 1_000_000)
    out = b"\x08" + varint(seconds) if seconds else b""
    return out + (b"\x10" + varint(rest * 1000) if rest else b"")


def decode_timestamp_proto(blob: bytes) -> datetime:
    seconds = nanos = 0
    at = 0
    while at < len(blob):
        tag = blob[at]
        value, at = _read_varint(blob, at + 1)
        if tag == 0x08:
            seconds = _signed(value)
        elif tag == 0x10:
            nanos = value
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)


def sqlite_event_seconds(micros: np.ndarray) -> list[int]:
    """Feast's SQLite `event_ts`: `int(naive_utc.timestamp())`, which takes the UTC wall time
    for local time (Feast reads it back with `datetime.fromtimestamp`, so the pair agrees)."""
    if time.timezone == 0 and not time.daylight:  # local time is UTC: plain division
        return (micros // 1_000_000).tolist()
    epoch = datetime(1970, 1, 1)
    return [int((epoch + timedelta(microseconds=m)).timestamp()) for m in micros.tolist()]


def sqlite_event_time(seconds: int) -> datetime:
    """What Feast's reader makes of `event_ts`."""
    return datetime.fromtimestamp(int(seconds)).replace(tzinfo=UTC)


def redis_field(view: str, feature: str) -> bytes:
    """Feast's Redis hash field of a feature: murmur3_32 of "view:feature", little-endian."""
    import mmh3

    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def resp_command(*args: bytes) -> bytes:
    """One command in the Redis protocol (what redis-py packs, without its cost per call)."""
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


def resp_field_values(field_name: bytes, column: EncodedColumn) -> list[bytes]:
    """`$len field $len value` per row, the part of an HSET that sets one feature. Doubles
    are all 9 bytes: the rows are cut from one matrix."""
    head = _bulk(field_name)
    if column.fixed is None:
        return [head + _bulk(v) for v in column.values]
    width = column.fixed.shape[1]
    prefix = np.frombuffer(head + b"$%d\r\n" % width, np.uint8)
    matrix = np.empty((len(column.fixed), len(prefix) + width + 2), np.uint8)
    matrix[:, : len(prefix)] = prefix
    matrix[:, len(prefix) : -2] = column.fixed
    matrix[:, -2:] = np.frombuffer(b"\r\n", np.uint8)
    out = rows_as_bytes(matrix)
    empty = head + _bulk(b"")
    for i in np.flatnonzero(column.null).tolist():
        out[i] = empty
    return out


# ---------------------------------------------------------------------------------------
# A feature view as the online store sees it


@dataclass(frozen=True)
class ViewSpec:
    """One feature table's Feast view, with the names the online store uses."""

    name: str
    table: str  # the Delta feature table (a lakehouse key)
    project: str
    key_types: tuple[tuple[str, str], ...]  # the view's join keys and their types, in order
    timestamp: str
    features: tuple[tuple[str, str], ...]  # (name, type)
    ttl: timedelta | None

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.key_types]

    @property
    def feature_names(self) -> list[str]:
        return [f for f, _ in self.features]

    @property
    def sqlite_table(self) -> str:
        return f"{self.project}_{self.name}"

    @property
    def ts_field(self) -> bytes:
        return f"_ts:{self.name}".encode()

    @cached_property
    def redis_fields(self) -> list[bytes]:
        return [redis_field(self.name, f) for f in self.feature_names]

    @cached_property
    def fingerprint(self) -> str:
        """Changes when what the store holds for the view would change shape."""
        text = repr((self.project, self.name, self.key_types, self.features, self.timestamp))
        return sha256(text.encode()).hexdigest()[:16]

    def entity_keys(self, columns: Mapping[str, Sequence]) -> list[bytes]:
        return serialize_entity_keys(dict(self.key_types), columns)


def view_spec(settings: Settings, table: FeatureTable) -> ViewSpec:
    return ViewSpec(
        name=table.view_name,
        table=table.name,
        project=settings.project,
        key_types=tuple(table.key_types.items()),
        timestamp=table.timestamp,
        features=tuple((f.name, f.dtype) for f in table.features),
        ttl=table.ttl,
    )


@dataclass(frozen=True)
class Watermark:
    """What a view in the online store holds: the Delta table (id) at `version`."""

    version: int
    table_id: str
    fingerprint: str
    probe: str | None  # hex of one entity key the view holds; None when it holds none
    written_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Watermark:
        return cls(**json.loads(text))


def choose_mode(
    mark: Watermark | None,
    fingerprint: str,
    table_id: str,
    version: int,
    *,
    full: bool = False,
    probe_held: bool = True,
) -> tuple[str, str]:
    """(mode, why): a full load unless the store provably holds an older version of the
    same table for the same view definition."""
    if full:
        return FULL, "asked for a full load"
    if mark is None:
        return FULL, "never materialized into this store"
    if not probe_held:
        return FULL, "the store lost the view's rows (feast apply dropped the view?)"
    if mark.fingerprint != fingerprint:
        return FULL, "the view's definition changed"
    if mark.table_id != table_id:
        return FULL, "the Delta table was replaced"
    if mark.version > version:
        return FULL, f"the store holds version {mark.version}, newer than the table's {version}"
    if mark.version == version:
        return UP_TO_DATE, f"holds version {version}"
    return INCREMENTAL, f"versions {mark.version + 1}..{version}"


# ---------------------------------------------------------------------------------------
# Spark: the newest row of each entity, of all of them or of those that changed

_CHANGED_AT = "_changed_at"
_NEWEST = "_newest"


def newest_rows(
    rows: DataFrame, keys: Sequence[str], timestamp: str, features: Sequence[str]
) -> DataFrame:
    """Each entity's newest row. The max of a (timestamp, features...) struct is one
    aggregation (no window, no self-join); a tie on the timestamp cannot happen, since
    (keys, timestamp) identifies a feature row."""
    import pyspark.sql.functions as F

    newest = F.max(F.struct(F.col(timestamp), *[F.col(f) for f in features])).alias(_NEWEST)
    return rows.groupBy(*keys).agg(newest).select(*keys, f"{_NEWEST}.*")


def changed_entities(changes: DataFrame, keys: Sequence[str], timestamp: str) -> pa.Table:
    """Each entity in the change data feed, with the newest time among its changed rows
    (inserted, deleted, or updated: before and after)."""
    import pyspark.sql.functions as F

    return changes.groupBy(*keys).agg(F.max(timestamp).alias(_CHANGED_AT)).toArrow()


def changed_newest_rows(
    current: DataFrame,
    changed: pa.Table,
    keys: Sequence[str],
    timestamp: str,
    features: Sequence[str],
) -> pa.Table:
    """The newest row of each changed entity whose newest row changed: where a change is
    at or after its newest row (inserted, corrected, or a newer row deleted); a change to
    older rows only leaves the newest as it was. An entity with no row left comes with a
    null timestamp (to delete). The changed entities are few: they filter the table as a
    broadcast, and the rest is done in Arrow."""
    import pyspark.sql.functions as F

    spark = current.sparkSession
    if changed.num_rows:
        entities = F.broadcast(spark.createDataFrame(changed.select(list(keys))))
        current = current.join(entities, list(keys), "left_semi")
    else:  # e.g. only OPTIMIZE since: no data changed
        current = current.limit(0)
    newest = newest_rows(current, keys, timestamp, features).toArrow()
    both = changed.join(newest, list(keys), join_type="left outer")
    stamp = both.column(timestamp)
    reached = pc.or_kleene(pc.is_null(stamp), pc.less_equal(stamp, both.column(_CHANGED_AT)))
    return both.filter(reached).select([*keys, timestamp, *features])


def table_state(lake: Lakehouse, key: str) -> tuple[int, str]:
    """(current version, table id) of a Delta table."""
    return lake.version(key), lake.table_id(key)


def collect_rows(
    lake: Lakehouse, view: ViewSpec, version: int, since: int | None
) -> tuple[pa.Table, str | None]:
    """The rows to write: the newest of each entity that changed after version `since` up
    to `version`, or of every entity when `since` is None. The second item says why a full
    load was made instead of the incremental one asked for (else None).

    The newest rows come from the table's current state, which may be past `version` (a
    commit since): reading the latest snapshot reuses the one Delta keeps, where a read
    at `version` would rebuild it, and the next run writes those entities again anyway
    (the change feed after `version` names them), so nothing is missed."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    keys, timestamp, features = view.keys, view.timestamp, view.feature_names
    current = lake.read(view.table)
    if since is None:
        return newest_rows(current, keys, timestamp, features).toArrow(), None
    try:
        changed = changed_entities(lake.changes(view.table, since, version), keys, timestamp)
    except (PySparkException, Py4JError) as exc:
        # Versions past the log's retention, or the change feed off for a while.
        why = f"change data feed unreadable: {str(exc).splitlines()[0][:200]}"
        log.warning("online %s: %s", view.name, why)
        return newest_rows(current, keys, timestamp, features).toArrow(), why
    return changed_newest_rows(current, changed, keys, timestamp, features), None


# ---------------------------------------------------------------------------------------
# The collected rows, encoded


@dataclass(frozen=True)
class EncodedRows:
    """A view's rows in Feast's format: the entities to write and the ones to delete."""

    table: pa.Table  # the rows to write, as collected
    keys: list[bytes]  # their serialized entity keys
    micros: np.ndarray  # their event timestamps, microseconds since the epoch (UTC)
    columns: list[EncodedColumn]  # one per feature, in the view's order
    deleted: list[bytes]  # serialized keys of the entities whose table has no row left


def encode_rows(view: ViewSpec, rows: pa.Table) -> EncodedRows:
    gone = np.asarray(rows.column(view.timestamp).is_null().to_numpy(zero_copy_only=False))
    deleted = rows.filter(pa.array(gone))
    rows = rows.filter(pa.array(~gone))
    stamps = rows.column(view.timestamp).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return EncodedRows(
        table=rows,
        keys=view.entity_keys({k: rows.column(k).to_pylist() for k in view.keys}),
        micros=np.asarray(stamps.to_numpy(zero_copy_only=False), dtype=np.int64),
        columns=[ENCODERS[dtype](rows.column(name)) for name, dtype in view.features],
        deleted=view.entity_keys({k: deleted.column(k).to_pylist() for k in view.keys}),
    )


ViewRows = dict[bytes, tuple[datetime, dict[str, bytes]]]  # key -> (event time, values)


# ---------------------------------------------------------------------------------------
# SQLite


class SqliteOnlineStore:
    """Feast's SQLite tables, written in one transaction per view (WAL: readers go on
    reading the previous state meanwhile). Safe to share between threads."""

    def __init__(self, path: Path, *, writer: bool = True):
        if not writer and not Path(path).is_file():
            raise FeaturehouseError(f"no online store at {path}: run featurehouse materialize")
        self.path = Path(path)
        self.writer = writer
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self.writer:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.writer:
            conn.execute("PRAGMA journal_mode=WAL")
            # A commit in WAL mode survives a crash of the process; after a power loss the
            # store is rebuilt from Delta, so a commit need not wait for the disk twice.
            conn.execute("PRAGMA synchronous=NORMAL")
            # A full load fills 3 B-trees at once (rows, primary key, Feast's entity_key
            # index): a 64 MB page cache keeps them from spilling mid-transaction.
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {WATERMARKS} (view TEXT PRIMARY KEY, state TEXT)"
            )
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def holds(self, view: ViewSpec, entity_key: bytes) -> bool:
        query = f'SELECT 1 FROM "{view.sqlite_table}" WHERE entity_key = ? LIMIT 1'
        return self.connection().execute(query, (entity_key,)).fetchone() is not None

    def watermark(self, view: ViewSpec) -> Watermark | None:
        conn = self.connection()
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        if conn.execute(exists, (view.sqlite_table,)).fetchone() is None:
            raise FeaturehouseError(
                f"the online store {self.path} has no table for feature view {view.name}:"
                " register the Feast definitions first (featurehouse apply)"
            )
        query = f"SELECT state FROM {WATERMARKS} WHERE view = ?"
        row = conn.execute(query, (view.sqlite_table,)).fetchone()
        return Watermark.from_json(row[0]) if row else None

    def write(self, view: ViewSpec, rows: EncodedRows, mark: Watermark, *, full: bool) -> None:
        """In one transaction: a full load replaces the view's rows, an incremental one
        replaces the rows of the entities written and removes the deleted entities."""
        table = f'"{view.sqlite_table}"'
        with self._transaction() as conn:
            if full:
                conn.execute(f"DELETE FROM {table}")
            else:
                deleted = [(k,) for k in rows.deleted]
                conn.executemany(f"DELETE FROM {table} WHERE entity_key = ?", deleted)
            # A row replaces the one with the same (entity key, feature), as Feast's upsert.
            verb = "INSERT" if full else "INSERT OR REPLACE"
            insert = f"{verb} INTO {table} ({SQLITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            conn.executemany(insert, sqlite_rows(view, rows))
            conn.execute(
                f"INSERT OR REPLACE INTO {WATERMARKS} (view, state) VALUES (?, ?)",
                (view.sqlite_table, mark.to_json()),
            )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def read(self, views: Sequence[ViewSpec], keys: Sequence[list[bytes]]) -> list[ViewRows]:
        """Per view, what it holds of the entity keys given for it."""
        return [self._read_view(v, k) for v, k in zip(views, keys, strict=True)]

    def _read_view(self, view: ViewSpec, keys: list[bytes]) -> ViewRows:
        found: ViewRows = {}
        # SQLite takes up to 32,766 parameters in a statement.
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            query = (
                f'SELECT entity_key, feature_name, value, event_ts FROM "{view.sqlite_table}"'
                f" WHERE entity_key IN ({', '.join('?' * len(chunk))})"
            )
            with self._lock:
                try:
                    selected = self.connection().execute(query, chunk).fetchall()
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc):
                        raise
                    raise FeaturehouseError(
                        f"the online store {self.path} has no table for feature view"
                        f" {view.name}: run featurehouse materialize"
                    ) from None
            for entity_key, name, value, event_ts in selected:
                entry = found.setdefault(entity_key, (sqlite_event_time(event_ts), {}))
                entry[1][name] = value
        return found


def sqlite_rows(view: ViewSpec, rows: EncodedRows) -> Iterator[tuple]:
    """A row of SQLITE_COLUMNS per entity and feature, in the order of Feast's primary key,
    so that SQLite's B-trees are appended to."""
    names = view.feature_names
    columns = [
        (names[j], rows.columns[j].values, value_texts(rows.table.column(names[j])))
        for j in sorted(range(len(names)), key=names.__getitem__)
    ]
    seconds = sqlite_event_seconds(rows.micros)
    for i in sorted(range(len(rows.keys)), key=rows.keys.__getitem__):
        key, event_ts = rows.keys[i], seconds[i]
        for name, values, texts in columns:
            yield key, name, values[i], texts[i], event_ts, None


# ---------------------------------------------------------------------------------------
# Redis


class RedisOnlineStore:
    """Feast's Redis hashes, written as pre-packed HSET commands in pipelined batches."""

    BATCH = 2_000  # commands per round trip

    def __init__(self, connection_string: str):
        from feast.infra.online_stores.redis import RedisOnlineStore as FeastRedis
        from redis import Redis

        # Feast's own parser, so that both read one connection string the same way.
        nodes, params = FeastRedis._parse_connection_string(connection_string)
        self.client = Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)

    def close(self) -> None:
        self.client.close()

    def execute(self, commands: Sequence[bytes]) -> list[Any]:
        """Send packed commands, `BATCH` per round trip, and return their replies in order
        (an error reply raises)."""
        pool = self.client.connection_pool
        connection = pool.get_connection()
        replies: list[Any] = []
        try:
            for start in range(0, len(commands), self.BATCH):
                batch = commands[start : start + self.BATCH]
                connection.send_packed_command([b"".join(batch)])
                replies.extend(connection.read_response() for _ in batch)
        except BaseException:
            connection.disconnect()  # replies may be left unread on it
            raise
        finally:
            pool.release(connection)
        return replies

    @staticmethod
    def redis_key(view: ViewSpec, entity_key: bytes) -> bytes:
        return entity_key + view.project.encode()

    @staticmethod
    def watermark_key(view: ViewSpec) -> bytes:
        return f"featurehouse:online_watermarks:{view.project}".encode()

    def holds(self, view: ViewSpec, entity_key: bytes) -> bool:
        key = self.redis_key(view, entity_key)
        return bool(self.execute([resp_command(b"HEXISTS", key, view.ts_field)])[0])

    def watermark(self, view: ViewSpec) -> Watermark | None:
        get = resp_command(b"HGET", self.watermark_key(view), view.name.encode())
        (state,) = self.execute([get])
        return Watermark.from_json(state) if state else None

    def write(self, view: ViewSpec, rows: EncodedRows, mark: Watermark, *, full: bool) -> None:
        """The rows, then the removals, then the watermark: a run that stops half-way leaves
        the old watermark behind, so the next run writes those entities again."""
        commands = redis_hsets(view, rows)
        stale = self._stale_keys(view, rows.keys) if full else rows.deleted
        fields = [*view.redis_fields, view.ts_field]
        commands += [resp_command(b"HDEL", self.redis_key(view, k), *fields) for k in stale]
        state = mark.to_json().encode()
        commands.append(resp_command(b"HSET", self.watermark_key(view), view.name.encode(), state))
        self.execute(commands)

    def _stale_keys(self, view: ViewSpec, written: list[bytes]) -> list[bytes]:
        """The entities of the view's join keys in the store that a full load did not write
        (their Delta rows are gone): a full load leaves the view holding its table."""
        project = view.project.encode()
        header = key_header(view.keys)
        pattern = b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in header)
        keep = set(written)
        stale = []
        for key in self.client.scan_iter(match=pattern + b"*" + project, count=10_000):
            entity_key = key[: -len(project)]
            if entity_key not in keep:
                stale.append(entity_key)
        return stale

    def read(self, views: Sequence[ViewSpec], keys: Sequence[list[bytes]]) -> list[ViewRows]:
        """Per view, what it holds of the entity keys given for it: one HMGET per view and
        entity, all in one round trip."""
        commands = []
        for view, view_keys in zip(views, keys, strict=True):
            fields = b"".join(_bulk(f) for f in [*view.redis_fields, view.ts_field])
            head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(view.features) + 1)
            commands += [head + _bulk(self.redis_key(view, k)) + fields for k in view_keys]
        replies = iter(self.execute(commands))
        out = []
        for view, view_keys in zip(views, keys, strict=True):
            found: ViewRows = {}
            for key in view_keys:
                *values, stamp = next(replies)
                if stamp is not None:  # no "_ts:<view>": the view does not hold the entity
                    named = dict(zip(view.feature_names, values, strict=True))
                    found[key] = (decode_timestamp_proto(stamp), named)
            out.append(found)
        return out


def redis_hsets(view: ViewSpec, rows: EncodedRows) -> list[bytes]:
    """One HSET per entity: every feature and the "_ts:<view>" timestamp."""
    head = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (len(view.features) + 1))
    project = view.project.encode()
    ts_head = _bulk(view.ts_field)
    stamps = [ts_head + _bulk(timestamp_proto(m)) for m in rows.micros.tolist()]
    parts = zip(
        *(resp_field_values(f, c) for f, c in zip(view.redis_fields, rows.columns, strict=True)),
        strict=True,
    )
    return [
        b"".join((head, _bulk(key + project), stamp, *values))
        for key, stamp, values in zip(rows.keys, stamps, parts, strict=True)
    ]


# ---------------------------------------------------------------------------------------
# Either store

OnlineStore = SqliteOnlineStore | RedisOnlineStore


def open_store(settings: Settings, *, writer: bool = True) -> OnlineStore:
    """A connection to the configured online store. A reader (`writer=False`) refuses a
    missing SQLite file rather than making a new, empty one."""
    from featurehouse.store.feast_store import sqlite_path

    online = settings.feast.online_store
    if online.type == "redis":
        return RedisOnlineStore(online.redis_connection_string())
    return SqliteOnlineStore(sqlite_path(settings), writer=writer)


# ---------------------------------------------------------------------------------------
# Materialization


@dataclass(frozen=True)
class ViewMaterialization:
    """What one run did to one view."""

    view: str
    mode: str  # "full", "incremental" or "up to date"
    entities: int  # entities written
    deleted: int  # entities removed (their table has no row left)
    version: int  # the Delta version the view now holds
    seconds: float
    reason: str = ""

    def describe(self) -> str:
        if self.mode == UP_TO_DATE:
            return f"{self.view}: up to date (version {self.version})"
        deleted = f", {self.deleted:,d} removed" if self.deleted else ""
        return (
            f"{self.view}: {self.mode}, {self.entities:,d} entities{deleted} in"
            f" {self.seconds:.1f} s (version {self.version}; {self.reason})"
        )


def materialize_online(
    lake: Lakehouse, settings: Settings, use_case: UseCase, *, full: bool = False
) -> list[ViewMaterialization]:
    """Bring every view of the use case in the online store up to its Delta table's current
    version: all entities the first time (or with `full`), else only those whose newest
    row changed. The Feast definitions must be applied (the store's tables exist)."""
    store = open_store(settings)
    try:
        return [
            materialize_view(lake, store, view_spec(settings, table), full=full)
            for table in use_case.tables
        ]
    finally:
        store.close()


def materialize_view(
    lake: Lakehouse, store: OnlineStore, view: ViewSpec, *, full: bool = False
) -> ViewMaterialization:
    """Bring one view up to its Delta table's current version (reload it with `full`)."""
    started = time.perf_counter()
    version, table_id = table_state(lake, view.table)
    mark = store.watermark(view)
    held = mark is None or mark.probe is None or store.holds(view, bytes.fromhex(mark.probe))
    mode, reason = choose_mode(
        mark, view.fingerprint, table_id, version, full=full, probe_held=held
    )
    written = deleted = 0
    if mode != UP_TO_DATE:
        since = mark.version if mode == INCREMENTAL else None
        collected, fallback = collect_rows(lake, view, version, since)
        if fallback:
            mode, reason = FULL, fallback
        rows = encode_rows(view, collected)
        probe = _probe(rows, mark if mode == INCREMENTAL else None)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        new_mark = Watermark(version, table_id, view.fingerprint, probe, written_at=now)
        store.write(view, rows, new_mark, full=mode == FULL)
        written, deleted = len(rows.keys), len(rows.deleted)
    seconds = time.perf_counter() - started
    result = ViewMaterialization(view.name, mode, written, deleted, version, seconds, reason)
    log.info("online %s", result.describe())
    return result


def _probe(rows: EncodedRows, previous: Watermark | None) -> str | None:
    """One entity key the view holds after the write (hex), or None if it holds none."""
    if rows.keys:
        return rows.keys[0].hex()
    if previous is None or previous.probe is None:
        return None
    return None if previous.probe in {k.hex() for k in rows.deleted} else previous.probe


# ---------------------------------------------------------------------------------------
# Online reads


@dataclass(frozen=True)
class OnlineRow:
    """One entity's online features.

    `status` is "ok" (every view has fresh features), "not found" (no view has any: never
    materialized, or unknown), or the views that are missing or expired, e.g.
    "missing machine_errors; expired machine_telemetry" (their features are None, or older
    than the view's TTL, which Feast would still return). `views` has each view's status,
    `event_timestamps` each present view's event time, and `oldest_event_timestamp` the
    oldest of them: the age of the features."""

    keys: dict[str, Any]
    status: str
    features: dict[str, Any]
    views: dict[str, str]
    event_timestamps: dict[str, datetime]
    oldest_event_timestamp: datetime | None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def found(self) -> bool:
        return self.status != NOT_FOUND


def row_status(views: Mapping[str, str]) -> str:
    """The entity's status from its views' statuses."""
    if all(s == MISSING for s in views.values()):
        return NOT_FOUND
    parts = []
    for kind in (MISSING, EXPIRED):
        named = [v for v, s in views.items() if s == kind]
        if named:
            parts.append(f"{kind} {', '.join(named)}")
    return "; ".join(parts) or OK


def view_status(event_time: datetime | None, ttl: timedelta | None, now: datetime) -> str:
    """Missing (no event time: the view does not hold the entity), expired (older than the
    view's TTL) or ok."""
    if event_time is None:
        return MISSING
    if ttl and now - event_time > ttl:
        return EXPIRED
    return OK


def typed_keys(key_types: Mapping[str, str], row: Mapping[str, Any]) -> dict[str, Any]:
    """The entity's keys, typed as declared; a missing key or a bad value is a clear error."""
    missing = [k for k in key_types if k not in row]
    if missing:
        raise FeaturehouseError(
            f"an entity is identified by {', '.join(key_types)}; missing {', '.join(missing)}"
        )
    try:
        return {k: int(row[k]) if t == "bigint" else str(row[k]) for k, t in key_types.items()}
    except (TypeError, ValueError):
        raise FeaturehouseError(f"bad key value in {dict(row)}: {dict(key_types)}") from None


class OnlineReader:
    """Reads a use case's online features straight from the store (not through Feast's
    FeatureStore): one round trip to Redis, one query per view to SQLite. Made once and
    shared (a service keeps one per use case; it is safe between threads)."""

    def __init__(self, settings: Settings, use_case: UseCase):
        self.views = [view_spec(settings, t) for t in use_case.tables]
        self.key_types = dict(use_case.entity.keys)
        self.store = open_store(settings, writer=False)

    def close(self) -> None:
        self.store.close()

    def read(self, entity_rows: Sequence[Mapping[str, Any]]) -> list[OnlineRow]:
        """Each entity's features, with a status per entity and per view."""
        typed = [typed_keys(self.key_types, row) for row in entity_rows]
        keys = [v.entity_keys({k: [r[k] for r in typed] for k in v.keys}) for v in self.views]
        found = self.store.read(self.views, [list(dict.fromkeys(k)) for k in keys])
        now = datetime.now(UTC)
        return [
            self._row(row, [f.get(k[i]) for f, k in zip(found, keys, strict=True)], now)
            for i, row in enumerate(typed)
        ]

    def _row(self, keys: dict, entries: list, now: datetime) -> OnlineRow:
        features: dict[str, Any] = {}
        views: dict[str, str] = {}
        stamps: dict[str, datetime] = {}
        for view, entry in zip(self.views, entries, strict=True):
            event_time, values = entry or (None, {})
            features.update({n: decode_value(values.get(n)) for n in view.feature_names})
            views[view.name] = view_status(event_time, view.ttl, now)
            if event_time is not None:
                stamps[view.name] = event_time
        return OnlineRow(
            keys=keys,
            status=row_status(views),
            features=features,
            views=views,
            event_timestamps=stamps,
            oldest_event_timestamp=min(stamps.values(), default=None),
        )


def read_online(
    settings: Settings, use_case: UseCase, entity_rows: Sequence[Mapping[str, Any]]
) -> list[OnlineRow]:
    """Each entity's online features, read once (a service keeps an `OnlineReader`)."""
    reader = OnlineReader(settings, use_case)
    try:
        return reader.read(entity_rows)
    finally:
        reader.close()


def online_columns(use_case: UseCase, rows: Sequence[OnlineRow]) -> dict[str, list[Any]]:
    """The rows as columns, keys first, as Feast's `get_online_features(...).to_dict()`."""
    names = [*use_case.entity.keys, *(f.name for f in use_case.features)]
    return {n: [r.keys[n] if n in r.keys else r.features.get(n) for r in rows] for n in names}
