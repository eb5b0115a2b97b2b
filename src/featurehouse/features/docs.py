"""The feature catalogue (docs/features.md), generated from the declarations.

`make docs` rewrites it; a test fails when the committed file is out of date, so the
documentation cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from featurehouse.config import Settings
from featurehouse.usecase import FeatureTable, Source, UseCase


def _span(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours / 24:g} d" if hours >= 48 and hours % 24 == 0 else f"{hours:g} h"


def _history(source: Source) -> str:
    if source.timestamp is None:
        return "snapshot"
    history = "all history" if source.history is None else _span(source.history)
    return f"{history}, looks {_span(source.lead)} ahead" if source.lead else history


def table_markdown(table: FeatureTable, table_name: str) -> str:
    ttl = _span(table.ttl) if table.ttl else "none (valid forever)"
    lines = [
        f"### {table.view_name}",
        "",
        table.description,
        "",
        f"- Delta table: `{table_name}`, clustered by"
        f" {', '.join(f'`{c}`' for c in table.cluster_by)}",
        f"- Row key: {', '.join(f'`{c}`' for c in table.row_key)}; lookup TTL: {ttl}",
        "- Sources (history re-read by an incremental run): "
        + ", ".join(f"`{s.name}` ({_history(s)})" for s in table.sources),
        "- Expectations: " + "; ".join(f"{e.name} ({e.severity})" for e in table.all_expectations),
        "",
        "| Feature | Type | Description | Tags |",
        "| --- | --- | --- | --- |",
    ]
    for f in table.features:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(f.tags.items()))
        lines.append(f"| `{f.name}` | {f.dtype} | {f.description} | {tags} |")
    return "\n".join(lines)


def use_case_markdown(use_case: UseCase, settings: Settings) -> str:
    keys = ", ".join(f"`{k}` ({t})" for k, t in use_case.entity.keys.items())
    header = [
        f"## {use_case.name}",
        "",
        use_case.description,
        "",
        f"- Entity `{use_case.entity.name}`: {keys}",
        f"- Feature service: `{settings.feature_service(use_case.name)}`",
        "",
    ]
    tables = [table_markdown(t, settings.table(use_case.name, t.name)) for t in use_case.tables]
    return "\n".join(header) + "\n" + "\n\n".join(tables)


def catalogue_markdown(use_cases: Sequence[UseCase], settings: Settings) -> str:
    header = [
        "# Feature catalogue",
        "",
        "Generated from the use cases' declarations by `make docs`; do not edit by hand.",
        "",
    ]
    body = "\n\n".join(use_case_markdown(uc, settings) for uc in use_cases)
    return "\n".join(header) + "\n" + body + "\n"


def main() -> None:
    from pathlib import Path

    from featurehouse.config import load_settings
    from featurehouse.discovery import load_use_cases

    settings = load_settings("local")
    target = Path(settings.project_root) / "docs" / "features.md"
    target.parent.mkdir(exist_ok=True)
    use_cases = load_use_cases(settings).values()
    target.write_text(catalogue_markdown(list(use_cases), settings))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
