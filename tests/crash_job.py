"""Run by tests/integration/test_crashes.py in a process of its own: a `featurehouse`
command, with a hook at one write. The settings come from $FEATUREHOUSE_CONF_DIR.

    python -m tests.crash_job <when> <key> <featurehouse arguments...>

`key` is a table's key (any Lakehouse write to it, staging included) or a registry alias
(setting it).
`when` is one of:
- `before`, `after`: kill this process with SIGKILL (kill -9: no clean-up of any kind)
  just before or just after that write;
- `meet`: wait just before that write until $CRASH_JOB_MEET_COUNT processes (default 2)
  have reached it (each leaves a file in the folder $CRASH_JOB_MEET), then write: jobs
  started together then write the same table at the same moment.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from featurehouse.cli import app
from featurehouse.io import Lakehouse

WRITES = ("merge", "insert", "overwrite", "append", "stage")
MEET_TIMEOUT_SECONDS = 300


def meet() -> None:
    """Arrive at the meeting folder, then wait for the others."""
    folder = Path(os.environ["CRASH_JOB_MEET"])
    expected = int(os.environ.get("CRASH_JOB_MEET_COUNT", "2"))
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + MEET_TIMEOUT_SECONDS
    while len(list(folder.iterdir())) < expected:
        if time.monotonic() > deadline:
            sys.exit(f"only {len(list(folder.iterdir()))} of {expected} jobs arrived")
        time.sleep(0.05)


def hook(when: str, target: str, write):
    """`write`, with the hook when its second argument is `target`: the key of a
    Lakehouse write (data frame, key, ...), the alias of MlflowClient's (model, alias,
    version)."""

    def hooked(self, *args, **kwargs):
        key = args[1] if len(args) > 1 else kwargs.get("key", kwargs.get("alias"))
        if key == target and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        if key == target and when == "meet":
            meet()
        result = write(self, *args, **kwargs)
        if key == target and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return hooked


def main(when: str, target: str, *arguments: str) -> None:
    for name in WRITES:
        setattr(Lakehouse, name, hook(when, target, getattr(Lakehouse, name)))
    alias = MlflowClient.set_registered_model_alias
    MlflowClient.set_registered_model_alias = hook(when, target, alias)
    app(list(arguments))


if __name__ == "__main__":
    main(*sys.argv[1:])
