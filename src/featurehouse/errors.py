"""Errors the user can act on: the CLI prints their message alone, without a stack trace."""

from __future__ import annotations


class FeaturehouseError(Exception):
    """A problem with input, configuration or arguments, explained in one message."""


class ConfigError(FeaturehouseError):
    """Configuration that cannot be loaded or does not validate."""


class DeclarationError(FeaturehouseError):
    """A use case declaration that contradicts itself or the project (an unknown key or table)."""


class InputDataError(FeaturehouseError):
    """A raw input folder or file that cannot be ingested as it is."""


class TableNotFoundError(FeaturehouseError):
    """A table a job reads has not been written yet."""


class SourceSchemaError(FeaturehouseError):
    """A source table whose columns no longer match what a job reads from it."""


class DataQualityError(FeaturehouseError):
    """A data-quality expectation of severity `fail` was not met: nothing was published."""


class NoChampionError(FeaturehouseError):
    """A job that needs the use case's champion found none: nothing has passed validation yet."""


class ConcurrentWriteError(FeaturehouseError):
    """Another job committed to a table while this one was writing it: this write was not
    committed (Delta's optimistic concurrency), the table holds the other job's."""


class StorageError(FeaturehouseError):
    """The lakehouse's storage refused a write: no space left, no permission, read-only."""
