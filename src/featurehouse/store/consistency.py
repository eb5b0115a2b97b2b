"""Do the Feast registry, the Delta tables and the declarations still say the same thing?

Feast views and Delta tables are derived from the declarations, but each is stored on
its own (the registry file, the Delta log) and can go stale: a view applied from an
older release, a table built before a feature was added. `declaration_mismatches`
lists every disagreement, one line each.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from feast import FeatureStore

from featurehouse.io import Lakehouse
from featurehouse.store.definitions import FEAST_TYPES
from featurehouse.usecase import FeatureTable


def delta_mismatches(lake: Lakehouse, table: FeatureTable) -> list[str]:
    name = lake.name(table.name)
    if not lake.exists(table.name):
        return [f"{name}: Delta table missing"]
    fields = {f.name: f for f in lake.read(table.name).schema.fields}
    problems = []
    if list(fields) != table.columns:
        problems.append(f"{name}: columns {list(fields)} differ from the declared {table.columns}")
    for feature in table.features:
        field = fields.get(feature.name)
        if field is None:
            continue
        if field.dataType.simpleString() != feature.dtype:
            problems.append(
                f"{name}.{feature.name}: Delta type {field.dataType.simpleString()},"
                f" declared {feature.dtype}"
            )
        if field.metadata.get("comment") != feature.description:
            problems.append(f"{name}.{feature.name}: Delta comment differs from the declaration")
    return problems


def feast_mismatches(store: FeatureStore, lake: Lakehouse, table: FeatureTable) -> list[str]:
    try:
        view = store.get_feature_view(table.view_name)
    except Exception as exc:  # Feast raises its own not-found types per registry kind
        return [f"Feast view {table.view_name}: not in the registry ({type(exc).__name__})"]
    problems = []
    registered = {f.name: f for f in view.features}
    if list(registered) != table.feature_names:
        problems.append(
            f"Feast view {table.view_name}: features {list(registered)} differ from the"
            f" declared {table.feature_names}"
        )
    for feature in table.features:
        field = registered.get(feature.name)
        if field is not None and field.dtype != FEAST_TYPES[feature.dtype]:
            problems.append(
                f"Feast view {table.view_name}.{feature.name}: type {field.dtype},"
                f" declared {feature.dtype}"
            )
    if sorted(view.join_keys) != sorted(table.keys):
        problems.append(f"Feast view {table.view_name}: join keys {view.join_keys}")
    if view.batch_source.timestamp_field != table.timestamp:
        problems.append(f"Feast view {table.view_name}: timestamp field differs")
    # Feast spells "no TTL" as zero.
    if view.ttl != (table.ttl or timedelta(0)):
        problems.append(f"Feast view {table.view_name}: ttl {view.ttl}, declared {table.ttl}")
    location = lake.location(table.name)
    source = getattr(view.batch_source, "path", None) or getattr(view.batch_source, "table", None)
    expected = str(location) if location else lake.name(table.name)
    if source != expected:
        problems.append(f"Feast view {table.view_name}: reads {source}, expected {expected}")
    return problems


def declaration_mismatches(
    lake: Lakehouse, store: FeatureStore, tables: Sequence[FeatureTable]
) -> list[str]:
    return [
        problem
        for table in tables
        for problem in delta_mismatches(lake, table) + feast_mismatches(store, lake, table)
    ]
