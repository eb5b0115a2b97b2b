"""Offline checks of the Databricks Asset Bundle: databricks.yml plus the jobs that
jobs/workflows.py generates for every enabled use case of each target.

`databricks bundle validate` needs a workspace login, so these tests do what can be done
without one: call the generator the way the CLI does (for each target, with the target's
variables), merge its jobs into databricks.yml, validate the merged configuration against
the official bundle JSON schema, parse every job with the typed `databricks-bundles`
classes, and check the cross-references the CLI would only reject at deploy time.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regex
import yaml
from databricks.bundles.core import Bundle, Resources, Severity
from databricks.bundles.jobs import Job
from jobs import workflows
from jsonschema.exceptions import ValidationError

from featurehouse.config import CONF_DIR_ENV_VAR, load_settings
from featurehouse.discovery import load_use_cases

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT.parent / "shared" / "schemas" / "databricks-bundle.schema.json"
EXPECTED_TARGETS = {"dev", "staging", "prod"}
# Values `--env` accepts (conf/<env>.yml); every target is passed as `--env ${bundle.target}`.
CLI_ENVS = {"local", "dev", "staging", "prod"}
SPARK_PACKAGES = ("pyspark", "delta-spark", "delta_spark")
GENERATOR = "jobs.workflows:load_resources"

VAR_REF = re.compile(r"\$\{var\.([A-Za-z][\w-]*)\}")
JOB_ID_REF = re.compile(r"\$\{resources\.jobs\.([A-Za-z][\w-]*)\.id\}")
TASK_VALUE_REF = re.compile(r"\{\{\s*tasks\.([\w-]+)\.values\.([\w-]+)\s*\}\}")


# ---- loading ----


def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    return data


def included_files(root: Path) -> list[Path]:
    """The files `include` globs select, relative to the bundle root, in CLI order."""
    patterns = _read_yaml(root / "databricks.yml").get("include", [])
    files: list[Path] = []
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path.name != "databricks.yml" and path not in files:
                files.append(path)
    return files


def _merge(base: Any, other: Any) -> Any:
    """Merge like the CLI: mappings recursively, sequences appended, scalars overridden."""
    if isinstance(base, dict) and isinstance(other, dict):
        merged = dict(base)
        for key, value in other.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(other, list):
        return base + other
    return other


def _add_resources(bundle: dict[str, Any], kind: str, resources: dict, origin: str) -> dict:
    """`bundle` with more resources of one kind; a key defined twice is an error, as for the CLI."""
    existing = (bundle.get("resources") or {}).get(kind) or {}
    for key in resources:
        if key in existing:
            raise ValueError(f"{origin}: resources.{kind}.{key} is defined more than once")
    return _merge(bundle, {"resources": {kind: resources}})


def load_yaml_bundle(root: Path) -> dict[str, Any]:
    """databricks.yml with every included file merged in, the way the CLI loads YAML.

    `include` outside the root file is an error, as it is for the CLI.
    """
    bundle = _read_yaml(root / "databricks.yml")
    for path in included_files(root):
        part = _read_yaml(path)
        if "include" in part:
            raise ValueError(f"{path}: `include` is only allowed in databricks.yml")
        for kind, resources in (part.get("resources") or {}).items():
            bundle = _add_resources(bundle, kind, resources or {}, str(path))
        bundle = _merge(bundle, {k: v for k, v in part.items() if k != "resources"})
    return bundle


def yaml_job_sources(root: Path) -> dict[str, Path]:
    """The YAML file each YAML job is defined in (its relative paths resolve from its folder)."""
    sources = {}
    for path in [root / "databricks.yml", *included_files(root)]:
        for key in (_read_yaml(path).get("resources") or {}).get("jobs") or {}:
            sources[key] = path
    return sources


def _variable_value(bundle: dict[str, Any], target: str, name: str) -> Any:
    override = ((bundle["targets"][target] or {}).get("variables") or {}).get(name)
    if isinstance(override, dict):
        override = override.get("default")
    if override is not None:
        return override
    return bundle["variables"][name].get("default")


def python_bundle(bundle: dict[str, Any], target: str) -> Bundle:
    """What the CLI hands the Python functions: the target and its variables' values."""
    names = bundle.get("variables") or {}
    return Bundle(target=target, variables={n: _variable_value(bundle, target, n) for n in names})


def resource_functions(bundle: dict[str, Any]) -> list[Callable[[Bundle], Resources]]:
    """The `module:function`s databricks.yml lists under `python.resources`."""
    functions = []
    for qualified in (bundle.get("python") or {}).get("resources", []):
        module, _, name = qualified.partition(":")
        functions.append(getattr(importlib.import_module(module), name))
    return functions


def generated_jobs(bundle: dict[str, Any], target: str) -> dict[str, dict[str, Any]]:
    """The jobs the Python functions return for `target`, as the plain dicts the CLI receives."""
    jobs: dict[str, dict[str, Any]] = {}
    for function in resource_functions(bundle):
        resources = function(python_bundle(bundle, target))
        errors = [d for d in resources.diagnostics.items if d.severity == Severity.ERROR]
        if errors:
            raise ValueError(f"{function.__name__} failed for {target}: {errors}")
        for key, job in resources.jobs.items():
            if key in jobs:
                raise ValueError(f"{function.__name__}: job {key} is generated twice")
            jobs[key] = job.as_dict()
    return jobs


def load_bundle(root: Path, target: str) -> dict[str, Any]:
    """The configuration the CLI deploys for `target`: YAML plus the Python-generated jobs."""
    bundle = load_yaml_bundle(root)
    return _add_resources(bundle, "jobs", generated_jobs(bundle, target), GENERATOR)


def path_base(root: Path, job_key: str) -> Path:
    """The folder a job's relative paths resolve from: its YAML file's, or for a generated
    job the bundle root (see `workflows._resolve_from_bundle_root`)."""
    return yaml_job_sources(root).get(job_key, root / "databricks.yml").parent


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _jobs(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return (bundle.get("resources") or {}).get("jobs") or {}


def _tasks(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["task_key"]: task for task in job.get("tasks", [])}


def _upstream(tasks: dict[str, dict[str, Any]], key: str) -> set[str]:
    seen: set[str] = set()
    stack = [dep["task_key"] for dep in tasks[key].get("depends_on", [])]
    while stack:
        current = stack.pop()
        if current in seen or current not in tasks:
            continue
        seen.add(current)
        stack.extend(dep["task_key"] for dep in tasks[current].get("depends_on", []))
    return seen


def resolve(node: Any, bundle: dict[str, Any], target: str) -> Any:
    """Substitute ${var.*}, ${bundle.target} and ${bundle.name}; leave other references."""
    if isinstance(node, dict):
        return {key: resolve(value, bundle, target) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, bundle, target) for value in node]
    if not isinstance(node, str):
        return node
    node = node.replace("${bundle.target}", target)
    node = node.replace("${bundle.name}", bundle["bundle"]["name"])
    return VAR_REF.sub(lambda m: str(_variable_value(bundle, target, m.group(1))), node)


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@functools.cache
def known_use_cases() -> frozenset[str]:
    """Every use case `--use-case` accepts in some environment, enabled or not."""
    return frozenset(name for env in CLI_ENVS for name in load_settings(env).use_cases)


def _use_case_arg(params: list[str]) -> str | None:
    if "--use-case" not in params or params.index("--use-case") + 1 >= len(params):
        return None
    return params[params.index("--use-case") + 1]


def write_conf_copy(target: Path, edits: dict[str, dict[str, Any]]) -> Path:
    """A copy of conf/ with `edits` ({relative file: values}) deep-merged into its files."""
    conf_dir = target / "conf"
    shutil.copytree(ROOT / "conf", conf_dir)
    for name, values in edits.items():
        path = conf_dir / name
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        path.write_text(yaml.safe_dump(_merge(data, values)), encoding="utf-8")
    return conf_dir


# ---- schema ----


@functools.cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def _regex_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    # The schema's `${...}` patterns use \p{L} / \p{N}, which `re` cannot compile.
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def make_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls = jsonschema.validators.extend(base, validators={"pattern": _regex_pattern})
    return cls(schema)


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    if not error.context:
        yield error
        return
    for sub in error.context:
        yield from _leaves(sub)


def _is_interpolation_branch(error: ValidationError) -> bool:
    """Errors from the `${...}` string alternative every typed field also accepts."""
    pattern = error.schema.get("pattern", "") if isinstance(error.schema, dict) else ""
    return pattern.startswith("\\$\\{")


def describe(errors: list[ValidationError]) -> str:
    """The deepest useful message of each error, found by walking `error.context`."""
    lines: list[str] = []
    for error in errors:
        leaves = [leaf for leaf in _leaves(error) if not _is_interpolation_branch(leaf)]
        leaves = leaves or [error]
        depth = max(len(leaf.absolute_path) for leaf in leaves)
        for leaf in leaves:
            if len(leaf.absolute_path) == depth:
                path = ".".join(str(part) for part in leaf.absolute_path) or "<root>"
                lines.append(f"{path}: {leaf.message}")
    return "\n".join(dict.fromkeys(lines))


def schema_errors(validator: Any, bundle: dict[str, Any]) -> list[ValidationError]:
    return sorted(validator.iter_errors(bundle), key=lambda e: list(map(str, e.absolute_path)))


# ---- cross-reference checks ----
# Each returns a list of problems; an empty list means the bundle is consistent.


def depends_on_problems(bundle: dict[str, Any]) -> list[str]:
    problems = []
    for job_key, job in _jobs(bundle).items():
        keys = [task["task_key"] for task in job.get("tasks", [])]
        problems += [f"{job_key}: duplicate task_key {k}" for k in set(keys) if keys.count(k) > 1]
        tasks = _tasks(job)
        for key, task in tasks.items():
            for dep in task.get("depends_on", []):
                if dep["task_key"] not in tasks:
                    problems.append(f"{job_key}.{key} depends on unknown task {dep['task_key']}")
            if key in _upstream(tasks, key):
                problems.append(f"{job_key}.{key} is part of a dependency cycle")
    return problems


def compute_key_problems(bundle: dict[str, Any]) -> list[str]:
    problems = []
    for job_key, job in _jobs(bundle).items():
        environments = {env["environment_key"] for env in job.get("environments", [])}
        clusters = {cluster["job_cluster_key"] for cluster in job.get("job_clusters", [])}
        for key, task in _tasks(job).items():
            if "environment_key" in task and task["environment_key"] not in environments:
                problems.append(f"{job_key}.{key}: environment {task['environment_key']} undefined")
            if "job_cluster_key" in task and task["job_cluster_key"] not in clusters:
                problems.append(f"{job_key}.{key}: job cluster {task['job_cluster_key']} undefined")
            classic = {"job_cluster_key", "new_cluster", "existing_cluster_id"} & task.keys()
            if "python_wheel_task" in task and not classic and "environment_key" not in task:
                problems.append(f"{job_key}.{key}: serverless wheel task needs an environment_key")
            if task.get("libraries") and not classic:
                problems.append(
                    f"{job_key}.{key}: serverless tasks take libraries from environments"
                )
    return problems


def variable_problems(bundle: dict[str, Any]) -> list[str]:
    declared = bundle.get("variables") or {}
    used = {name for text in _strings(bundle) for name in VAR_REF.findall(text)}
    problems = [
        f"${{var.{name}}} is used but not declared" for name in sorted(used - declared.keys())
    ]
    for target, spec in (bundle.get("targets") or {}).items():
        for name in ((spec or {}).get("variables") or {}).keys() - declared.keys():
            problems.append(f"target {target} sets undeclared variable {name}")
        for name in sorted(used & declared.keys()):
            if _variable_value(bundle, target, name) is None:
                problems.append(f"target {target} has no value for variable {name}")
    return problems


def job_reference_problems(bundle: dict[str, Any]) -> list[str]:
    jobs = _jobs(bundle)
    return [
        f"${{resources.jobs.{name}.id}} names an undefined job"
        for text in _strings(bundle)
        for name in JOB_ID_REF.findall(text)
        if name not in jobs
    ]


def wheel_task_problems(bundle: dict[str, Any]) -> list[str]:
    project = _pyproject()["project"]
    scripts = project.get("scripts", {})
    problems = []
    for job_key, job in _jobs(bundle).items():
        for key, task in _tasks(job).items():
            wheel = task.get("python_wheel_task")
            if wheel is None:
                continue
            where = f"{job_key}.{key}"
            if wheel["package_name"] != project["name"]:
                problems.append(f"{where}: package_name {wheel['package_name']} is not the project")
            if wheel["entry_point"] not in scripts:
                problems.append(f"{where}: entry point {wheel['entry_point']} is not a script")
            params = wheel.get("parameters", [])
            if params[:2] != ["--env", "${bundle.target}"]:
                problems.append(f"{where}: parameters must start with --env ${{bundle.target}}")
            use_case = _use_case_arg(params)
            if use_case is None:
                problems.append(f"{where}: parameters need --use-case NAME")
            elif use_case not in known_use_cases():
                problems.append(f"{where}: --use-case {use_case} is not a use case")
    return problems


def use_case_problems(bundle: dict[str, Any]) -> list[str]:
    """Each job belongs to one use case: its key, its tasks and the jobs it starts agree."""
    jobs = _jobs(bundle)
    problems = []
    for job_key, job in jobs.items():
        owner = (job.get("tags") or {}).get("use_case")
        if owner is None:
            problems.append(f"{job_key} has no use_case tag")
            continue
        if not job_key.startswith(f"{owner}_"):
            problems.append(f"{job_key} is tagged with use case {owner}")
        for key, task in _tasks(job).items():
            wheel = task.get("python_wheel_task")
            named = _use_case_arg(wheel.get("parameters", [])) if wheel else owner
            if named != owner:
                problems.append(f"{job_key}.{key} runs use case {named}, not {owner}")
            for started in JOB_ID_REF.findall(json.dumps(task.get("run_job_task", {}))):
                other = (jobs.get(started, {}).get("tags") or {}).get("use_case")
                if started in jobs and other != owner:
                    problems.append(f"{job_key}.{key} starts {started} of another use case")
    return problems


def condition_problems(bundle: dict[str, Any]) -> list[str]:
    problems = []
    for job_key, job in _jobs(bundle).items():
        tasks = _tasks(job)
        for key, task in tasks.items():
            for dep in task.get("depends_on", []):
                upstream = tasks.get(dep["task_key"], {})
                if "outcome" in dep and "condition_task" not in upstream:
                    problems.append(f"{job_key}.{key}: outcome on a non-condition dependency")
                if "outcome" in dep and dep["outcome"] not in ("true", "false"):
                    problems.append(f"{job_key}.{key}: outcome must be 'true' or 'false'")
            condition = task.get("condition_task")
            if condition is None:
                continue
            refs = TASK_VALUE_REF.findall(f"{condition['left']} {condition['right']}")
            for ref_task, _ in refs:
                if ref_task not in tasks:
                    problems.append(f"{job_key}.{key} reads values of unknown task {ref_task}")
                elif ref_task not in _upstream(tasks, key):
                    problems.append(f"{job_key}.{key} reads {ref_task} but does not depend on it")
            gated = [
                other
                for other, spec in tasks.items()
                if any(
                    dep["task_key"] == key and dep.get("outcome") == "true"
                    for dep in spec.get("depends_on", [])
                )
            ]
            if not gated:
                problems.append(f"{job_key}.{key}: no task depends on it with outcome 'true'")
    return problems


def target_problems(bundle: dict[str, Any]) -> list[str]:
    targets = bundle.get("targets") or {}
    problems = [f"target {name} is missing" for name in sorted(EXPECTED_TARGETS - targets.keys())]
    defaults = [name for name, spec in targets.items() if (spec or {}).get("default") is True]
    if len(defaults) != 1:
        problems.append(f"exactly one target must be the default, found {defaults}")
    for name in targets:
        if name not in CLI_ENVS or not (ROOT / "conf" / f"{name}.yml").is_file():
            problems.append(f"target {name} is not an --env the CLI accepts (conf/{name}.yml)")
    return problems


CROSS_REFERENCE_CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "depends_on": depends_on_problems,
    "compute_keys": compute_key_problems,
    "variables": variable_problems,
    "job_references": job_reference_problems,
    "wheel_tasks": wheel_task_problems,
    "use_cases": use_case_problems,
    "conditions": condition_problems,
    "targets": target_problems,
}


# ---- fixtures ----


@pytest.fixture(scope="module")
def bundles() -> dict[str, dict[str, Any]]:
    """The merged bundle of each target (conf/<target>.yml decides which use cases it holds)."""
    return {target: load_bundle(ROOT, target) for target in sorted(EXPECTED_TARGETS)}


@pytest.fixture(params=sorted(EXPECTED_TARGETS))
def target(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def bundle(bundles: dict[str, dict[str, Any]], target: str) -> dict[str, Any]:
    return bundles[target]


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMA_PATH.is_file():
        pytest.skip(
            f"official bundle schema not found at {SCHEMA_PATH} "
            "(expected at ../shared/schemas/ relative to the project root)"
        )
    return make_validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _use_case_jobs(bundle: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """use case -> its job of `kind` ("features", "training" or "monitoring")."""
    return {
        job["tags"]["use_case"]: job
        for key, job in _jobs(bundle).items()
        if key == f"{job['tags']['use_case']}_{kind}"
    }


# ---- tests: the generator ----


def test_databricks_yml_generates_the_jobs_in_python_and_no_yaml_job_is_left() -> None:
    yaml_bundle = load_yaml_bundle(ROOT)
    assert yaml_bundle["python"] == {"venv_path": ".venv", "resources": [GENERATOR]}
    assert resource_functions(yaml_bundle) == [workflows.load_resources]
    # Hand-written jobs would drift from the declarations again.
    assert sorted((ROOT / "jobs").glob("*.yml")) == []
    assert _jobs(yaml_bundle) == {}
    for pattern in yaml_bundle.get("include", []):
        assert sorted(ROOT.glob(pattern)), f"include pattern {pattern!r} matches no file"


def test_every_enabled_use_case_has_exactly_its_three_jobs(
    bundle: dict[str, Any], target: str
) -> None:
    enabled = load_settings(target).enabled_use_cases
    assert enabled, f"no use case is enabled in conf/{target}.yml"
    expected = {f"{name}_{kind}" for name in enabled for kind in workflows.KINDS}
    assert set(_jobs(bundle)) == expected
    for kind in workflows.KINDS:
        assert set(_use_case_jobs(bundle, kind)) == set(enabled), kind


def test_generator_returns_the_same_jobs_every_time(target: str) -> None:
    yaml_bundle = load_yaml_bundle(ROOT)
    first, second = (workflows.load_resources(python_bundle(yaml_bundle, target)) for _ in range(2))
    # Same keys in the same order, same content: a redeploy changes nothing.
    assert [(k, j.as_dict()) for k, j in first.jobs.items()] == [
        (k, j.as_dict()) for k, j in second.jobs.items()
    ]
    assert first.jobs


def test_generator_names_no_use_case() -> None:
    source = Path(workflows.__file__).read_text(encoding="utf-8")
    named = sorted(name for name in known_use_cases() if name in source)
    assert named == [], "jobs/workflows.py must read use cases from settings, not name them"


@pytest.mark.parametrize(
    ("where", "disabled_in"),
    [("use_cases/{name}.yml", EXPECTED_TARGETS), ("prod.yml", {"prod"})],
    ids=["in its own file", "in one environment"],
)
def test_disabling_a_use_case_removes_its_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, disabled_in: set[str]
) -> None:
    before = {t: set(load_settings(t).enabled_use_cases) for t in EXPECTED_TARGETS}
    name = sorted(set.intersection(*before.values()))[0]
    edit = (
        {"enabled": False}
        if where.startswith("use_cases/")
        else {"use_cases": {name: {"enabled": False}}}
    )
    monkeypatch.setenv(
        CONF_DIR_ENV_VAR, str(write_conf_copy(tmp_path, {where.format(name=name): edit}))
    )
    yaml_bundle = load_yaml_bundle(ROOT)
    for target in sorted(EXPECTED_TARGETS):
        kept = before[target] - {name} if target in disabled_in else before[target]
        expected = {f"{uc}_{kind}" for uc in kept for kind in workflows.KINDS}
        assert set(generated_jobs(yaml_bundle, target)) == expected, target


def test_a_use_case_without_retrain_on_drift_only_scores_and_reports_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = load_settings("prod").enabled_use_cases[0]
    edit = {f"use_cases/{name}.yml": {"drift": {"retrain_on_drift": False}}}
    monkeypatch.setenv(CONF_DIR_ENV_VAR, str(write_conf_copy(tmp_path, edit)))
    bundle = load_bundle(ROOT, "prod")
    monitoring = _use_case_jobs(bundle, "monitoring")
    assert [task["task_key"] for task in monitoring[name]["tasks"]] == ["score", "drift"]
    for other, job in monitoring.items():
        if other != name:
            assert "retrain" in _tasks(job), other
    # Training stays, to run on demand; the bundle is still consistent.
    assert f"{name}_training" in _jobs(bundle)
    assert [check(bundle) for check in CROSS_REFERENCE_CHECKS.values()] == [[]] * len(
        CROSS_REFERENCE_CHECKS
    )


def test_a_generated_job_may_not_replace_a_yaml_job() -> None:
    yaml_bundle = load_yaml_bundle(ROOT)
    generated = generated_jobs(yaml_bundle, "dev")
    key = next(iter(generated))
    taken = _merge(yaml_bundle, {"resources": {"jobs": {key: {"name": "hand-written"}}}})
    with pytest.raises(ValueError, match=f"resources.jobs.{key} is defined more than once"):
        _add_resources(taken, "jobs", generated, GENERATOR)


def test_load_yaml_bundle_rejects_a_resource_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "databricks.yml").write_text("bundle: {name: x}\ninclude: [jobs/*.yml]\n")
    (tmp_path / "jobs").mkdir()
    for name in ("a.yml", "b.yml"):
        (tmp_path / "jobs" / name).write_text("resources: {jobs: {same: {name: s}}}\n")
    with pytest.raises(ValueError, match="defined more than once"):
        load_yaml_bundle(tmp_path)


def test_the_cli_build_module_loads_the_same_jobs_from_the_bundle_venv(tmp_path: Path) -> None:
    """Run the CLI's side of the protocol (`python -m databricks.bundles.build`) as `bundle
    validate` does: in `python.venv_path`, from the bundle root, on the configuration."""
    yaml_bundle = load_yaml_bundle(ROOT)
    python = ROOT / yaml_bundle["python"]["venv_path"] / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"no virtualenv at {python.parent.parent}: run `uv sync --extra local`")
    target = "dev"
    config = copy.deepcopy(yaml_bundle)
    config["bundle"]["target"] = target
    for name, spec in config["variables"].items():
        spec["value"] = _variable_value(yaml_bundle, target, name)
    files = {name: tmp_path / f"{name}.json" for name in ("input", "output", "diagnostics")}
    files["locations"] = tmp_path / "locations.json"
    files["input"].write_text(json.dumps(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != CONF_DIR_ENV_VAR}
    args = ["--phase", "load_resources"]
    for name, path in files.items():
        args += [f"--{name}", str(path)]
    run = subprocess.run(
        [str(python), "-m", "databricks.bundles.build", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    diagnostics = [json.loads(line) for line in files["diagnostics"].read_text().splitlines()]
    assert run.returncode == 0, (diagnostics, run.stderr[-2000:])
    assert [d for d in diagnostics if d["severity"] == "error"] == []
    output = json.loads(files["output"].read_text(encoding="utf-8"))
    assert output["resources"]["jobs"] == generated_jobs(yaml_bundle, target)
    locations = {
        entry["path"]: entry["file"]
        for entry in map(json.loads, files["locations"].read_text().splitlines())
    }
    for key, job in output["resources"]["jobs"].items():
        # Diagnostics point at the generator; the wheel path resolves from the bundle root.
        assert locations[f"resources.jobs.{key}"] == "jobs/workflows.py"
        for e, env_spec in enumerate(job["environments"]):
            for d, _ in enumerate(env_spec["spec"]["dependencies"]):
                where = f"resources.jobs.{key}.environments[{e}].spec.dependencies[{d}]"
                assert locations[where] == "databricks.yml", where


# ---- tests: shape ----


def test_merged_bundle_validates_against_official_schema(
    bundle: dict[str, Any], validator: Any
) -> None:
    errors = schema_errors(validator, bundle)
    assert not errors, "bundle does not match the official schema:\n" + describe(errors)


def test_every_job_parses_as_a_typed_databricks_job(bundle: dict[str, Any], target: str) -> None:
    for key, job in _jobs(bundle).items():
        # Raises on unknown fields, missing required fields and bad enum values.
        parsed = Job.from_dict(resolve(copy.deepcopy(job), bundle, target))
        assert parsed.tasks, f"job {key} has no tasks"
        assert target in str(parsed.name)


# ---- tests: cross references ----


def test_every_depends_on_names_a_task_in_the_same_job(bundle: dict[str, Any]) -> None:
    assert depends_on_problems(bundle) == []


def test_every_environment_and_job_cluster_key_is_defined_in_its_job(
    bundle: dict[str, Any],
) -> None:
    assert compute_key_problems(bundle) == []


def test_every_used_variable_is_declared_and_has_a_value_in_every_target(
    bundle: dict[str, Any],
) -> None:
    assert variable_problems(bundle) == []


def test_every_job_id_reference_names_a_defined_job(bundle: dict[str, Any]) -> None:
    assert job_reference_problems(bundle) == []


def test_wheel_tasks_run_console_scripts_of_this_project_with_the_target_env_and_a_use_case(
    bundle: dict[str, Any],
) -> None:
    assert wheel_task_problems(bundle) == []


def test_every_job_runs_and_starts_only_its_own_use_case(bundle: dict[str, Any]) -> None:
    assert use_case_problems(bundle) == []


def test_condition_reads_an_upstream_task_and_gates_a_task_on_true(
    bundle: dict[str, Any],
) -> None:
    assert condition_problems(bundle) == []


def test_targets_dev_staging_prod_exist_with_exactly_one_default(bundle: dict[str, Any]) -> None:
    assert target_problems(bundle) == []
    targets = bundle["targets"]
    assert targets["dev"]["default"] is True
    assert targets["dev"]["mode"] == "development"
    assert targets["prod"]["mode"] == "production"
    # Production mode refuses to deploy without an explicit root path (or run_as).
    assert targets["prod"]["workspace"]["root_path"]


# ---- tests: workflows ----


def _wheel_entry_points(job: dict[str, Any]) -> dict[str, str]:
    return {
        key: task["python_wheel_task"]["entry_point"]
        for key, task in _tasks(job).items()
        if "python_wheel_task" in task
    }


def _edges(job: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    return {
        (dep["task_key"], key, dep.get("outcome"))
        for key, task in _tasks(job).items()
        for dep in task.get("depends_on", [])
    }


def test_features_job_chains_ingest_features_materialize_and_retries_io(
    bundle: dict[str, Any],
) -> None:
    for name, job in _use_case_jobs(bundle, "features").items():
        assert _wheel_entry_points(job) == {
            "ingest": "fh-ingest",
            "features": "fh-features",
            "materialize": "fh-materialize",
        }, name
        assert _edges(job) == {("ingest", "features", None), ("features", "materialize", None)}
        retries = {key: task.get("max_retries", 0) for key, task in _tasks(job).items()}
        assert retries == {"ingest": 1, "features": 0, "materialize": 1}, name


def test_training_job_runs_fh_train_and_queues_triggered_runs(bundle: dict[str, Any]) -> None:
    for name, job in _use_case_jobs(bundle, "training").items():
        assert _wheel_entry_points(job) == {"train": "fh-train"}, name
        assert job["queue"] == {"enabled": True}
        assert job["max_concurrent_runs"] == 1


def test_monitoring_retrains_its_own_use_case_only_when_drift_task_reports_drift(
    bundle: dict[str, Any],
) -> None:
    for name, job in _use_case_jobs(bundle, "monitoring").items():
        tasks = _tasks(job)
        assert _wheel_entry_points(job) == {"score": "fh-score", "drift": "fh-drift"}
        [(gate_key, gate)] = [(k, t) for k, t in tasks.items() if "condition_task" in t]
        condition = gate["condition_task"]
        assert TASK_VALUE_REF.findall(condition["left"]) == [("drift", "drift_detected")]
        assert (condition["op"], condition["right"]) == ("EQUAL_TO", "true")
        [retrain] = [t for t in tasks.values() if "run_job_task" in t]
        assert retrain["run_job_task"]["job_id"] == f"${{resources.jobs.{name}_training.id}}"
        assert retrain["depends_on"] == [{"task_key": gate_key, "outcome": "true"}]
        assert ("score", "drift", None) in _edges(job)
        assert ("drift", gate_key, None) in _edges(job)


def test_job_names_tags_and_descriptions_come_from_the_use_case(bundle: dict[str, Any]) -> None:
    use_cases = load_use_cases(load_settings("prod"))
    for key, job in _jobs(bundle).items():
        name = job["tags"]["use_case"]
        kind = key.removeprefix(f"{name}_")
        assert job["name"] == f"featurehouse-{name}-{kind}-${{bundle.target}}"
        assert job["tags"] == {
            "project": "featurehouse",
            "workflow": {"features": "feature_pipeline"}.get(kind, kind),
            "use_case": name,
        }
        assert use_cases[name].description in job["description"]


def _cron_fields(job: dict[str, Any]) -> list[str]:
    return job["schedule"]["quartz_cron_expression"].split()


def test_features_hourly_monitoring_daily_training_on_demand(bundle: dict[str, Any]) -> None:
    for job in _use_case_jobs(bundle, "features").values():
        seconds, minutes, hours, *_ = _cron_fields(job)
        assert (seconds, hours) == ("0", "*") and minutes.isdigit()
    for job in _use_case_jobs(bundle, "monitoring").values():
        seconds, minutes, hours, day, month, weekday = _cron_fields(job)[:6]
        assert seconds == "0" and minutes.isdigit() and hours.isdigit()
        assert (day, month, weekday) in {("*", "*", "?"), ("?", "*", "*")}
    for job in _use_case_jobs(bundle, "training").values():
        assert "schedule" not in job


@pytest.mark.parametrize(
    ("target", "expected"), [("dev", "PAUSED"), ("staging", "PAUSED"), ("prod", "UNPAUSED")]
)
def test_schedules_run_only_in_prod(bundle: dict[str, Any], target: str, expected: str) -> None:
    spec = bundle["targets"][target]
    preset = (spec.get("presets") or {}).get("trigger_pause_status")
    if preset is None:
        # Development mode pauses schedules; the Jobs API default is UNPAUSED.
        preset = "PAUSED" if spec.get("mode") == "development" else "UNPAUSED"
    scheduled = [key for key, job in _jobs(bundle).items() if "schedule" in job]
    assert scheduled
    for key in scheduled:
        # The CLI applies the target's preset only where pause_status is unset.
        effective = _jobs(bundle)[key]["schedule"].get("pause_status", preset)
        assert effective == expected, f"{key} schedule is {effective} in {target}"


def test_wheel_comes_from_the_bundle_artifact_and_no_task_installs_spark(
    bundle: dict[str, Any],
) -> None:
    artifact = bundle["artifacts"]["default"]
    assert (artifact["type"], artifact["build"]) == ("whl", "uv build --wheel")
    dist = (ROOT / artifact["path"] / "dist").resolve()
    for key, job in _jobs(bundle).items():
        environments = job.get("environments", [])
        assert environments, f"{key} defines no serverless environment"
        for env in environments:
            deps = env["spec"]["dependencies"]
            wheels = [d for d in deps if d.endswith(".whl")]
            assert wheels, f"{key}.{env['environment_key']} does not install the wheel"
            for wheel in wheels:
                assert (path_base(ROOT, key) / wheel).parent.resolve() == dist, wheel
        for text in _strings(job):
            assert not any(pkg in text.lower() for pkg in SPARK_PACKAGES), f"{key}: {text}"


def test_catalog_variable_matches_conf_and_ingest_reads_raw_folders_from_conf(
    bundle: dict[str, Any], target: str
) -> None:
    settings = load_settings(target)
    assert _variable_value(bundle, target, "catalog") == settings.catalog
    for name, job in _use_case_jobs(bundle, "features").items():
        params = _tasks(job)["ingest"]["python_wheel_task"]["parameters"]
        # The raw folder is the use case's own, from conf/, inside the target's catalog.
        assert "--input" not in params
        assert str(settings.raw_dir(name)).startswith(f"/Volumes/{settings.catalog}/"), name


# ---- tests: the checks catch mistakes ----


def _job(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    """The first use case's job of `kind`, to break."""
    return _jobs(bundle)[sorted(key for key in _jobs(bundle) if key.endswith(f"_{kind}"))[0]]


def _first_task(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return _job(bundle, kind)["tasks"][0]


def _other_training(bundle: dict[str, Any]) -> str:
    return sorted(key for key in _jobs(bundle) if key.endswith("_training"))[1]


SCHEMA_BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown task field": (
        lambda b: _first_task(b, "training").update(retries=3),
        "'retries' was unexpected",
    ),
    "bad type": (
        lambda b: _first_task(b, "features").update(max_retries="three"),
        "'three' is not of type 'integer'",
    ),
    "bad enum": (
        lambda b: _job(b, "monitoring")["tasks"][2]["condition_task"].update(op="EQUALS"),
        "'EQUALS' is not one of",
    ),
    "missing required field": (
        lambda b: _first_task(b, "training")["python_wheel_task"].pop("package_name"),
        "'package_name' is a required property",
    ),
    "python resources not a list": (
        lambda b: b["python"].update(resources=GENERATOR),
        "is not of type 'array'",
    ),
}


@pytest.mark.parametrize("breakage", sorted(SCHEMA_BREAKAGES))
def test_schema_validation_rejects_a_broken_bundle(
    bundles: dict[str, dict[str, Any]], validator: Any, breakage: str
) -> None:
    broken = copy.deepcopy(bundles["prod"])
    mutate, expected = SCHEMA_BREAKAGES[breakage]
    mutate(broken)
    errors = schema_errors(validator, broken)
    assert errors, f"schema accepted a bundle with a {breakage}"
    assert expected in describe(errors)


def test_typed_job_rejects_an_unknown_task_field(bundles: dict[str, dict[str, Any]]) -> None:
    broken = copy.deepcopy(_job(bundles["prod"], "training"))
    broken["tasks"][0]["retries"] = 3
    with pytest.raises(ValueError, match="retries"):
        Job.from_dict(broken)


def _unset_catalog_in_staging(b: dict[str, Any]) -> None:
    b["variables"]["catalog"].pop("default")
    b["targets"]["staging"]["variables"].pop("catalog")
    # The generated jobs no longer use ${var.catalog}; a task that does needs a value.
    _first_task(b, "training")["python_wheel_task"]["parameters"] += ["--x", "${var.catalog}"]


def _set_dep(b: dict[str, Any], kind: str, task: int, deps: list[dict[str, str]]) -> None:
    _job(b, kind)["tasks"][task]["depends_on"] = deps


def _params(b: dict[str, Any], kind: str) -> list[str]:
    return _first_task(b, kind)["python_wheel_task"]["parameters"]


CROSS_REFERENCE_BREAKAGES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "unknown depends_on": (
        "depends_on",
        lambda b: _set_dep(b, "features", 1, [{"task_key": "ingestion"}]),
        "unknown task ingestion",
    ),
    "dependency cycle": (
        "depends_on",
        lambda b: _set_dep(b, "features", 0, [{"task_key": "materialize"}]),
        "cycle",
    ),
    "undefined environment": (
        "compute_keys",
        lambda b: _first_task(b, "training").update(environment_key="gpu"),
        "environment gpu undefined",
    ),
    "undefined job cluster": (
        "compute_keys",
        lambda b: _first_task(b, "training").update(job_cluster_key="big"),
        "job cluster big undefined",
    ),
    "undeclared variable": (
        "variables",
        lambda b: _params(b, "training").append("${var.schema}"),
        "${var.schema} is used but not declared",
    ),
    "variable without value": (
        "variables",
        _unset_catalog_in_staging,
        "target staging has no value for variable catalog",
    ),
    "unknown job id": (
        "job_references",
        lambda b: _job(b, "monitoring")["tasks"][3]["run_job_task"].update(
            job_id="${resources.jobs.training.id}"
        ),
        "names an undefined job",
    ),
    "unknown entry point": (
        "wheel_tasks",
        lambda b: _first_task(b, "training")["python_wheel_task"].update(entry_point="train"),
        "entry point train is not a script",
    ),
    "wrong package": (
        "wheel_tasks",
        lambda b: _first_task(b, "training")["python_wheel_task"].update(package_name="fh"),
        "package_name fh",
    ),
    "no --use-case": (
        "wheel_tasks",
        lambda b: _params(b, "training").__delitem__(slice(2, None)),
        "parameters need --use-case NAME",
    ),
    "unknown use case": (
        "wheel_tasks",
        lambda b: _params(b, "training").__setitem__(3, "churn"),
        "--use-case churn is not a use case",
    ),
    "task of another use case": (
        "use_cases",
        lambda b: _params(b, "features").__setitem__(3, _other_training(b).rsplit("_", 1)[0]),
        "runs use case",
    ),
    "retrain starts another use case's training": (
        "use_cases",
        lambda b: _job(b, "monitoring")["tasks"][3]["run_job_task"].update(
            job_id=f"${{resources.jobs.{_other_training(b)}.id}}"
        ),
        "of another use case",
    ),
    "ungated condition": (
        "conditions",
        lambda b: _set_dep(b, "monitoring", 3, [{"task_key": "drift_detected"}]),
        "no task depends on it with outcome 'true'",
    ),
    "condition on a task that is not upstream": (
        "conditions",
        lambda b: _set_dep(b, "monitoring", 2, [{"task_key": "score"}]),
        "reads drift but does not depend on it",
    ),
    "two default targets": (
        "targets",
        lambda b: b["targets"]["prod"].update(default=True),
        "exactly one target must be the default",
    ),
}


@pytest.mark.parametrize("breakage", sorted(CROSS_REFERENCE_BREAKAGES))
def test_cross_reference_checks_catch_a_broken_bundle(
    bundles: dict[str, dict[str, Any]], breakage: str
) -> None:
    check, mutate, expected = CROSS_REFERENCE_BREAKAGES[breakage]
    bundle = bundles["prod"]
    assert CROSS_REFERENCE_CHECKS[check](bundle) == [], "the intact bundle must pass"
    broken = copy.deepcopy(bundle)
    mutate(broken)
    problems = CROSS_REFERENCE_CHECKS[check](broken)
    assert any(expected in problem for problem in problems), problems
