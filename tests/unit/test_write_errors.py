"""Which failed writes become one clear message (`featurehouse.io.lakehouse.write_error`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurehouse.errors import ConcurrentWriteError, StorageError
from featurehouse.io.lakehouse import write_error

TABLE = "shop_orders.shop_product_daily"


@pytest.mark.parametrize(
    "message",
    [
        "[DELTA_CONCURRENT_APPEND.WITHOUT_HINT] ConcurrentAppendException: Files were added",
        "io.delta.exceptions.ConcurrentDeleteReadException: This transaction attempted to read",
        "[DELTA_METADATA_CHANGED] MetadataChangedException: The metadata of the Delta table",
    ],
)
def test_a_conflict_with_another_jobs_commit_names_the_table_and_what_to_do(message):
    error = write_error(message, TABLE, None)

    assert isinstance(error, ConcurrentWriteError)
    assert str(error).startswith(f"table {TABLE} was changed by another job")
    assert "run this job again once the other has finished" in str(error)


def test_a_full_disk_names_the_table_and_its_folder(tmp_path):
    message = "Job aborted. java.io.IOException: No space left on device"
    error = write_error(message, TABLE, tmp_path / "t")

    assert isinstance(error, StorageError)
    assert str(error).startswith(f"cannot write table {TABLE} at {tmp_path / 't'}: no space left")


def test_any_other_failure_is_left_as_it_was(tmp_path):
    assert write_error("[DIVIDE_BY_ZERO] Division by zero.", TABLE, tmp_path) is None
    assert write_error("[DIVIDE_BY_ZERO] Division by zero.", TABLE, None) is None
    assert write_error("Permission denied", TABLE, Path("/nonexistent/x")) is not None
