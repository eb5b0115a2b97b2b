"""The notebooks as Databricks runs them (statically; tests/integration runs them locally):
every widget read is defined first, and the wheel is installed before anything imports it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bundle.checks import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
SEPARATOR = "# COMMAND ----------"
WIDGET_DEFINE = re.compile(
    r"dbutils\.widgets\.(?:text|dropdown|combobox|multiselect)\(\s*[\"'](\w+)[\"']"
)
WIDGET_READ = re.compile(r"dbutils\.widgets\.get\(\s*[\"'](\w+)[\"']")


def _cells(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split(f"\n{SEPARATOR}\n")


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


def test_every_widget_a_notebook_reads_is_defined_before(notebook: Path) -> None:
    text = notebook.read_text(encoding="utf-8")
    defined: dict[str, int] = {}
    for match in WIDGET_DEFINE.finditer(text):
        defined.setdefault(match.group(1), match.start())
    for match in WIDGET_READ.finditer(text):
        name = match.group(1)
        assert name in defined, f"{notebook.name}: widget {name!r} is read but never defined"
        assert defined[name] < match.start(), f"{notebook.name}: widget {name!r} read first"


def test_a_notebook_installs_the_project_wheel_before_importing_it(notebook: Path) -> None:
    cells = _cells(notebook)
    pip = [i for i, cell in enumerate(cells) if cell.lstrip().startswith("# MAGIC %pip install")]
    imports = [i for i, cell in enumerate(cells) if re.search(r"^from featurehouse", cell, re.M)]
    assert pip, f"{notebook.name}: no `%pip install` cell"
    assert imports and pip[0] < imports[0], f"{notebook.name}: install before the first import"
    # On Databricks the installed package is only visible after Python restarts.
    restart = [i for i, cell in enumerate(cells) if "dbutils.library.restartPython()" in cell]
    assert restart and pip[0] < restart[0] < imports[0], notebook.name
