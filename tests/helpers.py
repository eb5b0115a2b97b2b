"""Helpers shared by the tests: project paths, local settings in a temporary lakehouse."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from featurehouse.config import Settings, deep_merge, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from featurehouse.io import Lakehouse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"
AZURE_PDM = SHARED / "data" / "azure_pdm"


def local_overrides(root: Path) -> dict[str, Any]:
    """Settings that put every file the local environment writes under `root`."""
    db = f"sqlite:///{root}/mlflow/mlflow.db"
    return {
        "storage": {
            "root": str(root),
            "raw_dir": str(root / "raw"),
            "staging_dir": str(root / "staging"),
        },
        "mlflow": {"tracking_uri": db, "registry_uri": db},
        "feast": {"store_dir": str(root / "feast")},
        "spark": {"shuffle_partitions": 2},
    }


def local_settings(root: Path, **overrides: Any) -> Settings:
    return load_settings("local", overrides=deep_merge(local_overrides(root), overrides))


def write_conf_dir(target: Path, overrides: dict[str, Any]) -> Path:
    """A copy of conf/ whose local.yml also carries `overrides`, for code that loads settings
    by itself through $FEATUREHOUSE_CONF_DIR (notebooks, `feast apply`)."""
    conf_dir = target / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf_dir)
    local = yaml.safe_load((conf_dir / "local.yml").read_text())
    (conf_dir / "local.yml").write_text(yaml.safe_dump(deep_merge(local, overrides)))
    return conf_dir


def table_rows(
    lake: Lakehouse, key: str, varying: list[str], where: str | None = None
) -> pd.DataFrame | None:
    """The table's rows (those of `where`, SQL) in a stable order, without the columns that
    differ between two runs by design; None if there is no table. Rows are ordered by every
    column as text, so that columns Spark cannot sort (maps) take part too."""
    if not lake.exists(key):
        return None
    table = lake.read(key) if where is None else lake.read(key).where(where)
    frame = table.toPandas().drop(columns=varying, errors="ignore")
    order = frame.astype(str).sort_values(list(frame.columns)).index
    return frame.loc[order].reset_index(drop=True)
