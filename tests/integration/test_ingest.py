"""Ingestion: raw CSV -> bronze Delta, with quarantine, reconciliation and idempotent reruns."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pyspark.sql.functions as F
import pytest
from typer.testing import CliRunner

from featurehouse.cli import app
from featurehouse.datagen.fleet import FleetSpec, simulate_fleet, write_raw_csv
from featurehouse.errors import InputDataError
from featurehouse.ingest import RAW_DATASETS, ingest_all, ingest_dataset
from tests.helpers import AZURE_PDM, local_overrides, write_conf_dir

TELEMETRY = next(d for d in RAW_DATASETS if d.table_key == "telemetry")

# One good row per problem the quarantine must name; machine 1's rows at 2015-01-01 00:00
# and 01:00 come from the simulator, so the "duplicate" line collides with a good row.
BAD_TELEMETRY_LINES = {
    "2015-13-45 99:00:00,1,170.0,450.0,100.0,40.0": "unparsable timestamp",
    "2015-02-01 00:00:00,,170.0,450.0,100.0,40.0": "missing machine_id",
    "2015-02-01 00:00:00,x7,170.0,450.0,100.0,40.0": "non-integer machine_id",
    "2015-02-01 01:00:00,1,abc,450.0,100.0,40.0": "non-numeric volt",
    "2015-02-01 02:00:00,1,NaN,450.0,100.0,40.0": "non-numeric volt",
    "2015-02-01 03:00:00,1,170.0,,100.0,40.0": "missing rotate",
    "2015-01-01 00:00:00,1,1.0,2.0,3.0,4.0": "duplicate key",
}


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    """A tiny simulated fleet: 2 machines, 2 days."""
    frames = simulate_fleet(FleetSpec(machines=2, days=2, seed=3))
    out = tmp_path / "raw"
    write_raw_csv(frames, out)
    return out


def append_lines(path: Path, lines) -> None:
    with path.open("a") as handle:
        handle.writelines(line + "\n" for line in lines)


def test_ingest_accepts_every_simulated_row_and_reconciles(lake, raw_dir):
    reports = ingest_all(lake, raw_dir)

    assert [r.table for r in reports] == [lake.name(d.table_key) for d in RAW_DATASETS]
    for report in reports:
        assert report.reconciles()
        assert report.quarantined == 0
        assert report.inserted == report.accepted == report.rows_read
    assert lake.read("telemetry").count() == 2 * 2 * 24
    assert lake.read("telemetry").schema.simpleString() == (
        "struct<timestamp:timestamp,machine_id:bigint,volt:double,rotate:double,"
        "pressure:double,vibration:double,source_file:string,ingested_at:timestamp>"
    )


def test_ingest_quarantines_each_bad_row_with_its_reason(lake, raw_dir):
    append_lines(raw_dir / "PdM_telemetry.csv", BAD_TELEMETRY_LINES)

    report = ingest_dataset(lake, raw_dir, TELEMETRY)

    good_rows = 2 * 2 * 24
    assert report.rows_read == good_rows + len(BAD_TELEMETRY_LINES)
    assert report.accepted == good_rows
    assert report.quarantined == len(BAD_TELEMETRY_LINES)
    assert report.reconciles()
    quarantine = lake.read("quarantine").where(F.col("dataset") == "telemetry")
    reasons = sorted(r["reason"] for r in quarantine.select("reason").collect())
    assert reasons == sorted(BAD_TELEMETRY_LINES.values())
    assert lake.read("telemetry").count() == good_rows
    # The good row keeps its values; the later conflicting copy went to quarantine.
    kept = lake.read("telemetry").where("machine_id = 1 AND timestamp = '2015-01-01 00:00:00'")
    assert kept.select("volt").first()["volt"] != 1.0


def test_rerunning_ingestion_adds_nothing(lake, raw_dir):
    append_lines(raw_dir / "PdM_telemetry.csv", BAD_TELEMETRY_LINES)
    first = ingest_dataset(lake, raw_dir, TELEMETRY)

    second = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert second.inserted == 0
    assert second.accepted == first.accepted
    assert lake.read("telemetry").count() == first.accepted
    assert lake.read("quarantine").count() == first.quarantined


def test_malformed_line_is_quarantined(lake, raw_dir):
    append_lines(raw_dir / "PdM_telemetry.csv", ["2015-02-01 00:00:00,1,170.0"])

    report = ingest_dataset(lake, raw_dir, TELEMETRY)

    assert report.quarantine_reasons == {"malformed line": 1}
    assert report.reconciles()


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda d: (d / "PdM_telemetry.csv").write_text(""), "empty file (no header line)"),
        (
            lambda d: (d / "PdM_telemetry.csv").write_text("time,machine,volt\n1,2,3\n"),
            "wrong header: expected datetime,machineID,volt,rotate,pressure,vibration",
        ),
        (lambda d: (d / "PdM_telemetry.csv").unlink(), "no telemetry files (PdM_telemetry*.csv*)"),
        (
            lambda d: (d / "PdM_telemetry.csv").write_bytes(gzip.compress(b"x")[:5]),
            "PdM_telemetry.csv: cannot be read as CSV text",
        ),
        (
            lambda d: (d / "PdM_telemetry.csv").write_text('{"volt": 170.0}\n'),
            'PdM_telemetry.csv: wrong header: expected datetime,machineID,volt,rotate,pressure,vibration, found {"volt": 170.0}',
        ),
    ],
    ids=["empty", "wrong-header", "missing", "binary", "json"],
)
def test_bad_input_files_fail_before_anything_is_written(lake, raw_dir, prepare, message):
    prepare(raw_dir)

    with pytest.raises(InputDataError, match=re.escape(message)):
        ingest_all(lake, raw_dir)

    assert not lake.exists("machines")


def test_cli_reports_a_missing_input_folder_in_one_line(tmp_path, monkeypatch):
    conf_dir = write_conf_dir(tmp_path, local_overrides(tmp_path / "lake"))
    monkeypatch.setenv("FEATUREHOUSE_CONF_DIR", str(conf_dir))

    result = CliRunner().invoke(app, ["ingest", "--input", str(tmp_path / "nowhere")])

    assert result.exit_code == 2
    assert result.output.strip() == f"error: input folder not found: {tmp_path / 'nowhere'}"


def test_cli_rejects_a_misspelt_environment_in_one_line():
    result = CliRunner().invoke(app, ["ingest", "--env", "prdo"])

    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown environment 'prdo': choose one of local, dev, staging, prod"
    )
    assert "Traceback" not in result.output


@pytest.mark.skipif(
    not (AZURE_PDM / "telemetry_subset_m1-20_2015Q1").is_dir(),
    reason="the published Azure predictive-maintenance data is not at ../shared/data/azure_pdm",
)
def test_ingests_the_published_azure_data(lake):
    folder = AZURE_PDM / "telemetry_subset_m1-20_2015Q1"

    reports = {r.table.split(".")[-1]: r for r in ingest_all(lake, folder)}

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
