"""Offline checks of the Databricks Asset Bundle (databricks.yml + jobs/*.yml).

`databricks bundle validate` needs a workspace login, so these tests do what can
be done without one: validate the merged configuration against the official
bundle JSON schema, parse every job with the typed `databricks-bundles` classes,
and check the cross-references the CLI would only reject at deploy time.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regex
import yaml
from databricks.bundles.jobs import Job
from jsonschema.exceptions import ValidationError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT.parent / "shared" / "schemas" / "databricks-bundle.schema.json"
EXPECTED_TARGETS = {"dev", "staging", "prod"}
# Values `--env` accepts (conf/<env>.yml); every target is passed as `--env ${bundle.target}`.
CLI_ENVS = {"local", "dev", "staging", "prod"}
SPARK_PACKAGES = ("pyspark", "delta-spark", "delta_spark")

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


def load_bundle(root: Path) -> dict[str, Any]:
    """databricks.yml with every included file merged in, the way the CLI loads a bundle.

    Resources are merged per key; defining the same resource in two files, or
    `include` outside the root file, is an error as it is for the CLI.
    """
    bundle = _read_yaml(root / "databricks.yml")
    for path in included_files(root):
        part = _read_yaml(path)
        if "include" in part:
            raise ValueError(f"{path}: `include` is only allowed in databricks.yml")
        for kind, resources in (part.get("resources") or {}).items():
            existing = (bundle.get("resources") or {}).get(kind) or {}
            for key in resources or {}:
                if key in existing:
                    raise ValueError(f"{path}: resources.{kind}.{key} is defined more than once")
        bundle = _merge(bundle, part)
    return bundle


def job_sources(root: Path) -> dict[str, Path]:
    """The file each job is defined in (relative paths in it resolve from its folder)."""
    sources = {}
    for path in [root / "databricks.yml", *included_files(root)]:
        for key in (_read_yaml(path).get("resources") or {}).get("jobs") or {}:
            sources[key] = path
    return sources


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


def _variable_value(bundle: dict[str, Any], target: str, name: str) -> Any:
    override = ((bundle["targets"][target] or {}).get("variables") or {}).get(name)
    if isinstance(override, dict):
        override = override.get("default")
    if override is not None:
        return override
    return bundle["variables"][name].get("default")


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


def _conf(env: str) -> dict[str, Any]:
    return _merge(_read_yaml(ROOT / "conf" / "base.yml"), _read_yaml(ROOT / "conf" / f"{env}.yml"))


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
    "conditions": condition_problems,
    "targets": target_problems,
}


# ---- fixtures ----


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return load_bundle(ROOT)


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMA_PATH.is_file():
        pytest.skip(
            f"official bundle schema not found at {SCHEMA_PATH} "
            "(expected at ../shared/schemas/ relative to the project root)"
        )
    return make_validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


# ---- tests: shape ----


def test_include_globs_each_select_at_least_one_file() -> None:
    patterns = _read_yaml(ROOT / "databricks.yml")["include"]
    assert patterns == ["jobs/*.yml"]
    for pattern in patterns:
        assert sorted(ROOT.glob(pattern)), f"include pattern {pattern!r} matches no file"


def test_load_bundle_merges_every_included_job() -> None:
    jobs = _jobs(load_bundle(ROOT))
    assert set(jobs) == {"feature_pipeline", "training", "monitoring"}
    assert all(path.parent == ROOT / "jobs" for path in job_sources(ROOT).values())


def test_load_bundle_rejects_a_resource_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "databricks.yml").write_text("bundle: {name: x}\ninclude: [jobs/*.yml]\n")
    (tmp_path / "jobs").mkdir()
    for name in ("a.yml", "b.yml"):
        (tmp_path / "jobs" / name).write_text("resources: {jobs: {same: {name: s}}}\n")
    with pytest.raises(ValueError, match="defined more than once"):
        load_bundle(tmp_path)


def test_merged_bundle_validates_against_official_schema(
    bundle: dict[str, Any], validator: Any
) -> None:
    errors = schema_errors(validator, bundle)
    assert not errors, "bundle does not match the official schema:\n" + describe(errors)


@pytest.mark.parametrize("target", sorted(EXPECTED_TARGETS))
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


def test_wheel_tasks_run_console_scripts_of_this_project_with_the_target_env(
    bundle: dict[str, Any],
) -> None:
    assert wheel_task_problems(bundle) == []


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


def test_feature_pipeline_chains_ingest_features_materialize(bundle: dict[str, Any]) -> None:
    job = _jobs(bundle)["feature_pipeline"]
    assert _wheel_entry_points(job) == {
        "ingest": "fh-ingest",
        "features": "fh-features",
        "materialize": "fh-materialize",
    }
    assert _edges(job) == {("ingest", "features", None), ("features", "materialize", None)}


def test_training_job_runs_fh_train(bundle: dict[str, Any]) -> None:
    assert _wheel_entry_points(_jobs(bundle)["training"]) == {"train": "fh-train"}


def test_monitoring_retrains_only_when_drift_task_reports_drift(bundle: dict[str, Any]) -> None:
    job = _jobs(bundle)["monitoring"]
    tasks = _tasks(job)
    assert _wheel_entry_points(job) == {"score": "fh-score", "drift": "fh-drift"}
    [(gate_key, gate)] = [(k, t) for k, t in tasks.items() if "condition_task" in t]
    condition = gate["condition_task"]
    assert TASK_VALUE_REF.findall(condition["left"]) == [("drift", "drift_detected")]
    assert (condition["op"], condition["right"]) == ("EQUAL_TO", "true")
    [retrain] = [t for t in tasks.values() if "run_job_task" in t]
    assert retrain["run_job_task"]["job_id"] == "${resources.jobs.training.id}"
    assert retrain["depends_on"] == [{"task_key": gate_key, "outcome": "true"}]
    assert ("score", "drift", None) in _edges(job)
    assert ("drift", gate_key, None) in _edges(job)


def _cron_fields(job: dict[str, Any]) -> list[str]:
    return job["schedule"]["quartz_cron_expression"].split()


def test_feature_pipeline_is_hourly_and_monitoring_daily(bundle: dict[str, Any]) -> None:
    jobs = _jobs(bundle)
    seconds, minutes, hours, *_ = _cron_fields(jobs["feature_pipeline"])
    assert (seconds, hours) == ("0", "*") and minutes.isdigit()
    seconds, minutes, hours, day, month, weekday = _cron_fields(jobs["monitoring"])[:6]
    assert seconds == "0" and minutes.isdigit() and hours.isdigit()
    assert (day, month, weekday) in {("*", "*", "?"), ("?", "*", "*")}
    assert "schedule" not in jobs["training"]


@pytest.mark.parametrize(
    ("target", "expected"), [("dev", "PAUSED"), ("staging", "PAUSED"), ("prod", "UNPAUSED")]
)
def test_schedules_run_only_in_prod(bundle: dict[str, Any], target: str, expected: str) -> None:
    spec = bundle["targets"][target]
    preset = (spec.get("presets") or {}).get("trigger_pause_status")
    if preset is None:
        # Development mode pauses schedules; the Jobs API default is UNPAUSED.
        preset = "PAUSED" if spec.get("mode") == "development" else "UNPAUSED"
    for key, job in _jobs(bundle).items():
        if "schedule" in job:
            # The CLI applies the target's preset only where pause_status is unset.
            effective = job["schedule"].get("pause_status", preset)
            assert effective == expected, f"{key} schedule is {effective} in {target}"


def test_wheel_comes_from_the_bundle_artifact_and_no_task_installs_spark(
    bundle: dict[str, Any],
) -> None:
    artifact = bundle["artifacts"]["default"]
    assert (artifact["type"], artifact["build"]) == ("whl", "uv build --wheel")
    dist = (ROOT / artifact["path"] / "dist").resolve()
    sources = job_sources(ROOT)
    for key, job in _jobs(bundle).items():
        environments = job.get("environments", [])
        assert environments, f"{key} defines no serverless environment"
        for env in environments:
            deps = env["spec"]["dependencies"]
            wheels = [d for d in deps if d.endswith(".whl")]
            assert wheels, f"{key}.{env['environment_key']} does not install the wheel"
            for wheel in wheels:
                # Paths in an included file are relative to that file.
                assert (sources[key].parent / wheel).parent.resolve() == dist, wheel
        for text in _strings(job):
            assert not any(pkg in text.lower() for pkg in SPARK_PACKAGES), f"{key}: {text}"


def test_catalog_variable_and_ingest_input_match_each_target_conf(bundle: dict[str, Any]) -> None:
    ingest = _tasks(_jobs(bundle)["feature_pipeline"])["ingest"]["python_wheel_task"]
    for target in EXPECTED_TARGETS:
        conf = _conf(target)
        assert _variable_value(bundle, target, "catalog") == conf["catalog"], target
        params = resolve(ingest["parameters"], bundle, target)
        assert params[params.index("--input") + 1] == conf["storage"]["raw_dir"], target


# ---- tests: the checks catch mistakes ----


def _first_task(bundle: dict[str, Any], job: str) -> dict[str, Any]:
    return bundle["resources"]["jobs"][job]["tasks"][0]


SCHEMA_BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown task field": (
        lambda b: _first_task(b, "training").update(retries=3),
        "'retries' was unexpected",
    ),
    "bad type": (
        lambda b: _first_task(b, "feature_pipeline").update(max_retries="three"),
        "'three' is not of type 'integer'",
    ),
    "bad enum": (
        lambda b: b["resources"]["jobs"]["monitoring"]["tasks"][2]["condition_task"].update(
            op="EQUALS"
        ),
        "'EQUALS' is not one of",
    ),
    "missing required field": (
        lambda b: _first_task(b, "training")["python_wheel_task"].pop("package_name"),
        "'package_name' is a required property",
    ),
}


@pytest.mark.parametrize("breakage", sorted(SCHEMA_BREAKAGES))
def test_schema_validation_rejects_a_broken_bundle(
    bundle: dict[str, Any], validator: Any, breakage: str
) -> None:
    broken = copy.deepcopy(bundle)
    mutate, expected = SCHEMA_BREAKAGES[breakage]
    mutate(broken)
    errors = schema_errors(validator, broken)
    assert errors, f"schema accepted a bundle with a {breakage}"
    assert expected in describe(errors)


def test_typed_job_rejects_an_unknown_task_field(bundle: dict[str, Any]) -> None:
    broken = copy.deepcopy(_jobs(bundle)["training"])
    broken["tasks"][0]["retries"] = 3
    with pytest.raises(ValueError, match="retries"):
        Job.from_dict(broken)


def _unset_catalog_in_staging(b: dict[str, Any]) -> None:
    b["variables"]["catalog"].pop("default")
    b["targets"]["staging"]["variables"].pop("catalog")


def _set_dep(b: dict[str, Any], job: str, task: int, deps: list[dict[str, str]]) -> None:
    b["resources"]["jobs"][job]["tasks"][task]["depends_on"] = deps


CROSS_REFERENCE_BREAKAGES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "unknown depends_on": (
        "depends_on",
        lambda b: _set_dep(b, "feature_pipeline", 1, [{"task_key": "ingestion"}]),
        "unknown task ingestion",
    ),
    "dependency cycle": (
        "depends_on",
        lambda b: _set_dep(b, "feature_pipeline", 0, [{"task_key": "materialize"}]),
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
        lambda b: _first_task(b, "training")["python_wheel_task"]["parameters"].append(
            "${var.schema}"
        ),
        "${var.schema} is used but not declared",
    ),
    "variable without value": (
        "variables",
        _unset_catalog_in_staging,
        "target staging has no value for variable catalog",
    ),
    "unknown job id": (
        "job_references",
        lambda b: b["resources"]["jobs"]["monitoring"]["tasks"][3]["run_job_task"].update(
            job_id="${resources.jobs.train.id}"
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
    bundle: dict[str, Any], breakage: str
) -> None:
    check, mutate, expected = CROSS_REFERENCE_BREAKAGES[breakage]
    broken = copy.deepcopy(bundle)
    mutate(broken)
    problems = CROSS_REFERENCE_CHECKS[check](broken)
    assert any(expected in problem for problem in problems), problems
