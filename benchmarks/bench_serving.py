"""Benchmark of the prediction service against stock `feast serve`, in one run.

    python -m benchmarks.bench_serving                       # SQLite, then Redis
    python -m benchmarks.bench_serving --stores sqlite --requests 1000 --duration 5

Data: --entities entities (default 10,000) x 50 double features in one Delta feature table
(one Feast view), loaded into the online store by featurehouse's materialization (the same
bytes stock Feast writes and reads); a HistGradientBoosting regressor (--trees trees, 31
leaves) on those 50 features, registered as the champion in a local MLflow registry.

Per online store (SQLite, then a redis-server started here on loopback), three servers on
loopback, each started as its own process:

- ours: `python -m featurehouse.serving`, keys in, prediction out (online read, the
  compiled champion, the inference log queued), one worker; and two workers for the
  throughput phase;
- stock `feast serve` (one worker): the feature lookup alone, `POST /get-online-features`
  of the 50 features for the same entity ids.

Phases, each bounded in requests and seconds: (1) one client, one entity per request:
p50/p99/mean latency (--requests after a warm-up); (2) --concurrency clients for
--duration seconds: answered requests per second, every answer checked to be a 200;
(3) one client, --batch entities per request: latency per request. The load generator is
an asyncio HTTP/1.1 client with keep-alive (one connection per client), in this process.
Goals: our single-entity p99 <= 2 ms; >= 1,000 predictions/s with every request answered.

Before timing, five answers of ours are checked against the model's own sklearn
prediction on the same features.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from featurehouse.serving.server import free_port
from featurehouse.training.models import boosted_trees_regressor
from featurehouse.usecase import (
    EVENT_TIMESTAMP,
    Candidate,
    Column,
    Entity,
    Feature,
    FeatureTable,
    Label,
    RawDataset,
    Regression,
    Source,
    Spine,
    UseCase,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NAME = "bench_serving"
FEATURES = 50
DAY = timedelta(days=1)

# The benchmark's use case, declared like any other (the service imports it by name).
ENTITY = Entity("bench_entity", {"entity_id": "bigint"})
EVENTS = RawDataset(
    "events",
    "events_*.csv",
    (Column("entity_id", "bigint"), Column("ts", "timestamp"), Column("y", "double")),
    keys=("entity_id", "ts"),
    time="ts",
)
TABLE = FeatureTable(
    name="bench_features",
    view_name="bench_features",
    description="50 generated features per entity.",
    entity=ENTITY,
    features=tuple(Feature(f"f{i:02d}", "double", f"feature {i}") for i in range(FEATURES)),
    sources=(Source(EVENTS),),
    build=lambda bronze: bronze["events"],
    ttl=None,
)
USE_CASE = UseCase(
    name=NAME,
    description="A benchmark: 50 features in, one forecast out.",
    entity=ENTITY,
    datasets=(EVENTS,),
    tables=(TABLE,),
    spine=Spine(EVENTS, every=DAY),
    label=Label("y_next", "sum", EVENTS, horizon=DAY, column="y"),
    task=Regression(prediction="y_forecast"),
    candidates=(Candidate("boosted_trees", boosted_trees_regressor),),
    model_name="bench_model",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--requests", type=int, default=2000, help="Single-client requests.")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds of load.")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batch-requests", type=int, default=300)
    parser.add_argument("--workers", default="1,2", help="Our worker counts under load.")
    parser.add_argument("--no-feast", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "fh-bench")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------
# Set-up: settings, the feature table, the online stores, the champion


def overrides(root: Path, store: dict[str, Any]) -> dict[str, Any]:
    db = f"sqlite:///{root}/mlflow/mlflow.db"
    return {
        "storage": {
            "root": str(root),
            "raw_dir": str(root / "raw"),
            "staging_dir": str(root / "staging"),
        },
        "mlflow": {"tracking_uri": db, "registry_uri": db},
        "feast": {"store_dir": str(root / "feast"), "online_store": store},
        "spark": {"shuffle_partitions": 4},
        "use_cases": {
            NAME: {
                "declaration": "benchmarks.bench_serving:USE_CASE",
                "raw_dir": str(root / "raw"),
            }
        },
    }


def write_conf(root: Path, name: str, data: dict[str, Any]) -> Path:
    """A copy of conf/ (as it was when the run started) whose local.yml carries `data`:
    what this process and the service processes load."""
    import yaml

    from featurehouse.config import deep_merge

    snapshot = root / "conf-snapshot"
    if not snapshot.exists():
        shutil.copytree(PROJECT_ROOT / "conf", snapshot)
    conf_dir = root / f"conf-{name}"
    shutil.rmtree(conf_dir, ignore_errors=True)
    shutil.copytree(snapshot, conf_dir)
    local = yaml.safe_load((conf_dir / "local.yml").read_text())
    (conf_dir / "local.yml").write_text(yaml.safe_dump(deep_merge(local, data)))
    return conf_dir


def feature_frame(entities: int, seed: int = 7):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    values = rng.normal(size=(entities, FEATURES))
    values[rng.random(values.shape) < 0.01] = np.nan  # a few missing values
    frame = pd.DataFrame(values, columns=[f.name for f in TABLE.features])
    frame.insert(0, EVENT_TIMESTAMP, pd.Timestamp("2024-06-01", tz="UTC"))
    frame.insert(0, "entity_id", np.arange(entities, dtype=np.int64))
    return frame


def train_champion(settings, frame, trees: int) -> str:
    """A regressor on the 50 features, registered and made champion; returns its version."""
    import mlflow
    import numpy as np
    from mlflow.tracking import MlflowClient

    from featurehouse.training.evaluate import model_inputs
    from featurehouse.training.registry import configure_mlflow
    from featurehouse.training.train import SKOPS_TRUSTED_TYPES, model_requirements

    configure_mlflow(settings, NAME)
    inputs = model_inputs(USE_CASE, {"max_iter": trees, "max_leaf_nodes": 31})
    features = frame[inputs.columns]
    x = np.nan_to_num(features.to_numpy())
    target = (
        x[:, 0] * 3
        + x[:, 1] ** 2
        - x[:, 2] * x[:, 3]
        + np.random.default_rng(1).normal(size=len(x))
    )
    model = boosted_trees_regressor(inputs).fit(features, target)
    name = settings.model_name(NAME, USE_CASE.model_name)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=model_requirements(),
        )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(name, "champion", version)
    return version


def feast_repo(root: Path, settings, store: dict[str, Any]) -> Path:
    """A feature repo for `feast serve`: the registry featurehouse applied, the same store."""
    import yaml

    repo = root / f"feast-repo-{store['type']}"
    repo.mkdir(parents=True, exist_ok=True)
    online = (
        {"type": "sqlite", "path": str(settings.feast.store_dir / "online_store.db")}
        if store["type"] == "sqlite"
        else {"type": "redis", "connection_string": store["connection_string"]}
    )
    config = {
        "project": settings.project,
        "provider": "local",
        "registry": str(settings.feast.store_dir / "registry.db"),
        "online_store": online,
        "offline_store": {"type": "spark"},
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return repo


def start_redis(root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
    )
    import redis

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port).ping()
            return process, port
        except redis.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("redis-server did not start")


# ---------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start(name: str, cmd: list[str], root: Path, port: int, cwd: Path) -> Server:
    import urllib.request

    log = root / f"{name.replace(' ', '-')}.log"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, process, port, log)
    health = "/health"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")


def start_ours(root: Path, conf_dir: Path, workers: int) -> Server:
    port = free_port()
    serving = {"workers": workers, "max_batch": 1000, "poll_interval": "30s"}
    cmd = [
        sys.executable, "-m", "featurehouse.serving", "--env", "local", "--conf-dir", str(conf_dir),
        "-u", NAME, "--port", str(port), "--serving", json.dumps(serving),
    ]  # fmt: skip
    return start(f"ours-{workers}w", cmd, root, port, PROJECT_ROOT)


def start_feast(root: Path, repo: Path) -> Server:
    port = free_port()
    feast = str(Path(sys.executable).parent / "feast")
    # One worker, and no restart after 1,000 requests (its default, which drops connections).
    cmd = [
        feast, "serve", "-h", "127.0.0.1", "-p", str(port), "--no-access-log", "-w", "1",
        "--max-requests", "100000000",
    ]  # fmt: skip
    return start("feast-serve", cmd, root, port, repo)


# ---------------------------------------------------------------------------------------
# The load generator: HTTP/1.1 keep-alive over asyncio streams


def http_post(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Phase:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def summary(self, entities_per_request: int = 1) -> dict[str, float]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "entities_per_second": round(self.requests * entities_per_request / self.seconds, 1)
            if self.seconds
            else 0.0,
            "p50_ms": round(pct(0.50), 3),
            "p99_ms": round(pct(0.99), 3),
            "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3) if ordered else 0.0,
        }


async def sequential(port: int, requests: list[bytes], warmup: int, seconds: float) -> Phase:
    connection = await Connection.open(port)
    phase = Phase()
    try:
        for request in requests[:warmup]:
            await connection.send(request)
        started = time.perf_counter()
        for request in requests[warmup:]:
            sent = time.perf_counter()
            status, _ = await connection.send(request)
            phase.latencies.append(time.perf_counter() - sent)
            phase.requests += 1
            phase.errors += status != 200
            if sent - started > seconds:
                break
        phase.seconds = time.perf_counter() - started
    finally:
        connection.close()
    return phase


async def concurrent(port: int, requests: list[bytes], clients: int, seconds: float) -> Phase:
    phase = Phase()
    connections = [await Connection.open(port) for _ in range(clients)]
    stop_at = time.perf_counter() + seconds

    async def client(connection: Connection, offset: int) -> None:
        i = offset
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            try:
                status, _ = await connection.send(requests[i % len(requests)])
            except (ConnectionError, asyncio.IncompleteReadError):
                status = 0  # a dropped connection is an unanswered request: reconnect
                connection.close()
                connection = await Connection.open(port)
            phase.latencies.append(time.perf_counter() - sent)
            phase.requests += 1
            phase.errors += status != 200
            i += clients
        connection.close()

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c, k) for k, c in enumerate(connections)))
    finally:
        phase.seconds = time.perf_counter() - started
    return phase


def ours_request(ids: list[int]) -> bytes:
    body = json.dumps({"entities": [{"entity_id": i} for i in ids]}).encode()
    return http_post(f"/v1/use-cases/{NAME}/predict", body)


def feast_request(ids: list[int]) -> bytes:
    features = [f"{TABLE.view_name}:{f.name}" for f in TABLE.features]
    body = json.dumps({"features": features, "entities": {"entity_id": ids}}).encode()
    return http_post("/get-online-features", body)


def id_lists(entities: int, count: int, size: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(entities) for _ in range(size)] for _ in range(count)]


def check_ours(port: int, settings, frame, version: str) -> float:
    """Our answers for 5 entities against the model's own sklearn prediction."""
    import mlflow
    import numpy as np

    ids = [0, 1, 2, 3, 4]

    async def ask() -> bytes:
        connection = await Connection.open(port)
        try:
            status, body = await connection.send(ours_request(ids))
        finally:
            connection.close()
        assert status == 200, body
        return body

    answer = json.loads(asyncio.run(ask()))
    got = np.array([p[USE_CASE.task.prediction] for p in answer["predictions"]])
    name = settings.model_name(NAME, USE_CASE.model_name)
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    expected = model.predict(frame.iloc[ids][[f.name for f in TABLE.features]])
    return float(np.max(np.abs(got - expected)))


# ---------------------------------------------------------------------------------------


def run_store(
    args, root: Path, store_name: str, settings, conf_dir: Path, repo: Path, frame, version
):
    single = id_lists(args.entities, args.requests + 200, 1, seed=1)
    batches = id_lists(args.entities, args.batch_requests + 20, args.batch, seed=2)
    load = id_lists(args.entities, 5000, 1, seed=3)
    workers = [int(w) for w in args.workers.split(",")]
    results: dict[str, Any] = {}
    servers = [("ours", ours_request)] + ([] if args.no_feast else [("feast serve", feast_request)])
    for label, build in servers:
        started = (
            start_ours(root, conf_dir, workers[0]) if label == "ours" else start_feast(root, repo)
        )
        try:
            if label == "ours":
                gap = check_ours(started.port, settings, frame, version)
                print(f"  check: ours vs sklearn on 5 entities, max difference {gap:.2e}")
                results["check_max_difference"] = gap
            one = asyncio.run(sequential(started.port, [build(i) for i in single], 200, 60))
            batch = asyncio.run(sequential(started.port, [build(i) for i in batches], 20, 60))
            many = asyncio.run(
                concurrent(started.port, [build(i) for i in load], args.concurrency, args.duration)
            )
        finally:
            started.stop()
        results[label] = {
            "single": one.summary(),
            f"batch_{args.batch}": batch.summary(args.batch),
            f"concurrent_{args.concurrency}": many.summary(),
        }
        report(store_name, label, results[label], args)
    for count in workers[1:]:
        started = start_ours(root, conf_dir, count)
        try:
            many = asyncio.run(
                concurrent(
                    started.port, [ours_request(i) for i in load], args.concurrency, args.duration
                )
            )
        finally:
            started.stop()
        results[f"ours {count} workers"] = {f"concurrent_{args.concurrency}": many.summary()}
        s = many.summary()
        print(
            f"  {'ours, ' + str(count) + ' workers':<22} {args.concurrency} clients:"
            f" {s['per_second']:>8,.0f} predictions/s, p50 {s['p50_ms']:.2f} ms,"
            f" p99 {s['p99_ms']:.2f} ms, {s['errors']} errors of {s['requests']:,}"
        )
    if "feast serve" in results:
        ours, feast = results["ours"]["single"], results["feast serve"]["single"]
        print(
            f"  ratio feast/ours, single entity: p50 {feast['p50_ms'] / ours['p50_ms']:.2f}x,"
            f" p99 {feast['p99_ms'] / ours['p99_ms']:.2f}x; throughput ours/feast"
            f" {results['ours'][f'concurrent_{args.concurrency}']['per_second'] / results['feast serve'][f'concurrent_{args.concurrency}']['per_second']:.2f}x"
        )
    return results


def report(store: str, label: str, result: dict, args) -> None:
    one = result["single"]
    batch = result[f"batch_{args.batch}"]
    many = result[f"concurrent_{args.concurrency}"]
    print(
        f"  {label:<22} 1 entity:  p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms,"
        f" mean {one['mean_ms']:.2f} ms ({one['requests']:,} requests, {one['errors']} errors)"
    )
    print(
        f"  {'':<22} {args.batch} entities: p50 {batch['p50_ms']:.2f} ms, p99 {batch['p99_ms']:.2f} ms"
        f" per request ({batch['entities_per_second']:,.0f} entities/s)"
    )
    print(
        f"  {'':<22} {args.concurrency} clients: {many['per_second']:>8,.0f} requests/s,"
        f" p50 {many['p50_ms']:.2f} ms, p99 {many['p99_ms']:.2f} ms,"
        f" {many['errors']} errors of {many['requests']:,}"
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    root = args.data_dir / "serving"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    from featurehouse.config import load_settings
    from featurehouse.io import Lakehouse
    from featurehouse.spark import get_spark
    from featurehouse.store.feast_store import apply_definitions, feature_store
    from featurehouse.store.online import materialize_online

    lake_root = root / "lake"
    sqlite = {"type": "sqlite", "connection_string_env": None}
    settings = load_settings(
        "local", conf_dir=write_conf(root, "sqlite", overrides(lake_root, sqlite))
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    frame = feature_frame(args.entities)
    spark = get_spark(settings)
    lake = Lakehouse(spark, settings, NAME)
    lake.overwrite(spark.createDataFrame(frame), TABLE.name)
    apply_definitions(feature_store(settings), settings, USE_CASE)
    started = time.perf_counter()
    version = train_champion(settings, frame, args.trees)
    print(f"champion: {args.trees} trees, trained in {time.perf_counter() - started:.1f} s")
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "load_average": os.getloadavg(),
    }
    redis_process = None
    try:
        for store_name in args.stores.split(","):
            if store_name == "redis":
                redis_process, port = start_redis(root)
                store = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
            else:
                store = sqlite
            data = overrides(lake_root, store)
            conf_dir = write_conf(root, store_name, data)
            store_settings = load_settings("local", conf_dir=conf_dir)
            views = materialize_online(lake, store_settings, USE_CASE, full=True)
            print(f"\n{store_name}: {views[0].describe()}", flush=True)
            repo = feast_repo(root, store_settings, {**store, "type": store_name})
            results[store_name] = run_store(
                args, root, store_name, store_settings, conf_dir, repo, frame, version
            )
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)
        spark.stop()
    out = PROJECT_ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_serving-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {path}")
    return results


if __name__ == "__main__":
    main()
