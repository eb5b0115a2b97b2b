"""Reads and writes one use case's Delta tables by their names.

A `Lakehouse` serves one use case: a key (a data set, a feature table, or one of the
framework's tables such as `quarantine`) names a table in that use case's schema. On
Databricks a name is a Unity Catalog table. Locally there is no metastore: each name
maps to a folder under `storage.root/tables/<schema>/<table>`, so any process (a job,
`feast apply`, a notebook) sees the same tables without sharing a Derby metastore.
`register_tables` makes the local names queryable in SQL.

Every Delta operation is Delta SQL (`MERGE INTO`, `DESCRIBE HISTORY`, `DESCRIBE DETAIL`,
`VERSION AS OF` through the reader), not the `DeltaTable` Python API: the same code then
runs on a classic session and on Spark Connect (serverless, Databricks Connect), where
that API needs a server plugin.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import TimestampType

from featurehouse.config import Settings
from featurehouse.errors import ConcurrentWriteError, StorageError, TableNotFoundError

log = logging.getLogger(__name__)


def table_location(settings: Settings, use_case: str, key: str) -> Path | None:
    """The folder of a local table; None where the catalog manages storage."""
    if settings.storage.root is None:
        return None
    return settings.storage.root / "tables" / Path(*settings.table(use_case, key).split("."))


@dataclass(frozen=True)
class MergeResult:
    inserted: int
    updated: int


@dataclass(frozen=True)
class Lakehouse:
    spark: SparkSession
    settings: Settings
    use_case: str

    def name(self, key: str) -> str:
        return self.settings.table(self.use_case, key)

    def location(self, key: str) -> Path | None:
        return table_location(self.settings, self.use_case, key)

    def exists(self, key: str) -> bool:
        location = self.location(key)
        if location is None:
            return self.spark.catalog.tableExists(self.name(key))
        return (location / "_delta_log").is_dir()

    def require(self, key: str) -> None:
        """One clear error for a table nothing has written yet, instead of Spark's trace."""
        if not self.exists(key):
            raise TableNotFoundError(
                f"table {self.name(key)} does not exist yet: run the job that writes it first"
                " (featurehouse pipeline runs them in order)"
            )

    def read(self, key: str, version: int | None = None) -> DataFrame:
        self.require(key)
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        location = self.location(key)
        return reader.load(str(location)) if location else reader.table(self.name(key))

    def newest_commit(self, key: str) -> Row:
        """The newest entry of the table's history: version, operation, operationMetrics."""
        self.require(key)
        return self.spark.sql(f"DESCRIBE HISTORY {self.sql_name(key)} LIMIT 1").collect()[0]

    def version(self, key: str) -> int:
        return int(self.newest_commit(key)["version"])

    def table_id(self, key: str) -> str:
        """The Delta table's id: a table replaced under the same name gets a new one."""
        self.require(key)
        return self.spark.sql(f"DESCRIBE DETAIL {self.sql_name(key)}").first()["id"]

    def sql_name(self, key: str) -> str:
        r"""The name to use in SQL: `delta.\`<folder>\`` locally, the catalog name otherwise."""
        location = self.location(key)
        return f"delta.`{location}`" if location else self.name(key)

    def create_table(
        self,
        key: str,
        columns_ddl: str,
        *,
        comment: str,
        cluster_by: Sequence[str],
        replace: bool = False,
    ) -> None:
        """Create the table from its declared DDL (or replace it, keeping its history)."""
        verb = "REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
        clustering = ", ".join(f"`{c}`" for c in cluster_by)
        with self._writing(key):
            self.spark.sql(
                f"{verb} {self.sql_name(key)} ({columns_ddl}) USING DELTA"
                f" CLUSTER BY ({clustering}) COMMENT {sql_string(comment)}"
                f" TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')"
            )

    def insert(self, df: DataFrame, key: str, *, overwrite: bool = False) -> None:
        """Add the rows (or replace all rows) in one commit, keeping schema, comments, properties."""
        view = f"_insert_{key}"
        df.createOrReplaceTempView(view)
        verb = "INSERT OVERWRITE" if overwrite else "INSERT INTO"
        try:
            with self._writing(key):
                self.spark.sql(f"{verb} {self.sql_name(key)} BY NAME SELECT * FROM {view}")
        finally:
            self.spark.catalog.dropTempView(view)

    def cluster_by(self, key: str, columns: Sequence[str]) -> None:
        """Set the clustering columns (open-source Delta forgets them on INSERT OVERWRITE)."""
        clustering = ", ".join(f"`{c}`" for c in columns)
        self.spark.sql(f"ALTER TABLE {self.sql_name(key)} CLUSTER BY ({clustering})")

    def append(self, df: DataFrame, key: str) -> None:
        """Append rows; for logs whose every row is new (run results), cheaper than a MERGE."""
        writer = df.write.format("delta").option("delta.enableChangeDataFeed", "true")
        self._save(writer.mode("append"), key)

    def changes(self, key: str, after_version: int, up_to_version: int) -> DataFrame:
        """The change data feed between two versions (both committed): what was written since."""
        reader = (
            self.spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", after_version + 1)
            .option("endingVersion", up_to_version)
        )
        location = self.location(key)
        return reader.load(str(location)) if location else reader.table(self.name(key))

    def stage(self, df: DataFrame, name: str) -> DataFrame:
        """Write `df` once to the staging folder and read it back.

        Checking and publishing then read stored columns instead of recomputing the
        transform (and planning its expressions again for every check). The read is of
        this write's own version, found by a token in its commit: a job staging the same
        name at the same time cannot swap the batch under this one.
        """
        schema = self.settings.schema_of(self.use_case)
        path = str(self.settings.storage.staging_dir / schema / name)
        token = uuid.uuid4().hex
        writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        with write_errors(f"{name} (staging)", Path(path)):
            writer.option("userMetadata", token).save(path)
        history = self.spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT {STAGING_HISTORY}")
        (version,) = [r["version"] for r in history.collect() if r["userMetadata"] == token]
        return self.spark.read.format("delta").option("versionAsOf", version).load(path)

    def optimize(self, key: str) -> None:
        """Compact small files and cluster them by the table's clustering columns."""
        self.spark.sql(f"OPTIMIZE {self.sql_name(key)}")

    def vacuum(self, key: str, retention_hours: int) -> None:
        self.spark.sql(f"VACUUM {self.sql_name(key)} RETAIN {retention_hours} HOURS")

    def overwrite(self, df: DataFrame, key: str) -> None:
        """Replace the table's contents (and schema) in one Delta commit."""
        self._save(
            df.write.format("delta").mode("overwrite").option("overwriteSchema", "true"), key
        )

    def merge(
        self,
        df: DataFrame,
        key: str,
        keys: Sequence[str],
        *,
        update: bool | Sequence[str] = False,
        target_filter: str | None = None,
        delete_unmatched: str | None = None,
    ) -> MergeResult:
        """Upsert `df` on `keys`: rows already there are left alone (or updated), new ones inserted.

        `update=True` updates every matched row; a list of columns updates only matched rows
        where one of them differs, so re-merging the same rows changes nothing.
        `target_filter` (SQL on the target, alias `t`) limits the files MERGE reads;
        `delete_unmatched` (SQL on `t`) deletes the target rows it selects that `df` lacks.
        Creating the table on first use keeps every job idempotent from its first run on.
        """
        if not self.exists(key):
            # Every table keeps a change data feed, so downstream jobs read only what changed.
            writer = df.write.format("delta").option("delta.enableChangeDataFeed", "true")
            self._save(writer.mode("error"), key)  # "errorifexists", as Connect spells it
            inserted = int(self.newest_commit(key)["operationMetrics"].get("numOutputRows", 0))
            return MergeResult(inserted=inserted, updated=0)
        version_before = self.version(key)
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        if target_filter is not None:
            condition = f"{condition} AND ({target_filter})"
        clauses = []
        if update is True:
            clauses.append("WHEN MATCHED THEN UPDATE SET *")
        elif update:
            unchanged = " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in update)
            clauses.append(f"WHEN MATCHED AND NOT ({unchanged}) THEN UPDATE SET *")
        clauses.append("WHEN NOT MATCHED THEN INSERT *")
        if delete_unmatched is not None:
            clauses.append(f"WHEN NOT MATCHED BY SOURCE AND ({delete_unmatched}) THEN DELETE")
        view = f"_merge_{uuid.uuid4().hex}"
        df.createOrReplaceTempView(view)
        try:
            with self._writing(key):
                self.spark.sql(
                    f"MERGE INTO {self.sql_name(key)} AS t USING {view} AS s ON {condition} "
                    + " ".join(clauses)
                )
        finally:
            self.spark.catalog.dropTempView(view)
        newest = self.newest_commit(key)
        if newest["version"] == version_before:
            # A MERGE that changes nothing commits nothing: the newest metrics are older.
            return MergeResult(inserted=0, updated=0)
        metrics = newest["operationMetrics"]
        return MergeResult(
            inserted=int(metrics.get("numTargetRowsInserted", 0)),
            updated=int(metrics.get("numTargetRowsUpdated", 0)),
        )

    def _save(self, writer, key: str) -> None:
        location = self.location(key)
        with self._writing(key):
            if location:
                writer.save(str(location))
            else:
                writer.saveAsTable(self.name(key))
        log.info("wrote %s", self.name(key))

    def _writing(self, key: str):
        return write_errors(self.name(key), self.location(key))

    def table_keys(self) -> list[str]:
        """The names of the use case's existing tables (each also works as a key)."""
        schema = self.settings.schema_of(self.use_case)
        if self.settings.storage.root is None:
            qualified = f"{self.settings.catalog}.{schema}" if self.settings.catalog else schema
            return sorted(t.name for t in self.spark.catalog.listTables(qualified))
        folder = self.settings.storage.root / "tables" / schema
        return sorted(p.parent.name for p in folder.glob("*/_delta_log") if p.is_dir())

    def register_tables(self) -> list[str]:
        """Make every existing local table queryable as `schema.table` in this session."""
        registered = []
        for key in self.table_keys():
            name = self.name(key)
            schema = name.split(".")[0]
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{schema}`")
            self.spark.sql(
                f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{self.location(key)}'"
            )
            registered.append(name)
        return registered


# How many newer commits (by jobs staging the same name at once) a staged write's own may have.
STAGING_HISTORY = 50

# Delta's optimistic concurrency conflicts, by error class (and, from older code paths, by
# exception name): the write was not committed.
CONCURRENT_WRITE = re.compile(
    r"DELTA_CONCURRENT_\w+|DELTA_(?:METADATA|PROTOCOL)_CHANGED|"
    r"Concurrent(?:Append|DeleteRead|DeleteDelete|Transaction)Exception|"
    r"(?:Metadata|Protocol)ChangedException"
)
STORAGE_PROBLEMS = {
    "No space left on device": "no space left on the device",
    "Read-only file system": "the file system is read-only",
    "Permission denied": "permission denied",
    "AccessDenied": "access denied",
}


@contextmanager
def write_errors(table: str, location: Path | None) -> Iterator[None]:
    """A write's known failures (another job's commit, storage that refuses it) as one
    message naming the table; anything else as it was."""
    try:
        yield
    except Exception as exc:
        error = write_error(str(exc), table, location)
        if error is None:
            raise
        raise error from None


def write_error(message: str, table: str, location: Path | None) -> Exception | None:
    """The FeaturehouseError a failed write's message stands for, or None if unknown."""
    conflict = CONCURRENT_WRITE.search(message)
    if conflict:
        return ConcurrentWriteError(
            f"table {table} was changed by another job while this one was writing it"
            f" ({conflict.group(0)}): this write was not committed and the table holds the"
            " other job's; run this job again once the other has finished"
        )
    problem = next((p for text, p in STORAGE_PROBLEMS.items() if text in message), None)
    if problem is None and location is not None and not writable(location):
        # Delta words this as "cannot create the log path", Hadoop as "Mkdirs failed".
        problem = "the folder is not writable (no permission, or a read-only file system)"
    if problem is None:
        return None
    where = f" at {location}" if location else ""
    return StorageError(
        f"cannot write table {table}{where}: {problem}; nothing of this write was"
        " committed, run the job again once the storage accepts writes"
    )


def writable(path: Path) -> bool:
    """Whether this process may write at `path` (or create it), asking the OS (access(2)
    also answers "no" to root on a read-only file system)."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    return os.access(existing, os.W_OK)


def sql_timestamp(value: datetime) -> str:
    """A timestamp as SQL, exactly the instant Spark gave Python (naive datetimes are in the
    Python process's time zone both ways, which SQL text would not know)."""
    return f"timestamp_micros({TimestampType().toInternal(value)})"


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
