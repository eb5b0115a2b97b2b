"""The prediction service runs where there is no Spark (a Databricks App, a container):
none of its modules may need pyspark or delta-spark."""

import subprocess
import sys

BLOCK_SPARK = """
import sys
for name in ("pyspark", "delta"):
    sys.modules[name] = None  # any import of them now raises ImportError
import featurehouse.serving.app, featurehouse.serving.server, featurehouse.store.online
print("imported")
"""


def test_the_service_imports_without_pyspark_or_delta():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_SPARK], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
