"""Beyond one local session. The same small run (`tests.cluster_job`: ingest, the feature
job, a point-in-time training set, and scoring by a model the way batch scoring does, of a
small fleet) goes through:

- a Spark standalone cluster on loopback (one master, two workers, each with an executor
  JVM of its own): executors write the files and the driver never shares a process with
  them, so a driver-local path or state would show here;
- a Spark Connect server on loopback, reached through FEATUREHOUSE_SPARK_REMOTE as
  serverless compute and Databricks Connect are: the client holds no JVM, so any use of
  the classic-only APIs (the `DeltaTable` Python API, the SparkContext) would fail here;

and every table equals the same run in local mode. Both servers are pyspark's own
(`bin/spark-class`, `bin/spark-submit`, no download). Each run is a process of its own: one
JVM holds one Spark context, and this session's is local (and a Python process that opens a Connect session
switches every later session to Connect).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pandas.testing import assert_frame_equal

from featurehouse.io import Lakehouse
from featurehouse.serving.server import free_port
from featurehouse.spark import connect_server_command, pyspark_home
from featurehouse.usecases.predictive_maintenance import USE_CASE
from tests.cluster_job import DATASETS, PREDICTIONS, TRAINING_SET, build
from tests.helpers import PROJECT_ROOT, local_settings, table_rows

SPARK_HOME = pyspark_home()
WORKERS = 2


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen(
        [str(SPARK_HOME / "bin" / "spark-class"), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )


def _status(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, int]]:
    logs = tmp_path_factory.mktemp("cluster-logs")
    port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": str(PROJECT_ROOT),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    master_url = f"spark://127.0.0.1:{port}"
    processes = [
        _start(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", str(ui_port)],
            logs / "master.log", env,
        )
    ]  # fmt: skip
    try:
        for n in range(WORKERS):
            processes.append(
                _start(
                    ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                     "--cores", "1", "--memory", "2g", "--webui-port", "0",
                     "--work-dir", str(logs / f"work-{n}"), master_url],
                    logs / f"worker-{n}.log", env,
                )
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                alive = [w for w in _status(ui_port)["workers"] if w["state"] == "ALIVE"]
                if len(alive) == WORKERS:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    "the standalone cluster did not start:\n" + (logs / "master.log").read_text()
                )
            time.sleep(0.5)
        yield master_url, ui_port
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory) -> Iterator[str]:
    """pyspark's Spark Connect server with the local settings (Delta, UTC), on loopback."""
    logs = tmp_path_factory.mktemp("connect-logs")
    port = free_port()
    settings = local_settings(tmp_path_factory.mktemp("connect-server"))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    log = (logs / "server.log").open("w")
    process = subprocess.Popen(
        connect_server_command(settings, port), stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        deadline = time.monotonic() + 180
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "the Spark Connect server did not start:\n" + _tail(logs / "server.log")
                )
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text()[-chars:]


def _run_job(spark, root: Path, url: str) -> Lakehouse:
    run = subprocess.run(
        [sys.executable, "-m", "tests.cluster_job", str(root), url],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return Lakehouse(spark, local_settings(root), USE_CASE.name)


@pytest.fixture(scope="module")
def cluster_lake(cluster, spark, tmp_path_factory) -> Lakehouse:
    master_url, _ = cluster
    return _run_job(spark, tmp_path_factory.mktemp("cluster-run"), master_url)


@pytest.fixture(scope="module")
def connect_lake(connect_server, spark, tmp_path_factory) -> Lakehouse:
    return _run_job(spark, tmp_path_factory.mktemp("connect-run"), connect_server)


@pytest.fixture(scope="module")
def local_lake(spark, tmp_path_factory) -> Lakehouse:
    lake = Lakehouse(spark, local_settings(tmp_path_factory.mktemp("local-run")), USE_CASE.name)
    build(lake)
    return lake


# Where and when a row was loaded: different in two runs by design.
LOAD_COLUMNS = ["source_file", "ingested_at"]


def _sorted(lake: Lakehouse, key: str):
    return table_rows(lake, key, LOAD_COLUMNS)


def test_the_cluster_ran_the_job_on_two_executors(cluster, cluster_lake):
    _, ui_port = cluster
    status = _status(ui_port)
    (app,) = status["completedapps"]

    assert len(status["workers"]) == WORKERS
    assert app["cores"] == WORKERS  # one executor per worker, one core each
    assert app["state"] == "FINISHED"


TABLES = [*DATASETS, "machine_telemetry_features", TRAINING_SET, PREDICTIONS]


@pytest.mark.parametrize("key", TABLES)
def test_every_table_equals_the_local_run(cluster_lake, local_lake, key):
    expected = _sorted(local_lake, key)

    # A fleet of two machines over four days may have no failure; every other table has rows.
    assert len(expected) > 0 or key == "failures", key
    assert_frame_equal(_sorted(cluster_lake, key), expected, check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("key", TABLES)
def test_through_spark_connect_every_table_equals_the_local_run(connect_lake, local_lake, key):
    expected = _sorted(local_lake, key)

    assert len(expected) > 0 or key == "failures", key
    assert_frame_equal(_sorted(connect_lake, key), expected, check_exact=False, rtol=1e-9)
