"""A Redis server of its own, for the tests and the benchmarks: loopback, a free port, a
temporary folder, no persistence; stopped when the block ends."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from featurehouse.serving.server import free_port

REDIS_SERVER = "redis-server"


def redis_server_binary() -> str | None:
    """The server's path, or None where it is not installed (`make setup` installs it)."""
    return shutil.which(REDIS_SERVER) or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def running_redis(folder: Path, timeout_s: float = 10.0) -> Iterator[str]:
    """Start redis-server in `folder` and yield its address "127.0.0.1:port"."""
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (make setup installs it)")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    # No snapshots and no append-only file: the data lives only as long as the test.
    args += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: see {folder / 'redis.log'}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
