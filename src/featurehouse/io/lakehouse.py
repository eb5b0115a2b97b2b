"""Reads and writes Delta tables by their configured names.

On Databricks a name is a Unity Catalog table. Locally there is no metastore:
each name maps to a folder under `storage.root/tables/<schema>/<table>`, so any
process (a job, `feast apply`, a notebook) sees the same tables without sharing
a Derby metastore. `register_tables` makes the local names queryable in SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from featurehouse.config import Settings

log = logging.getLogger(__name__)


def table_location(settings: Settings, key: str) -> Path | None:
    """The folder of a local table; None where the catalog manages storage."""
    if settings.storage.root is None:
        return None
    return settings.storage.root / "tables" / Path(*settings.table(key).split("."))


@dataclass(frozen=True)
class MergeResult:
    inserted: int
    updated: int


@dataclass(frozen=True)
class Lakehouse:
    spark: SparkSession
    settings: Settings

    def name(self, key: str) -> str:
        return self.settings.table(key)

    def location(self, key: str) -> Path | None:
        return table_location(self.settings, key)

    def exists(self, key: str) -> bool:
        location = self.location(key)
        if location is None:
            return self.spark.catalog.tableExists(self.name(key))
        return (location / "_delta_log").is_dir()

    def read(self, key: str, version: int | None = None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        location = self.location(key)
        return reader.load(str(location)) if location else reader.table(self.name(key))

    def delta_table(self, key: str) -> DeltaTable:
        location = self.location(key)
        if location:
            return DeltaTable.forPath(self.spark, str(location))
        return DeltaTable.forName(self.spark, self.name(key))

    def version(self, key: str) -> int:
        return int(self.delta_table(key).history(1).collect()[0]["version"])

    def overwrite(self, df: DataFrame, key: str) -> None:
        """Replace the table's contents (and schema) in one Delta commit."""
        self._save(
            df.write.format("delta").mode("overwrite").option("overwriteSchema", "true"), key
        )

    def merge(
        self, df: DataFrame, key: str, keys: Sequence[str], *, update: bool = False
    ) -> MergeResult:
        """Upsert `df` on `keys`: rows already there are left alone (or updated), new ones inserted.

        Creating the table on first use keeps every job idempotent from its first run on.
        """
        if not self.exists(key):
            self._save(df.write.format("delta").mode("errorifexists"), key)
            version_zero = self.delta_table(key).history(1).collect()[0]
            inserted = int(version_zero["operationMetrics"].get("numOutputRows", 0))
            return MergeResult(inserted=inserted, updated=0)
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        builder = self.delta_table(key).alias("t").merge(df.alias("s"), condition)
        if update:
            builder = builder.whenMatchedUpdateAll()
        builder.whenNotMatchedInsertAll().execute()
        metrics = self.delta_table(key).history(1).collect()[0]["operationMetrics"]
        return MergeResult(
            inserted=int(metrics.get("numTargetRowsInserted", 0)),
            updated=int(metrics.get("numTargetRowsUpdated", 0)),
        )

    def _save(self, writer, key: str) -> None:
        location = self.location(key)
        if location:
            writer.save(str(location))
        else:
            writer.saveAsTable(self.name(key))
        log.info("wrote %s", self.name(key))

    def register_tables(self) -> list[str]:
        """Make every existing local table queryable as `schema.table` in this session."""
        registered = []
        for key in type(self.settings.tables).model_fields:
            location = self.location(key)
            if location is None or not self.exists(key):
                continue
            name = self.name(key)
            schema = name.split(".")[0]
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{schema}`")
            self.spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{location}'")
            registered.append(name)
        return registered
