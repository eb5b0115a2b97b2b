"""Run by tests/integration/test_crashes.py in a process of its own: the small run of
`tests.cluster_job` on a local session, killed with SIGKILL (kill -9, no clean-up of any
kind) just before or just after its write to one table.

    python -m tests.crash_job <lakehouse root> before|after <table key>
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from featurehouse.io import Lakehouse
from featurehouse.spark import get_spark
from tests.cluster_job import build
from tests.helpers import local_settings

WRITES = ("merge", "insert", "overwrite", "append")


def kill_at(when: str, target: str) -> None:
    """Make every Lakehouse write to `target` kill this process before or after it."""

    def wrapped(write):
        def write_then_maybe_die(self, df, key, *args, **kwargs):
            if (when, key) == ("before", target):
                os.kill(os.getpid(), signal.SIGKILL)
            result = write(self, df, key, *args, **kwargs)
            if (when, key) == ("after", target):
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return write_then_maybe_die

    for name in WRITES:
        setattr(Lakehouse, name, wrapped(getattr(Lakehouse, name)))


def main(root: str, when: str, target: str) -> None:
    settings = local_settings(Path(root))
    kill_at(when, target)
    build(Lakehouse(get_spark(settings), settings, "predictive_maintenance"))
    print(f"never killed: no write to {target}")


if __name__ == "__main__":
    main(*sys.argv[1:])
