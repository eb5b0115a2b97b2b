"""The GitHub Actions workflows: actionlint, and the CI/CD shape of Databricks' MLOps Stacks
template: tests and `bundle validate` for each target on every pull request, staging deployed
on a merge to main, prod on a release tag, the service principal logging in through OIDC
with no token anywhere in the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.bundle.checks import (
    EXPECTED_TARGETS,
    ROOT,
    WORKFLOWS_DIR,
    bundle_commands,
    read_yaml,
    workflow_triggers,
)

ACTIONLINT = ROOT / ".tools" / "bin" / "actionlint"
# A Databricks personal access token, or any token-shaped secret, committed by mistake.
TOKEN = re.compile(r"\bdapi[0-9a-f]{32}\b|DATABRICKS_TOKEN|DATABRICKS_CLIENT_SECRET")


def _workflows() -> dict[str, dict[str, Any]]:
    return {path.name: read_yaml(path) for path in sorted(WORKFLOWS_DIR.glob("*.y*ml"))}


def _runs(job: dict[str, Any]) -> list[str]:
    return [step.get("run", "") for step in job.get("steps") or []]


def _jobs_running(command: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(workflow file, job id, job, target) of every job that runs `databricks bundle <command>`."""
    found = []
    for name, workflow in _workflows().items():
        for job_id, job in (workflow.get("jobs") or {}).items():
            for ran, target in bundle_commands(job):
                if ran == command:
                    found.append((name, job_id, job, target))
    return found


def _actionlint() -> str | None:
    if ACTIONLINT.is_file():
        return str(ACTIONLINT)
    return shutil.which("actionlint")


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip(
            f"actionlint not found at {ACTIONLINT.relative_to(ROOT)} or on PATH:"
            " `make setup` builds it with Go (github.com/rhysd/actionlint)"
        )
    files = sorted(str(p.relative_to(ROOT)) for p in WORKFLOWS_DIR.glob("*.y*ml"))
    assert files, "no workflow in .github/workflows"
    run = subprocess.run(
        [actionlint, "-no-color", *files], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip("actionlint not installed (see the test above)")
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.nope.number }}\n        uses: actions/checkout@v4\n"
    )
    run = subprocess.run(
        [actionlint, "-no-color", str(broken)], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 1, run.stdout
    assert "broken.yml" in run.stdout


def test_every_pull_request_runs_lint_and_the_whole_test_suite() -> None:
    tested = [
        (name, job_id)
        for name, workflow in _workflows().items()
        if "pull_request" in workflow_triggers(workflow)
        for job_id, job in workflow["jobs"].items()
        if any(re.search(r"\bmake test\b", run) for run in _runs(job))
        and any(re.search(r"\bmake\b.*\blint\b", run) for run in _runs(job))
    ]
    assert tested, "no pull_request workflow runs `make lint` and `make test`"


def test_every_pull_request_validates_the_bundle_for_every_target() -> None:
    validated = {
        target
        for name, _, _, target in _jobs_running("validate")
        if "pull_request" in workflow_triggers(_workflows()[name])
    }
    assert validated == set(EXPECTED_TARGETS)


@pytest.mark.parametrize(
    ("target", "trigger"),
    [("staging", {"push": {"branches": ["main"]}}), ("prod", {"push": {"tags": ["v*.*.*"]}})],
)
def test_staging_deploys_on_merge_to_main_and_prod_on_a_release_tag(
    target: str, trigger: dict
) -> None:
    deploys = [(name, job) for name, _, job, t in _jobs_running("deploy") if t == target]
    assert len(deploys) == 1, f"exactly one workflow job deploys {target}: {deploys}"
    [(name, job)] = deploys
    triggers = workflow_triggers(_workflows()[name])
    event, filters = next(iter(trigger.items()))
    assert triggers[event] == filters, triggers
    assert "pull_request" not in triggers
    assert job["environment"] == target
    runs = "\n".join(_runs(job))
    # Validation first; the experiments' folders exist before the bundle creates them.
    assert runs.index(f"bundle validate -t {target}") < runs.index(f"bundle deploy -t {target}")
    assert runs.index(f"jobs.prerequisites {target} --folders") < runs.index("bundle deploy")
    assert "databricks workspace mkdirs" in runs


def test_bundle_commands_log_in_as_the_service_principal_through_oidc() -> None:
    jobs = _jobs_running("validate") + _jobs_running("deploy")
    assert jobs
    for name, job_id, job, _ in jobs:
        where = f"{name}: jobs.{job_id}"
        assert job["permissions"]["id-token"] == "write", where
        env = job["env"]
        assert env["DATABRICKS_AUTH_TYPE"] == "github-oidc", where
        assert env["DATABRICKS_HOST"] == "${{ vars.DATABRICKS_HOST }}", where
        assert env["DATABRICKS_CLIENT_ID"] == "${{ vars.DATABRICKS_CLIENT_ID }}", where
        # The jobs run as the identity that deploys them.
        assert env["BUNDLE_VAR_service_principal"] == env["DATABRICKS_CLIENT_ID"], where
        # A GitHub environment per target holds its workspace and principal.
        assert job["environment"] in (*EXPECTED_TARGETS, "${{ matrix.target }}"), where
        # The CLI runs the generators in the project's virtualenv.
        assert any("make .venv/.synced" in run for run in _runs(job)), where


def test_no_token_or_secret_is_in_the_repository_workflows() -> None:
    for path in sorted(WORKFLOWS_DIR.glob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        assert not TOKEN.search(text), path.name
        assert "secrets." not in text, f"{path.name}: OIDC needs no secret"


def test_workflows_default_to_read_only_permissions() -> None:
    for name, workflow in _workflows().items():
        assert workflow["permissions"] == {"contents": "read"}, name
