"""The feature job's logic: read bronze tables, compute every feature table, write it."""

from __future__ import annotations

import logging

from featurehouse.features import FEATURE_TABLES, FeatureTable
from featurehouse.io import Lakehouse

log = logging.getLogger(__name__)


def build_feature_table(lake: Lakehouse, table: FeatureTable) -> None:
    """Recompute the whole table and replace it in one Delta commit (a rerun changes nothing)."""
    bronze = {key: lake.read(key) for key in table.sources}
    features = table.build(bronze).select(*table.columns)
    lake.overwrite(features, table.table_key)


def build_all_feature_tables(lake: Lakehouse) -> list[str]:
    for table in FEATURE_TABLES:
        build_feature_table(lake, table)
    return [lake.name(t.table_key) for t in FEATURE_TABLES]
