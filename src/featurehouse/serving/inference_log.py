"""The inference log: every answered prediction, for monitoring to compare with training.

One row per entity of every answered request: the request id and the entity's place in
it, when it was asked, its keys, its online status, every feature value used (typed, one
column each), the prediction(s), the model name and version, and the time the features
were as of. This is the shape of a Databricks inference table, with the payload unpacked.

How it travels, off the request path:

1. A request appends one tuple to an in-memory queue (no I/O, no serialization).
2. A writer thread wakes every `flush_interval` or when `batch_rows` rows wait, and writes
   what is queued as one Parquet file per use case into `<dir>/<use case>/pending/`
   (written under a temporary name, then renamed: a file there is always complete).
3. `load_inference_log` (a job, with Spark; never in the service) merges the pending
   files into the use case's `inference_log` Delta table on (request_id, entity_index),
   so a rerun after a crash inserts nothing twice, then moves them to `loaded/`.

What a crash of the service loses: the rows still queued, i.e. at most the last batch
(`batch_rows` rows, or `flush_interval` of traffic). A graceful stop writes them. If
the queue ever holds more than `max_queue_rows` (the disk stalls), the oldest rows are
dropped and counted in `featurehouse_inference_log_dropped_rows`, so the service keeps
answering.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from featurehouse.config import Settings
from featurehouse.serving.settings import InferenceLogSettings, ServingSettings, inference_log_dir
from featurehouse.usecase import Classification, UseCase

log = logging.getLogger(__name__)

TABLE = "inference_log"  # the lakehouse key of each use case's table
MERGE_KEYS = ("request_id", "entity_index")
PENDING, LOADED = "pending", "loaded"
_ARROW_TYPES = {"bigint": pa.int64(), "double": pa.float64(), "string": pa.string()}
_TIMESTAMP = pa.timestamp("us", tz="UTC")


def prediction_columns(use_case: UseCase) -> list[tuple[str, pa.DataType]]:
    task = use_case.task
    if isinstance(task, Classification):
        return [(task.prediction, pa.float64()), (task.flag, pa.int32())]
    return [(task.prediction, pa.float64())]


def log_schema(use_case: UseCase) -> pa.Schema:
    """The columns of a use case's inference log, in order."""
    fields = [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("entity_index", pa.int32(), nullable=False),
        pa.field("requested_at", _TIMESTAMP, nullable=False),
        *(pa.field(k, _ARROW_TYPES[t]) for k, t in use_case.entity.keys.items()),
        pa.field("status", pa.string()),
        *(pa.field(f.name, _ARROW_TYPES[f.dtype]) for f in use_case.features),
        *(pa.field(name, dtype) for name, dtype in prediction_columns(use_case)),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("features_as_of", _TIMESTAMP),
    ]
    return pa.schema(fields)


@dataclass(frozen=True)
class LoggedEntity:
    """One entity of an answered request, as the request path hands it over."""

    index: int
    keys: Mapping[str, Any]
    status: str
    features: Mapping[str, Any]
    predictions: Sequence[Any] | None  # in `prediction_columns` order; None: not predicted
    features_as_of: datetime | None


@dataclass(frozen=True)
class LoggedRequest:
    request_id: str
    requested_at: datetime
    model_name: str
    model_version: str
    entities: list[LoggedEntity]


def to_table(use_case: UseCase, requests: Sequence[LoggedRequest]) -> pa.Table:
    schema = log_schema(use_case)
    keys = list(use_case.entity.keys)
    features = [f.name for f in use_case.features]
    predicted = [name for name, _ in prediction_columns(use_case)]
    columns: dict[str, list] = {name: [] for name in schema.names}
    for request in requests:
        for entity in request.entities:
            columns["request_id"].append(request.request_id)
            columns["entity_index"].append(entity.index)
            columns["requested_at"].append(request.requested_at)
            for k in keys:
                columns[k].append(entity.keys.get(k))
            columns["status"].append(entity.status)
            for f in features:
                columns[f].append(entity.features.get(f))
            values = entity.predictions or [None] * len(predicted)
            for name, value in zip(predicted, values, strict=True):
                columns[name].append(value)
            columns["model_name"].append(request.model_name)
            columns["model_version"].append(request.model_version)
            columns["features_as_of"].append(entity.features_as_of)
    return pa.table([pa.array(columns[f.name], f.type) for f in schema], schema=schema)


class InferenceLog:
    """The queue and its writer thread, for every use case the service answers."""

    def __init__(
        self,
        directory: Path | None,
        use_cases: Mapping[str, UseCase],
        settings: InferenceLogSettings,
        metrics: Any = None,
    ):
        self.directory = directory
        self.use_cases = dict(use_cases)
        self.settings = settings
        self.metrics = metrics
        self._queues: dict[str, deque[LoggedRequest]] = {name: deque() for name in use_cases}
        self._rows = 0  # rows queued (approximate between threads; only used to wake up)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one flush at a time
        self._sequence = 0

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    @property
    def queued_rows(self) -> int:
        return self._rows

    def pending_dir(self, use_case: str) -> Path:
        return self.directory / use_case / PENDING

    def record(self, use_case: str, request: LoggedRequest) -> None:
        """Queue one answered request (the request path's only cost: an append)."""
        if self.directory is None:
            return
        queue = self._queues[use_case]
        queue.append(request)
        self._rows += len(request.entities)
        if self._rows >= self.settings.max_queue_rows:
            self._drop_oldest()
        if self._rows >= self.settings.batch_rows:
            self._wake.set()

    def _drop_oldest(self) -> None:
        for name, queue in self._queues.items():
            while queue and self._rows >= self.settings.max_queue_rows:
                try:
                    dropped = queue.popleft()
                except IndexError:
                    break
                self._rows -= len(dropped.entities)
                if self.metrics is not None:
                    self.metrics.log_dropped.labels(name).inc(len(dropped.entities))

    def start(self) -> None:
        if self.directory is None:
            log.warning("the inference log is off: no directory (serving.inference_log.dir)")
            return
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.settings.flush_interval.total_seconds()
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # keep the writer alive; the rows are counted as dropped
                log.exception("writing the inference log failed")

    def flush(self) -> list[Path]:
        """Write everything queued now, one file per use case; returns the files written."""
        if self.directory is None:
            return []
        written = []
        with self._lock:
            for name, queue in self._queues.items():
                batch = []
                for _ in range(len(queue)):
                    batch.append(queue.popleft())
                if not batch:
                    continue
                rows = sum(len(r.entities) for r in batch)
                self._rows -= rows
                try:
                    written.append(self._write(name, batch))
                except Exception:
                    if self.metrics is not None:
                        self.metrics.log_dropped.labels(name).inc(rows)
                    raise
                if self.metrics is not None:
                    self.metrics.log_written.labels(name).inc(rows)
        return written

    def _write(self, use_case: str, batch: list[LoggedRequest]) -> Path:
        table = to_table(self.use_cases[use_case], batch)
        folder = self.pending_dir(use_case)
        folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}-{self._sequence:06d}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = folder / f".{name}.tmp"
        pq.write_table(table, temporary)
        target = folder / name
        os.replace(temporary, target)
        log.debug("inference log: %d rows to %s", table.num_rows, target)
        return target

    def stop(self) -> None:
        """Stop the writer and write what is still queued."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()


# ---------------------------------------------------------------------------------------
# Loading into Delta (a job, with Spark)


@dataclass(frozen=True)
class InferenceLogLoad:
    use_case: str
    files: int
    rows: int
    inserted: int
    table: str

    def describe(self) -> str:
        if not self.files:
            return f"{self.use_case}: no inference log batches to load"
        return (
            f"{self.use_case}: {self.rows:,d} inference log rows from {self.files} files,"
            f" {self.inserted:,d} new, into {self.table}"
        )


def load_inference_log(
    lake: Any, settings: Settings, use_case: UseCase, serving: ServingSettings | None = None
) -> InferenceLogLoad:
    """Merge the service's pending batches into the use case's `inference_log` Delta table
    (idempotent on request_id, entity_index), then move the files to `loaded/`."""
    from featurehouse.serving.settings import serving_settings

    serving = serving or serving_settings(settings)
    directory = inference_log_dir(settings, serving)
    table = settings.table(use_case.name, TABLE)
    pending = directory / use_case.name / PENDING if directory else None
    files = sorted(pending.glob("*.parquet")) if pending and pending.is_dir() else []
    if not files:
        return InferenceLogLoad(use_case.name, 0, 0, 0, table)
    frame = lake.spark.read.schema(_spark_schema(use_case)).parquet(*[str(f) for f in files])
    rows = frame.count()
    result = lake.merge(frame, TABLE, MERGE_KEYS)
    loaded = pending.parent / LOADED
    loaded.mkdir(parents=True, exist_ok=True)
    for file in files:
        os.replace(file, loaded / file.name)
    return InferenceLogLoad(use_case.name, len(files), rows, result.inserted, table)


def _spark_schema(use_case: UseCase):
    from pyspark.sql.types import (
        DoubleType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    types = {
        pa.string(): StringType(),
        pa.int32(): IntegerType(),
        pa.int64(): LongType(),
        pa.float64(): DoubleType(),
        _TIMESTAMP: TimestampType(),
    }
    return StructType(
        [StructField(f.name, types[f.type], f.nullable) for f in log_schema(use_case)]
    )
