"""Ingestion of the predictive-maintenance files: raw CSV -> bronze Delta, with quarantine,
reconciliation and idempotent reruns."""

from __future__ import annotations

import gzip
import logging
import re
from datetime import datetime
from pathlib import Path

import pyspark.sql.functions as F
import pytest

from featurehouse.errors import InputDataError
from featurehouse.ingest import TimestampRange, ingest_dataset, ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.usecases.predictive_maintenance import USE_CASE
from featurehouse.usecases.predictive_maintenance.datasets import DATASETS, MACHINES, TELEMETRY
from featurehouse.usecases.predictive_maintenance.simulator import (
    FleetSpec,
    simulate_fleet,
    write_raw_csv,
)
from tests.helpers import AZURE_PDM

# One good row per problem the quarantine must name; machine 1's rows at 2015-01-01 00:00
# and 01:00 come from the simulator, so the "duplicate" line collides with a good row.
BAD_TELEMETRY_LINES = {
    "2015-13-45 99:00:00,1,170.0,450.0,100.0,40.0": "unparsable timestamp",
    "2015-02-01 00:00:00,,170.0,450.0,100.0,40.0": "missing machine_id",
    "2015-02-01 00:00:00,x7,170.0,450.0,100.0,40.0": "non-integer machine_id",
    "2015-02-01 01:00:00,1,abc,450.0,100.0,40.0": "non-numeric volt",
    "2015-02-01 02:00:00,1,NaN,450.0,100.0,40.0": "non-numeric volt",
    "2015-02-01 03:00:00,1,170.0,,100.0,40.0": "missing rotate",
    "2015-02-01 04:00:00,1,170.0,450.0,Infinity,40.0": "non-numeric pressure",
    "2015-02-01 05:00:00,1,170.0,450.0,100.0,-inf": "non-numeric vibration",
    "2999-01-01 00:00:00,1,170.0,450.0,100.0,40.0": "timestamp in the future",
    "1999-12-31 23:00:00,1,170.0,450.0,100.0,40.0": "timestamp before 2000-01-01",
    "2015-01-01 00:00:00,1,1.0,2.0,3.0,4.0": "duplicate key",
    "2015-02-01 06:00:00,99,170.0,450.0,100.0,40.0": "unknown machine_id (not in machines)",
}
GOOD_ROWS = 2 * 2 * 24  # telemetry rows of the simulated fleet below


@pytest.fixture
def lake(spark, settings) -> Lakehouse:
    return Lakehouse(spark, settings, USE_CASE.name)


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    """A tiny simulated fleet: 2 machines, 2 days."""
    frames = simulate_fleet(FleetSpec(machines=2, days=2, seed=3))
    out = tmp_path / "raw"
    write_raw_csv(frames, out)
    return out


@pytest.fixture
def machines(lake, raw_dir) -> None:
    """The machine list is in bronze: telemetry of an unknown machine is refused."""
    ingest_dataset(lake, raw_dir, MACHINES)


def append_lines(path: Path, lines) -> None:
    with path.open("a") as handle:
        handle.writelines(line + "\n" for line in lines)


def quarantine(lake) -> list[tuple[str, str]]:
    rows = lake.read("quarantine").where(F.col("dataset") == "telemetry").collect()
    return sorted((r["reason"], r["record"]) for r in rows)


def test_ingest_accepts_every_simulated_row_and_reconciles(lake, raw_dir):
    reports = ingest_use_case(lake, USE_CASE, raw_dir)

    assert [r.table for r in reports] == [lake.name(d.name) for d in DATASETS]
    assert reports[1].table == "predictive_maintenance.telemetry"
    for report in reports:
        assert report.reconciles()
        assert report.quarantined == 0
        assert report.inserted == report.accepted == report.rows_read
        assert (report.updated, report.superseded) == (0, 0)
    assert lake.read("telemetry").count() == 2 * 2 * 24
    assert lake.read("telemetry").schema.simpleString() == (
        "struct<timestamp:timestamp,machine_id:bigint,volt:double,rotate:double,"
        "pressure:double,vibration:double,source_file:string,ingested_at:timestamp>"
    )


def test_ingest_quarantines_each_bad_row_with_its_reason(lake, raw_dir, machines):
    append_lines(raw_dir / "PdM_telemetry.csv", BAD_TELEMETRY_LINES)

    report = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert report.rows_read == GOOD_ROWS + len(BAD_TELEMETRY_LINES)
    assert report.accepted == GOOD_ROWS
    assert report.quarantined == len(BAD_TELEMETRY_LINES)
    assert report.reconciles()
    quarantine = lake.read("quarantine").where(F.col("dataset") == "telemetry")
    reasons = sorted(r["reason"] for r in quarantine.select("reason").collect())
    assert reasons == sorted(BAD_TELEMETRY_LINES.values())
    assert lake.read("telemetry").count() == GOOD_ROWS
    # The good row keeps its values; the later conflicting copy went to quarantine.
    kept = lake.read("telemetry").where("machine_id = 1 AND timestamp = '2015-01-01 00:00:00'")
    assert kept.select("volt").first()["volt"] != 1.0


def test_rerunning_ingestion_adds_nothing(lake, raw_dir, machines):
    append_lines(raw_dir / "PdM_telemetry.csv", BAD_TELEMETRY_LINES)
    first = ingest_dataset(lake, raw_dir, TELEMETRY)

    second = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert second.inserted == 0
    assert second.accepted == first.accepted
    assert lake.read("telemetry").count() == first.accepted
    assert lake.read("quarantine").count() == first.quarantined


def test_a_file_cut_off_mid_line_quarantines_its_last_line_as_truncated(lake, raw_dir, machines):
    # A writer stopped half-way through the last line: no newline, 3 of 6 fields.
    with (raw_dir / "PdM_telemetry.csv").open("a") as handle:
        handle.write("2015-02-01 00:00:00,1,170.0")

    report = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert report.quarantine_reasons == {"truncated line: 3 of 6 fields": 1}
    assert (report.rows_read, report.accepted, report.quarantined) == (GOOD_ROWS + 1, GOOD_ROWS, 1)
    assert report.reconciles()
    assert quarantine(lake) == [("truncated line: 3 of 6 fields", "2015-02-01 00:00:00,1,170.0")]


def test_a_line_with_more_fields_than_the_header_is_quarantined_as_malformed(
    lake, raw_dir, machines
):
    long_line = "2015-02-01 00:00:00,1,170.0,450.0,100.0,40.0,99"
    append_lines(raw_dir / "PdM_telemetry.csv", [long_line])

    report = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert report.quarantine_reasons == {"malformed line: 7 fields, header has 6": 1}
    assert (report.rows_read, report.accepted, report.quarantined) == (GOOD_ROWS + 1, GOOD_ROWS, 1)
    assert quarantine(lake) == [("malformed line: 7 fields, header has 6", long_line)]


def test_a_quoted_comma_is_one_field(lake, raw_dir):
    append_lines(raw_dir / "PdM_machines.csv", ['3,"model,9",7'])

    report = ingest_dataset(lake, raw_dir, MACHINES)

    assert (report.rows_read, report.accepted, report.quarantined) == (3, 3, 0)
    assert lake.read("machines").where("machine_id = 3").first()["model"] == "model,9"


def test_columns_are_matched_by_name_and_unknown_ones_ignored(lake, raw_dir, machines, caplog):
    # A second file from a newer exporter: another column order and an extra column.
    extra = raw_dir / "PdM_telemetry_v2.csv"
    extra.write_text(
        "vibration,sensor_temp,machineID,datetime,pressure,rotate,volt\n"
        "40.5,71.2,2,2015-02-01 00:00:00,100.5,450.5,170.5\n"
    )

    with caplog.at_level(logging.WARNING, logger="featurehouse.ingest"):
        report = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert report.ignored_columns == {"PdM_telemetry_v2.csv": ("sensor_temp",)}
    assert f"{extra}: ignoring unknown column(s) sensor_temp" in caplog.messages
    assert (report.files, report.rows_read, report.accepted) == (2, GOOD_ROWS + 1, GOOD_ROWS + 1)
    assert report.quarantined == 0
    row = lake.read("telemetry").where("timestamp = '2015-02-01 00:00:00'").first()
    assert (row["machine_id"], row["volt"], row["rotate"], row["pressure"], row["vibration"]) == (
        2,
        170.5,
        450.5,
        100.5,
        40.5,
    )
    assert "sensor_temp" not in lake.read("telemetry").columns


def test_a_byte_order_mark_and_windows_line_ends_are_read_as_plain_csv(lake, raw_dir, machines):
    path = raw_dir / "PdM_telemetry.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))

    report = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert (report.rows_read, report.accepted, report.quarantined) == (GOOD_ROWS, GOOD_ROWS, 0)


def cut_gzip_in_half(folder: Path) -> None:
    """A compressed file whose writer stopped half-way: its header line still reads."""
    data = gzip.compress((folder / "PdM_telemetry.csv").read_bytes())
    (folder / "PdM_telemetry.csv").unlink()
    (folder / "PdM_telemetry.csv.gz").write_bytes(data[: len(data) // 2])


def test_a_refused_row_does_not_make_a_later_good_row_a_duplicate(lake, raw_dir, machines):
    append_lines(
        raw_dir / "PdM_telemetry.csv",
        [
            "2015-02-01 05:00:00,1,abc,450.0,100.0,40.0",
            "2015-02-01 05:00:00,1,170.0,450.0,100.0,40.0",
        ],
    )

    report = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert report.quarantine_reasons == {"non-numeric volt": 1}
    assert report.accepted == GOOD_ROWS + 1
    assert report.reconciles()


def test_timestamps_must_lie_between_the_earliest_and_now_plus_the_allowed_lead(
    lake, raw_dir, machines
):
    # The local settings allow 60 minutes ahead of now, and nothing before 2000-01-01.
    now = datetime(2015, 2, 1, 0, 0)
    lines = {
        "2015-02-01 01:00:00,1,170.0,450.0,100.0,40.0": None,  # exactly now + 60 min
        "2015-02-01 01:00:01,1,170.0,450.0,100.0,40.0": "timestamp in the future",
        "2000-01-01 00:00:00,1,170.0,450.0,100.0,40.0": None,
        "1999-12-31 23:59:59,1,170.0,450.0,100.0,40.0": "timestamp before 2000-01-01",
    }
    append_lines(raw_dir / "PdM_telemetry.csv", lines)

    report = ingest_dataset(lake, raw_dir, TELEMETRY, now=now)

    assert report.quarantine_reasons == {
        "timestamp before 2000-01-01": 1,
        "timestamp in the future": 1,
    }
    assert report.accepted == GOOD_ROWS + 2
    assert report.reconciles()


def test_timestamp_range_comes_from_the_quality_settings(settings):
    now = datetime(2024, 5, 1, 12, 0)

    timestamps = TimestampRange.around(now, settings.quality)

    assert timestamps == TimestampRange(datetime(2000, 1, 1), datetime(2024, 5, 1, 13, 0))


def test_only_the_data_sets_with_files_are_ingested_and_the_others_skipped(lake, raw_dir):
    ingest_use_case(lake, USE_CASE, raw_dir)
    before = lake.version("errors")
    for name in ("PdM_machines.csv", "PdM_errors.csv", "PdM_maint.csv", "PdM_failures.csv"):
        (raw_dir / name).unlink()
    append_lines(raw_dir / "PdM_telemetry.csv", ["2015-02-01 00:00:00,1,170.0,450.0,100.0,40.0"])

    reports = {r.dataset: r for r in ingest_use_case(lake, USE_CASE, raw_dir)}

    assert reports["telemetry"].inserted == 1
    assert reports["telemetry"].reconciles()
    skipped = [r for r in reports.values() if r.skipped]
    assert [r.summary() for r in skipped] == [
        "machines: no files (PdM_machines*.csv*), skipped",
        "errors: no files (PdM_errors*.csv*), skipped",
        "maintenance: no files (PdM_maint*.csv*), skipped",
        "failures: no files (PdM_failures*.csv*), skipped",
    ]
    assert all(r.files == r.rows_read == 0 for r in skipped)
    assert lake.version("errors") == before


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda d: (d / "PdM_telemetry.csv").write_text(""), "empty file (no header line)"),
        (
            lambda d: (d / "PdM_telemetry.csv").write_text(
                "datetime,machineID,volt,rotate,vibration\n2015-01-01 00:00:00,1,1,2,3\n"
            ),
            "PdM_telemetry.csv: missing required column(s) pressure"
            " (header: datetime,machineID,volt,rotate,vibration)",
        ),
        (
            lambda d: (d / "PdM_telemetry_2.csv").write_text("time,machine,volt\n1,2,3\n"),
            "PdM_telemetry_2.csv: missing required column(s)"
            " datetime, machineID, rotate, pressure, vibration (header: time,machine,volt)",
        ),
        (
            lambda d: (d / "PdM_telemetry.csv").write_text(
                "datetime,machineID,volt,volt,rotate,pressure,vibration\n"
            ),
            "PdM_telemetry.csv: column(s) volt appear more than once in the header",
        ),
        (
            lambda d: [p.unlink() for p in d.iterdir()],
            "no input files of use case predictive_maintenance in {folder}:"
            " no machines files (PdM_machines*.csv*), no telemetry files (PdM_telemetry*.csv*),",
        ),
        (
            lambda d: (d / "PdM_telemetry.csv").write_bytes(gzip.compress(b"x")[:5]),
            "PdM_telemetry.csv: cannot be read as CSV text",
        ),
        (
            lambda d: (d / "PdM_telemetry.csv").write_text('{"volt": 170.0}\n'),
            "PdM_telemetry.csv: missing required column(s) datetime, machineID, volt,"
            ' rotate, pressure, vibration (header: {"volt": 170.0})',
        ),
        (
            cut_gzip_in_half,
            "PdM_telemetry.csv.gz: cannot be read as CSV text"
            " (Compressed file ended before the end-of-stream marker was reached)",
        ),
    ],
    ids=[
        "empty",
        "missing-column",
        "second-file",
        "repeated-column",
        "no-files",
        "binary",
        "json",
        "cut-gzip",
    ],
)
def test_bad_input_files_fail_before_anything_is_written(lake, raw_dir, prepare, message):
    prepare(raw_dir)

    with pytest.raises(InputDataError, match=re.escape(message.replace("{folder}", str(raw_dir)))):
        ingest_use_case(lake, USE_CASE, raw_dir)

    assert not lake.exists("machines")


@pytest.mark.skipif(
    not (AZURE_PDM / "telemetry_subset_m1-20_2015Q1").is_dir(),
    reason="the published Azure predictive-maintenance data is not at ../shared/data/azure_pdm",
)
def test_ingests_the_published_azure_data(lake):
    folder = AZURE_PDM / "telemetry_subset_m1-20_2015Q1"

    reports = {r.dataset: r for r in ingest_use_case(lake, USE_CASE, folder)}

    assert {name: r.rows_read for name, r in reports.items()} == {
        "machines": 20,
        "telemetry": 43_200,
        "errors": 211,
        "maintenance": 208,
        "failures": 42,
    }
    assert all(r.reconciles() for r in reports.values())
    assert reports["telemetry"].accepted == 43_200
    span = lake.read("telemetry").agg(F.min("timestamp"), F.max("timestamp")).first()
    assert (str(span[0]), str(span[1])) == ("2015-01-01 06:00:00", "2015-04-01 05:00:00")
