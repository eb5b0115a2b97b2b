"""Fetch and cache Delta Lake's Spark jars, so that every later Spark start works offline.

Spark resolves `spark.jars.packages` through Ivy, which caches under ~/.ivy2.5.2 and
also looks in ~/.m2. Should Ivy's own download fail, Maven puts the jars into ~/.m2
and we try once more.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from featurehouse.config import load_settings  # noqa: E402
from featurehouse.spark import delta_maven_coordinates, get_spark  # noqa: E402


def delta_roundtrip() -> None:
    """Start local Spark with Delta and write and read one table: proves the jars load."""
    spark = get_spark(load_settings("local"))
    with tempfile.TemporaryDirectory() as tmp:
        spark.range(3).write.format("delta").save(tmp + "/t")
        assert spark.read.format("delta").load(tmp + "/t").count() == 3
    spark.stop()


def maven_fetch(coordinates: str) -> None:
    group, artifact, version = coordinates.split(":")
    for coords in (coordinates, f"{group}:delta-storage:{version}"):
        subprocess.run(["mvn", "-q", "dependency:get", f"-Dartifact={coords}"], check=True)


def main() -> None:
    coordinates = delta_maven_coordinates()
    try:
        delta_roundtrip()
    except Exception as exc:  # noqa: BLE001 - any failure here means: try Maven, then retry
        print(f"Ivy could not provide {coordinates} ({exc}); fetching with Maven", file=sys.stderr)
        maven_fetch(coordinates)
        delta_roundtrip()
    print(f"Delta jars ready: {coordinates}")


if __name__ == "__main__":
    main()
