"""The feature catalogue (docs/features.md), generated from the declarations.

`make docs` rewrites it; a test fails when the committed file is out of date, so the
documentation cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Sequence

from featurehouse.config import Settings
from featurehouse.features.declaration import FeatureTable


def _history(source) -> str:
    if source.timestamp is None:
        return "snapshot"
    if source.history is None:
        return "all history"
    return f"{source.history.total_seconds() / 3600:g} h"


def table_markdown(table: FeatureTable, settings: Settings) -> str:
    ttl = f"{table.ttl.total_seconds() / 3600:g} h" if table.ttl else "none (valid forever)"
    lines = [
        f"## {table.view_name}",
        "",
        table.description,
        "",
        f"- Delta table: `{settings.tables.model_dump()[table.table_key]}`"
        f" (key `{table.table_key}` in `conf/`), clustered by"
        f" {', '.join(f'`{c}`' for c in table.cluster_by)}",
        f"- Row key: {', '.join(f'`{c}`' for c in table.row_key)}; lookup TTL: {ttl}",
        "- Sources (history re-read by an incremental run): "
        + ", ".join(f"`{s.table_key}` ({_history(s)})" for s in table.sources),
        "- Expectations: " + "; ".join(f"{e.name} ({e.severity})" for e in table.all_expectations),
        "",
        "| Feature | Type | Description | Tags |",
        "| --- | --- | --- | --- |",
    ]
    for f in table.features:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(f.tags.items()))
        lines.append(f"| `{f.name}` | {f.dtype} | {f.description} | {tags} |")
    return "\n".join(lines)


def catalogue_markdown(tables: Sequence[FeatureTable], settings: Settings) -> str:
    header = [
        "# Feature catalogue",
        "",
        "Generated from the declarations in `src/featurehouse/features/` by `make docs`;"
        " do not edit by hand.",
        "",
    ]
    return (
        "\n".join(header) + "\n" + "\n\n".join(table_markdown(t, settings) for t in tables) + "\n"
    )


def main() -> None:
    from pathlib import Path

    from featurehouse.config import load_settings
    from featurehouse.features import FEATURE_TABLES

    settings = load_settings("local")
    target = Path(settings.project_root) / "docs" / "features.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text(catalogue_markdown(FEATURE_TABLES, settings))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
