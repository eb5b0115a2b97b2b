"""A data set in a format only Python reads (NAB's JSON of anomaly windows): its files are
found and checked before Spark, and a broken file ends with one message naming it."""

from __future__ import annotations

import json

import pytest

from featurehouse.errors import DeclarationError, InputDataError
from featurehouse.ingest import find_raw_files
from featurehouse.usecase import Column
from featurehouse.usecases.anomaly_detection.datasets import ANOMALY_WINDOWS, read_windows


def test_nab_windows_become_one_row_per_window(tmp_path):
    path = tmp_path / "combined_windows.json"
    windows = {
        "real/a.csv": [["2014-02-19 00:22:00.000000", "2014-02-19 08:42:00.000000"]],
        "real/b.csv": [],
        "real/c.csv": [["2014-03-01 00:00:00.000000", "2014-03-01 01:00:00.000000"]] * 2,
    }
    path.write_text(json.dumps(windows))

    rows = read_windows(path)
    (found,) = find_raw_files(tmp_path, ANOMALY_WINDOWS)

    assert rows.values.tolist() == [
        ["real/a.csv", "2014-02-19 00:22:00.000000", "2014-02-19 08:42:00.000000"],
        *[["real/c.csv", "2014-03-01 00:00:00.000000", "2014-03-01 01:00:00.000000"]] * 2,
    ]
    assert found.path == path and found.columns == ("series", "window_start", "window_end")


def test_a_file_the_reader_cannot_read_is_named_with_the_reason(tmp_path):
    (tmp_path / "combined_windows.json").write_text('{"real/a.csv": [["2014-02-19"')

    with pytest.raises(InputDataError, match=r"combined_windows\.json: cannot be read as NAB"):
        find_raw_files(tmp_path, ANOMALY_WINDOWS)


def test_a_column_is_a_constant_or_from_the_path_not_both():
    with pytest.raises(DeclarationError, match="either a constant or from the path"):
        Column("series", "string", value="x", from_path=2)
    assert Column("series", "string", from_path=2).is_constant
