"""A lakehouse whose storage refuses writes ends the write with one message naming the
table and the place, and leaves the table as it was.

The storage is real: small tmpfs mounts, one full and one read-only. This test runs as
root, which file permissions do not stop; a read-only file system stops root as it stops
anyone without permission, and takes the same path through the code.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from featurehouse.cli import app
from featurehouse.errors import StorageError
from featurehouse.io import Lakehouse
from featurehouse.usecases.predictive_maintenance.simulator import simulate_fleet, write_raw_csv
from tests.cluster_job import FLEET
from tests.helpers import local_overrides, local_settings, write_conf_dir


@pytest.fixture
def mount(tmp_path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs of the size given, under tmp_path; each is unmounted afterwards."""
    mounted: list[Path] = []

    def tmpfs(size: str) -> Path:
        target = tmp_path / f"tmpfs-{len(mounted)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here (needs root in a privileged container): {done.stderr.strip()}"
            )
        mounted.append(target)
        return target

    yield tmpfs
    for target in mounted:
        subprocess.run(["umount", "--lazy", str(target)], check=True)


def read_only(target: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)


def test_a_full_disk_ends_the_write_with_one_message_and_the_table_as_it_was(spark, mount):
    lake = Lakehouse(spark, local_settings(mount("1m")), "predictive_maintenance")
    lake.merge(spark.range(10).selectExpr("id", "'small' AS text"), "telemetry", ["id"])

    many = spark.range(100_000).selectExpr("id", "uuid() AS text")
    with pytest.raises(StorageError) as raised:
        lake.merge(many, "telemetry", ["id"])

    message = str(raised.value)
    assert message.startswith(
        f"cannot write table predictive_maintenance.telemetry at {lake.location('telemetry')}:"
        " no space left on the device;"
    )
    assert (lake.version("telemetry"), lake.read("telemetry").count()) == (0, 10)


def test_a_read_only_lakehouse_ends_the_ingest_job_with_one_message(mount, tmp_path, monkeypatch):
    root = mount("20m")
    raw = tmp_path / "raw"
    write_raw_csv(simulate_fleet(FLEET), raw)
    monkeypatch.setenv(
        "FEATUREHOUSE_CONF_DIR", str(write_conf_dir(tmp_path, local_overrides(root)))
    )
    read_only(root)

    result = CliRunner().invoke(
        app, ["ingest", "--use-case", "predictive_maintenance", "--input", str(raw)]
    )

    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()[-1:]
    assert line.startswith(f"error: cannot write table predictive_maintenance.machines at {root}/")
    assert "not writable (no permission, or a read-only file system)" in line
    assert "Traceback" not in result.output
