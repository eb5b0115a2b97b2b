"""Offline checks of the Databricks Asset Bundle, shared by the bundle tests.

`databricks bundle validate` needs a workspace login, so these do what can be done without
one: call the Python generators the way the CLI does (for each target, with the target's
variables), merge what they return into databricks.yml, validate the result against the
official bundle JSON schema, and check what the CLI would only reject at deploy time (or
what the workspace would only reject at run time): references between tasks, jobs and
resources, variables without a value in a target, wheel entry points, use cases, job
parameters, cron expressions.

Every check returns a list of problems, each naming the file and the key to fix; an empty
list means the bundle is consistent.
"""

from __future__ import annotations

import functools
import importlib
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import jsonschema
import regex
import yaml
from databricks.bundles.core import Bundle, Resources, Severity
from jsonschema.exceptions import ValidationError

from featurehouse.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_FILE = "databricks.yml"
SCHEMA_PATH = ROOT.parent / "shared" / "schemas" / "databricks-bundle.schema.json"
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
EXPECTED_TARGETS = ("dev", "staging", "prod")
# Values `--env` accepts (conf/<env>.yml); every target is passed as `--env ${bundle.target}`.
CLI_ENVS = {"local", "dev", "staging", "prod"}
GENERATORS = ("jobs.workflows:load_resources", "jobs.resources:load_resources")
# The resource kinds the generators add, by the `Resources` property that holds them.
RESOURCE_KINDS = ("jobs", "schemas", "volumes", "registered_models", "experiments")

VAR_REF = re.compile(r"\$\{var\.([A-Za-z][\w-]*)\}")
RESOURCE_REF = re.compile(r"\$\{resources\.([a-z_]+)\.([A-Za-z][\w-]*)\.([\w.]+)\}")
TASK_VALUE_REF = re.compile(r"\{\{\s*tasks\.([\w-]+)\.values\.([\w-]+)\s*\}\}")
JOB_PARAM_REF = re.compile(r"\{\{\s*job\.parameters\.([\w-]+)\s*\}\}")
BUNDLE_VAR_ENV = "BUNDLE_VAR_"


# ---- loading ----


def read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    return data


def included_files(root: Path) -> list[Path]:
    """The files `include` globs select, relative to the bundle root, in CLI order."""
    patterns = read_yaml(root / BUNDLE_FILE).get("include", [])
    files: list[Path] = []
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path.name != BUNDLE_FILE and path not in files:
                files.append(path)
    return files


def merge(base: Any, other: Any) -> Any:
    """Merge like the CLI: mappings recursively, sequences appended, scalars overridden."""
    if isinstance(base, dict) and isinstance(other, dict):
        merged = dict(base)
        for key, value in other.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(other, list):
        return base + other
    return other


def add_resources(bundle: dict[str, Any], kind: str, resources: dict, origin: str) -> dict:
    """`bundle` with more resources of one kind; a key defined twice is an error, as for the CLI."""
    existing = (bundle.get("resources") or {}).get(kind) or {}
    for key in resources:
        if key in existing:
            raise ValueError(f"{origin}: resources.{kind}.{key} is defined more than once")
    return merge(bundle, {"resources": {kind: resources}})


def load_yaml_bundle(root: Path) -> dict[str, Any]:
    """databricks.yml with every included file merged in, the way the CLI loads YAML.

    `include` outside the root file is an error, as it is for the CLI.
    """
    bundle = read_yaml(root / BUNDLE_FILE)
    for path in included_files(root):
        part = read_yaml(path)
        if "include" in part:
            raise ValueError(f"{path}: `include` is only allowed in {BUNDLE_FILE}")
        for kind, resources in (part.get("resources") or {}).items():
            bundle = add_resources(bundle, kind, resources or {}, str(path))
        bundle = merge(bundle, {k: v for k, v in part.items() if k != "resources"})
    return bundle


def yaml_resource_sources(root: Path) -> dict[tuple[str, str], Path]:
    """The YAML file each YAML resource is defined in (its relative paths resolve from there)."""
    sources = {}
    for path in [root / BUNDLE_FILE, *included_files(root)]:
        for kind, resources in (read_yaml(path).get("resources") or {}).items():
            for key in resources or {}:
                sources[(kind, key)] = path
    return sources


# ---- variables: databricks.yml and what CI supplies ----


def _workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])


def workflow_triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # PyYAML reads the key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True)) or {}
    if isinstance(triggers, str):
        return {triggers: None}
    if isinstance(triggers, list):
        return dict.fromkeys(triggers)
    return triggers


def bundle_commands(job: dict[str, Any]) -> list[tuple[str, str]]:
    """(command, target) of every `databricks bundle <command> -t <target>` a workflow job runs;
    a matrix target stands for each of its values."""
    matrix = ((job.get("strategy") or {}).get("matrix") or {}).get("target") or []
    found = []
    for step in job.get("steps") or []:
        for command, target in re.findall(
            r"databricks bundle (\w+)\b[^\n]*?(?:-t|--target)[ =](\$\{\{[^}]*\}\}|\S+)",
            step.get("run") or "",
        ):
            if "matrix.target" in target:
                found += [(command, t) for t in matrix]
            else:
                found.append((command, target))
    return found


def workflow_variables() -> dict[str, dict[str, str]]:
    """target -> {bundle variable: the workflow file that sets it} for the variables CI supplies
    (`BUNDLE_VAR_<name>` in the environment of a job that runs `databricks bundle ... -t`)."""
    supplied: dict[str, dict[str, str]] = {}
    for path in _workflow_files():
        workflow = read_yaml(path)
        for job in (workflow.get("jobs") or {}).values():
            env = dict(workflow.get("env") or {}) | dict(job.get("env") or {})
            for step in job.get("steps") or []:
                env |= dict(step.get("env") or {})
            names = [k.removeprefix(BUNDLE_VAR_ENV) for k in env if k.startswith(BUNDLE_VAR_ENV)]
            for _, target in bundle_commands(job):
                for name in names:
                    supplied.setdefault(target, {})[name] = str(path.relative_to(ROOT))
    return supplied


def variable_value(bundle: dict[str, Any], target: str, name: str) -> Any:
    """The value databricks.yml gives a variable in `target` (target override, else default)."""
    override = (((bundle.get("targets") or {}).get(target) or {}).get("variables") or {}).get(name)
    if isinstance(override, dict):
        override = override.get("default")
    if override is not None:
        return override
    return ((bundle.get("variables") or {}).get(name) or {}).get("default")


def python_bundle(bundle: dict[str, Any], target: str) -> Bundle:
    """What the CLI hands the Python functions: the target and its variables' values."""
    names = bundle.get("variables") or {}
    return Bundle(target=target, variables={n: variable_value(bundle, target, n) for n in names})


# ---- the generated resources ----


def resource_functions(bundle: dict[str, Any]) -> list[Callable[[Bundle], Resources]]:
    """The `module:function`s databricks.yml lists under `python.resources`."""
    functions = []
    for qualified in (bundle.get("python") or {}).get("resources", []):
        module, _, name = qualified.partition(":")
        functions.append(getattr(importlib.import_module(module), name))
    return functions


# (target, kind, key) -> the file that defines the resource, for messages.
ORIGINS: dict[tuple[str, str, str], str] = {}


def _module_file(function: Callable) -> str:
    return str(Path(importlib.import_module(function.__module__).__file__).relative_to(ROOT))


def generated_resources(bundle: dict[str, Any], target: str) -> dict[str, dict[str, dict]]:
    """kind -> key -> resource, as the plain dicts the CLI receives from the Python functions."""
    found: dict[str, dict[str, dict]] = {kind: {} for kind in RESOURCE_KINDS}
    for function in resource_functions(bundle):
        resources = function(python_bundle(bundle, target))
        errors = [d for d in resources.diagnostics.items if d.severity == Severity.ERROR]
        if errors:
            raise ValueError(
                f"{function.__module__}.{function.__name__} failed for {target}: {errors}"
            )
        for kind in RESOURCE_KINDS:
            for key, resource in getattr(resources, kind).items():
                if key in found[kind]:
                    raise ValueError(f"{function.__module__}: {kind} {key} is generated twice")
                found[kind][key] = resource.as_dict()
                ORIGINS[(target, kind, key)] = _module_file(function)
    return found


def generated_jobs(bundle: dict[str, Any], target: str) -> dict[str, dict[str, Any]]:
    return generated_resources(bundle, target)["jobs"]


def load_bundle(root: Path, target: str) -> dict[str, Any]:
    """The configuration the CLI deploys for `target`: YAML plus the Python-generated resources."""
    bundle = load_yaml_bundle(root)
    for (kind, key), path in yaml_resource_sources(root).items():
        ORIGINS[(target, kind, key)] = str(path.relative_to(root))
    for kind, resources in generated_resources(bundle, target).items():
        if resources:
            bundle = add_resources(bundle, kind, resources, "python.resources")
    return bundle


def origin(target: str, kind: str, key: str) -> str:
    return ORIGINS.get((target, kind, key), BUNDLE_FILE)


def target_config(bundle: dict[str, Any], target: str) -> dict[str, Any]:
    """The configuration of one target: the top level with that target's overrides merged in
    and the other targets left out (variables stay declarations; their values are separate)."""
    config = {key: value for key, value in bundle.items() if key != "targets"}
    overrides = (bundle.get("targets") or {}).get(target) or {}
    return merge(config, {k: v for k, v in overrides.items() if k not in ("variables", "default")})


# ---- walking ----


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, string) of every string in `node`."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")


def resources_of(bundle: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return (bundle.get("resources") or {}).get(kind) or {}


def jobs_of(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(bundle, "jobs")


def tasks_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["task_key"]: task for task in job.get("tasks", [])}


def upstream(tasks: dict[str, dict[str, Any]], key: str) -> set[str]:
    seen: set[str] = set()
    stack = [dep["task_key"] for dep in tasks[key].get("depends_on", [])]
    while stack:
        current = stack.pop()
        if current in seen or current not in tasks:
            continue
        seen.add(current)
        stack.extend(dep["task_key"] for dep in tasks[current].get("depends_on", []))
    return seen


def job_parameters(job: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p.get("default") for p in job.get("parameters", [])}


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

    def value(match: re.Match) -> str:
        found = variable_value(bundle, target, match.group(1))
        return match.group(0) if found is None else str(found)

    return VAR_REF.sub(value, node)


def resolve_resource_names(node: Any, bundle: dict[str, Any]) -> Any:
    """Substitute `${resources.<kind>.<key>.name}` with that resource's name."""
    if isinstance(node, dict):
        return {key: resolve_resource_names(value, bundle) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_resource_names(value, bundle) for value in node]
    if not isinstance(node, str):
        return node

    def name(match: re.Match) -> str:
        kind, key, field = match.groups()
        resource = resources_of(bundle, kind).get(key)
        return str(resource[field]) if resource and field in resource else match.group(0)

    return RESOURCE_REF.sub(name, node)


@functools.cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@functools.cache
def known_use_cases() -> frozenset[str]:
    """Every use case `--use-case` accepts in some environment, enabled or not."""
    return frozenset(name for env in CLI_ENVS for name in load_settings(env).use_cases)


def use_case_arg(params: list[str]) -> str | None:
    if "--use-case" not in params or params.index("--use-case") + 1 >= len(params):
        return None
    return params[params.index("--use-case") + 1]


def resolve_job_parameters(text: str, job: dict[str, Any]) -> str:
    """`text` with `{{job.parameters.<name>}}` replaced by the parameter's default."""
    defaults = job_parameters(job)
    return JOB_PARAM_REF.sub(lambda m: str(defaults.get(m.group(1), m.group(0))), text)


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


# ---- Quartz cron ----

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# field: (name, low, high, names that stand for low, low + 1, ...)
_CRON_FIELDS = [
    ("seconds", 0, 59, []),
    ("minutes", 0, 59, []),
    ("hours", 0, 23, []),
    ("day-of-month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _DAYS),
    ("year", 1970, 2099, []),
]


def _cron_value(text: str, low: int, high: int, names: list[str]) -> int:
    if text.upper() in names:
        return low + names.index(text.upper())
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}-{high}")
    return value


def _cron_item(item: str, field: int) -> None:
    name, low, high, names = _CRON_FIELDS[field]
    if item == "*":
        return
    if item == "?":
        if name not in ("day-of-month", "day-of-week"):
            raise ValueError(f"'?' is only allowed in day-of-month and day-of-week, not {name}")
        return
    if name == "day-of-month" and item in ("L", "LW"):
        return
    if name == "day-of-month" and re.fullmatch(r"L-\d+|\d+W", item):
        _cron_value(re.sub(r"\D", "", item), low, high, names)
        return
    if name == "day-of-week" and re.fullmatch(r"\w+(L|#[1-5])", item):
        _cron_value(re.sub(r"(L|#[1-5])$", "", item), low, high, names)
        return
    base, slash, step = item.partition("/")
    if slash and (not step.isdigit() or int(step) == 0):
        raise ValueError(f"step {step!r} in {item!r} is not a positive number")
    if base == "*":
        return
    first, dash, last = base.partition("-")
    _cron_value(first, low, high, names)
    if dash:
        _cron_value(last, low, high, names)


def quartz_cron_problem(expression: str) -> str | None:
    """Why `expression` is not a Quartz cron expression (the Jobs API's schedule format), or None.

    Six or seven fields: seconds minutes hours day-of-month month day-of-week [year], with
    exactly one of day-of-month and day-of-week set to '?'.
    """
    fields = expression.split()
    if len(fields) not in (6, 7):
        return (
            f"{len(fields)} fields, expected 6 or 7"
            " (seconds minutes hours day-of-month month day-of-week [year])"
        )
    for i, text in enumerate(fields):
        for item in text.split(","):
            try:
                _cron_item(item, i)
            except ValueError as exc:
                return f"{_CRON_FIELDS[i][0]} {text!r}: {exc}"
    if (fields[3] == "?") == (fields[5] == "?"):
        return "exactly one of day-of-month and day-of-week must be '?'"
    return None


# ---- cross-reference checks ----


def depends_on_problems(bundle: dict[str, Any], target: str) -> list[str]:
    problems = []
    for job_key, job in jobs_of(bundle).items():
        where = f"{origin(target, 'jobs', job_key)}: resources.jobs.{job_key}"
        keys = [task["task_key"] for task in job.get("tasks", [])]
        problems += [f"{where}: duplicate task_key {k}" for k in set(keys) if keys.count(k) > 1]
        tasks = tasks_of(job)
        for key, task in tasks.items():
            for dep in task.get("depends_on", []):
                if dep["task_key"] not in tasks:
                    problems.append(f"{where}.{key} depends on unknown task {dep['task_key']}")
            if key in upstream(tasks, key):
                problems.append(f"{where}.{key} is part of a dependency cycle")
    return problems


def compute_key_problems(bundle: dict[str, Any], target: str) -> list[str]:
    problems = []
    for job_key, job in jobs_of(bundle).items():
        where = f"{origin(target, 'jobs', job_key)}: resources.jobs.{job_key}"
        environments = {env["environment_key"] for env in job.get("environments", [])}
        clusters = {cluster["job_cluster_key"] for cluster in job.get("job_clusters", [])}
        for key, task in tasks_of(job).items():
            if "environment_key" in task and task["environment_key"] not in environments:
                problems.append(f"{where}.{key}: environment {task['environment_key']} undefined")
            if "job_cluster_key" in task and task["job_cluster_key"] not in clusters:
                problems.append(f"{where}.{key}: job cluster {task['job_cluster_key']} undefined")
            classic = {"job_cluster_key", "new_cluster", "existing_cluster_id"} & task.keys()
            if "python_wheel_task" in task and not classic and "environment_key" not in task:
                problems.append(f"{where}.{key}: serverless wheel task needs an environment_key")
            if task.get("libraries") and not classic:
                problems.append(f"{where}.{key}: serverless tasks take libraries from environments")
    return problems


def _variable_source(path: str, target: str) -> str:
    parts = path.split(".")
    if parts[0] == "resources" and len(parts) > 2:
        return origin(target, parts[1], parts[2].split("[")[0])
    return BUNDLE_FILE


def variable_problems(
    bundle: dict[str, Any], target: str, supplied: Mapping[str, Mapping[str, str]] | None = None
) -> list[str]:
    """Every variable the target uses is declared, and has a value: in databricks.yml, or set
    by the CI workflow that deploys the target (`supplied`: target -> variable -> file)."""
    supplied = workflow_variables() if supplied is None else supplied
    declared = bundle.get("variables") or {}
    config = target_config(bundle, target)
    used: dict[str, str] = {}
    for path, text in strings(config):
        if path.startswith("variables."):
            continue
        for name in VAR_REF.findall(text):
            used.setdefault(name, path)
    problems = [
        f"{_variable_source(path, target)}: {path}: ${{var.{name}}} is used but not declared"
        f" (variables.{name} in {BUNDLE_FILE})"
        for name, path in sorted(used.items())
        if name not in declared
    ]
    for name in sorted(((bundle.get("targets") or {}).get(target) or {}).get("variables") or {}):
        if name not in declared:
            problems.append(
                f"{BUNDLE_FILE}: targets.{target}.variables.{name}: sets undeclared variable {name}"
            )
    for name, path in sorted(used.items()):
        if name not in declared or variable_value(bundle, target, name) is not None:
            continue
        if name in supplied.get(target, {}):
            continue
        problems.append(
            f"{BUNDLE_FILE}: targets.{target}.variables.{name}: target {target} has no value for"
            f" variable {name} (used at {path}); set variables.{name}.default or"
            f" targets.{target}.variables.{name}, or {BUNDLE_VAR_ENV}{name} in the workflow that"
            f" deploys {target}"
        )
    return problems


def resource_reference_problems(bundle: dict[str, Any], target: str) -> list[str]:
    problems = []
    for path, text in strings(bundle.get("resources") or {}, "resources"):
        for kind, key, field in RESOURCE_REF.findall(text):
            if key not in resources_of(bundle, kind):
                problems.append(
                    f"{_variable_source(path, target)}: {path}: ${{resources.{kind}.{key}.{field}}}"
                    f" names an undefined {kind.removesuffix('s')} (resources.{kind}.{key})"
                )
    return problems


def wheel_task_problems(bundle: dict[str, Any], target: str) -> list[str]:
    project = pyproject()["project"]
    scripts = project.get("scripts", {})
    problems = []
    for job_key, job in jobs_of(bundle).items():
        file = origin(target, "jobs", job_key)
        for key, task in tasks_of(job).items():
            wheel = task.get("python_wheel_task")
            if wheel is None:
                continue
            where = f"{file}: resources.jobs.{job_key}.tasks[{key}].python_wheel_task"
            if wheel["package_name"] != project["name"]:
                problems.append(
                    f"{where}.package_name: package_name {wheel['package_name']} is not the"
                    f" project {project['name']} (pyproject.toml [project] name)"
                )
            if wheel["entry_point"] not in scripts:
                problems.append(
                    f"{where}.entry_point: entry point {wheel['entry_point']} is not a script of"
                    f" pyproject.toml [project.scripts] ({', '.join(sorted(scripts))})"
                )
            params = wheel.get("parameters", [])
            if params[:2] != ["--env", "${bundle.target}"]:
                problems.append(f"{where}.parameters: must start with --env ${{bundle.target}}")
            use_case = use_case_arg(params)
            if use_case is None:
                problems.append(f"{where}.parameters: parameters need --use-case NAME")
            elif resolve_job_parameters(use_case, job) not in known_use_cases():
                problems.append(
                    f"{where}.parameters: --use-case {resolve_job_parameters(use_case, job)} is"
                    f" not a use case ({', '.join(sorted(known_use_cases()))})"
                )
    return problems


def job_parameter_problems(bundle: dict[str, Any], target: str) -> list[str]:
    """Every `{{job.parameters.X}}` names a parameter of its job; a `use_case` parameter's
    default is a use case."""
    problems = []
    for job_key, job in jobs_of(bundle).items():
        where = f"{origin(target, 'jobs', job_key)}: resources.jobs.{job_key}"
        defined = job_parameters(job)
        for path, text in strings(job.get("tasks", []), "tasks"):
            for name in JOB_PARAM_REF.findall(text):
                if name not in defined:
                    problems.append(
                        f"{where}.{path}: {{{{job.parameters.{name}}}}} names no parameter of"
                        f" the job (resources.jobs.{job_key}.parameters)"
                    )
        use_case = defined.get("use_case")
        if use_case is not None and use_case not in known_use_cases():
            problems.append(
                f"{where}.parameters.use_case: default {use_case!r} is not a use case"
                f" ({', '.join(sorted(known_use_cases()))})"
            )
    return problems


def use_case_problems(bundle: dict[str, Any], target: str) -> list[str]:
    """Each use case's job belongs to it: its key, its tasks and the jobs it starts agree. A
    job of no use case (the bootstrap job) only starts other jobs."""
    jobs = jobs_of(bundle)
    problems = []
    for job_key, job in jobs.items():
        where = f"{origin(target, 'jobs', job_key)}: resources.jobs.{job_key}"
        owner = (job.get("tags") or {}).get("use_case")
        if owner is None:
            for key, task in tasks_of(job).items():
                if "run_job_task" not in task:
                    problems.append(f"{where}.{key}: a job of no use case may only run jobs")
            continue
        if not job_key.startswith(f"{owner}_"):
            problems.append(f"{where}: key does not start with its use case tag {owner}")
        if job_parameters(job).get("use_case", owner) != owner:
            problems.append(
                f"{where}.parameters.use_case: default {job_parameters(job)['use_case']!r},"
                f" not its own use case {owner}"
            )
        for key, task in tasks_of(job).items():
            wheel = task.get("python_wheel_task")
            named = use_case_arg(wheel.get("parameters", [])) if wheel else None
            if "notebook_task" in task:
                named = (task["notebook_task"].get("base_parameters") or {}).get("use_case")
            if named is not None and resolve_job_parameters(named, job) != owner:
                problems.append(
                    f"{where}.{key} runs use case {resolve_job_parameters(named, job)}, not {owner}"
                )
            for kind, started, _ in RESOURCE_REF.findall(str(task.get("run_job_task", {}))):
                other = (jobs.get(started, {}).get("tags") or {}).get("use_case")
                if kind == "jobs" and started in jobs and other != owner:
                    problems.append(f"{where}.{key} starts {started} of another use case")
    return problems


def condition_problems(bundle: dict[str, Any], target: str) -> list[str]:
    problems = []
    for job_key, job in jobs_of(bundle).items():
        where = f"{origin(target, 'jobs', job_key)}: resources.jobs.{job_key}"
        tasks = tasks_of(job)
        for key, task in tasks.items():
            for dep in task.get("depends_on", []):
                up = tasks.get(dep["task_key"], {})
                if "outcome" in dep and "condition_task" not in up:
                    problems.append(f"{where}.{key}: outcome on a non-condition dependency")
                if "outcome" in dep and dep["outcome"] not in ("true", "false"):
                    problems.append(f"{where}.{key}: outcome must be 'true' or 'false'")
            condition = task.get("condition_task")
            if condition is None:
                continue
            refs = TASK_VALUE_REF.findall(f"{condition['left']} {condition['right']}")
            for ref_task, _ in refs:
                if ref_task not in tasks:
                    problems.append(f"{where}.{key} reads values of unknown task {ref_task}")
                elif ref_task not in upstream(tasks, key):
                    problems.append(f"{where}.{key} reads {ref_task} but does not depend on it")
            gated = [
                other
                for other, spec in tasks.items()
                if any(
                    dep["task_key"] == key and dep.get("outcome") == "true"
                    for dep in spec.get("depends_on", [])
                )
            ]
            if not gated:
                problems.append(f"{where}.{key}: no task depends on it with outcome 'true'")
    return problems


def schedule_problems(bundle: dict[str, Any], target: str) -> list[str]:
    problems = []
    zones = available_timezones() | {"UTC"}
    for job_key, job in jobs_of(bundle).items():
        schedule = job.get("schedule")
        if schedule is None:
            continue
        where = f"{origin(target, 'jobs', job_key)}: resources.jobs.{job_key}.schedule"
        expression = schedule.get("quartz_cron_expression", "")
        why = quartz_cron_problem(expression)
        if why:
            problems.append(
                f"{where}.quartz_cron_expression: {expression!r} is not a Quartz cron"
                f" expression: {why}"
            )
        zone = resolve(schedule.get("timezone_id", ""), bundle, target)
        if zone not in zones:
            problems.append(f"{where}.timezone_id: {zone!r} is not a time zone ID")
    return problems


def target_problems(bundle: dict[str, Any], target: str) -> list[str]:
    targets = bundle.get("targets") or {}
    problems = [
        f"{BUNDLE_FILE}: targets.{name}: target {name} is missing"
        for name in EXPECTED_TARGETS
        if name not in targets
    ]
    defaults = [name for name, spec in targets.items() if (spec or {}).get("default") is True]
    if len(defaults) != 1:
        problems.append(
            f"{BUNDLE_FILE}: targets: exactly one target must be the default, found {defaults}"
        )
    for name in targets:
        if name not in CLI_ENVS or not (ROOT / "conf" / f"{name}.yml").is_file():
            problems.append(
                f"{BUNDLE_FILE}: targets.{name}: target {name} is not an --env the CLI accepts"
                f" (conf/{name}.yml)"
            )
    for path, text in strings((targets.get(target) or {}).get("workspace") or {}, "workspace"):
        # The CLI resolves authentication before variables: it warns and ignores them there.
        if path.split(".")[-1] in AUTH_FIELDS and ("${" in text):
            problems.append(
                f"{BUNDLE_FILE}: targets.{target}.{path}: no variable interpolation in fields"
                " that configure authentication; set DATABRICKS_HOST (or a profile) instead"
            )
    return problems


# The workspace fields the CLI reads before it resolves variables (its
# validate:interpolation_in_auth_config).
AUTH_FIELDS = {
    "host",
    "profile",
    "auth_type",
    "client_id",
    "google_service_account",
    "azure_use_msi",
    "azure_client_id",
    "azure_tenant_id",
    "azure_environment",
    "azure_login_app_id",
    "account_id",
    "workspace_id",
}


CROSS_REFERENCE_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "depends_on": depends_on_problems,
    "compute_keys": compute_key_problems,
    "variables": variable_problems,
    "resource_references": resource_reference_problems,
    "wheel_tasks": wheel_task_problems,
    "job_parameters": job_parameter_problems,
    "use_cases": use_case_problems,
    "conditions": condition_problems,
    "schedules": schedule_problems,
    "targets": target_problems,
}


def all_problems(bundle: dict[str, Any], target: str) -> list[str]:
    return [
        problem for check in CROSS_REFERENCE_CHECKS.values() for problem in check(bundle, target)
    ]


# ---- a run, on paper ----


def simulate_run(
    job: dict[str, Any],
    parameters: Mapping[str, str] | None = None,
    task_values: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The state each task of a run would end in, assuming every task that runs succeeds:
    "success", "true"/"false" (a condition) or "excluded" (not run, by a condition or `run_if`).

    `parameters` override the job parameters' defaults; `task_values` give
    `{{tasks.<task>.values.<key>}}` as "<task>.<key>".
    """
    params = job_parameters(job) | dict(parameters or {})
    values = dict(task_values or {})
    tasks = tasks_of(job)
    state: dict[str, str] = {}

    def substitute(text: str) -> str:
        text = JOB_PARAM_REF.sub(lambda m: params[m.group(1)], text)
        return TASK_VALUE_REF.sub(lambda m: values.get(f"{m.group(1)}.{m.group(2)}", ""), text)

    while len(state) < len(tasks):
        ready = [
            key
            for key, task in tasks.items()
            if key not in state and all(d["task_key"] in state for d in task.get("depends_on", []))
        ]
        if not ready:
            raise ValueError("dependency cycle")
        for key in ready:
            task = tasks[key]
            met = []
            for dep in task.get("depends_on", []):
                done = state[dep["task_key"]]
                if "outcome" in dep:
                    met.append(done == dep["outcome"])
                else:
                    met.append(done != "excluded")
            run_if = task.get("run_if", "ALL_SUCCESS")
            runs = not met or (any(met) if run_if == "AT_LEAST_ONE_SUCCESS" else all(met))
            if not runs:
                state[key] = "excluded"
            elif "condition_task" in task:
                condition = task["condition_task"]
                left, right = substitute(condition["left"]), substitute(condition["right"])
                equal = left == right
                state[key] = str(equal if condition["op"] == "EQUAL_TO" else not equal).lower()
            else:
                state[key] = "success"
    return state
