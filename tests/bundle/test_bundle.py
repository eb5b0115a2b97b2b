"""Offline checks of the Databricks Asset Bundle: databricks.yml plus what jobs/workflows.py
and jobs/resources.py generate for every enabled use case of each target (see
`tests.bundle.checks` for how the configuration is loaded and checked).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from databricks.bundles.jobs import Job
from jobs import prerequisites, resources, workflows

from featurehouse.config import CONF_DIR_ENV_VAR, load_settings
from featurehouse.discovery import load_use_cases
from tests.bundle.checks import (
    BUNDLE_FILE,
    CROSS_REFERENCE_CHECKS,
    EXPECTED_TARGETS,
    GENERATORS,
    ROOT,
    SCHEMA_PATH,
    add_resources,
    all_problems,
    describe,
    generated_jobs,
    generated_resources,
    job_parameters,
    jobs_of,
    known_use_cases,
    load_bundle,
    load_yaml_bundle,
    make_validator,
    merge,
    python_bundle,
    resolve,
    resolve_resource_names,
    resource_functions,
    resources_of,
    schema_errors,
    simulate_run,
    strings,
    target_config,
    tasks_of,
    variable_value,
    yaml_resource_sources,
)

SPARK_PACKAGES = ("pyspark", "delta-spark", "delta_spark")


def write_conf_copy(target, edits: dict[str, dict[str, Any]]):
    """A copy of conf/ with `edits` ({relative file: values}) deep-merged into its files."""
    import shutil

    import yaml

    conf_dir = target / "conf"
    shutil.copytree(ROOT / "conf", conf_dir)
    for name, values in edits.items():
        path = conf_dir / name
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        path.write_text(yaml.safe_dump(merge(data, values)), encoding="utf-8")
    return conf_dir


# ---- fixtures ----


@pytest.fixture(scope="module")
def bundles() -> dict[str, dict[str, Any]]:
    """The merged bundle of each target (conf/<target>.yml decides which use cases it holds)."""
    return {target: load_bundle(ROOT, target) for target in EXPECTED_TARGETS}


@pytest.fixture(params=EXPECTED_TARGETS)
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
        for key, job in jobs_of(bundle).items()
        if "use_case" in job.get("tags", {}) and key == f"{job['tags']['use_case']}_{kind}"
    }


def _wheel_entry_points(job: dict[str, Any]) -> dict[str, str]:
    return {
        key: task["python_wheel_task"]["entry_point"]
        for key, task in tasks_of(job).items()
        if "python_wheel_task" in task
    }


def _edges(job: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    return {
        (dep["task_key"], key, dep.get("outcome"))
        for key, task in tasks_of(job).items()
        for dep in task.get("depends_on", [])
    }


# ---- the generators ----


def test_databricks_yml_generates_jobs_and_resources_in_python_and_no_yaml_resource_is_left() -> (
    None
):
    yaml_bundle = load_yaml_bundle(ROOT)
    assert yaml_bundle["python"] == {"venv_path": ".venv", "resources": list(GENERATORS)}
    assert resource_functions(yaml_bundle) == [workflows.load_resources, resources.load_resources]
    # Hand-written resources would drift from the declarations and conf/ again.
    assert sorted((ROOT / "jobs").glob("*.yml")) == []
    assert yaml_resource_sources(ROOT) == {}
    for pattern in yaml_bundle.get("include", []):
        assert sorted(ROOT.glob(pattern)), f"include pattern {pattern!r} matches no file"


def test_every_enabled_use_case_has_exactly_its_three_jobs_and_one_bootstrap_runs_them(
    bundle: dict[str, Any], target: str
) -> None:
    enabled = load_settings(target).enabled_use_cases
    assert enabled, f"no use case is enabled in conf/{target}.yml"
    expected = {f"{name}_{kind}" for name in enabled for kind in workflows.KINDS}
    assert set(jobs_of(bundle)) == expected | {workflows.BOOTSTRAP}
    for kind in workflows.KINDS:
        assert set(_use_case_jobs(bundle, kind)) == set(enabled), kind
    bootstrap = jobs_of(bundle)[workflows.BOOTSTRAP]
    started = {key: task["run_job_task"]["job_id"] for key, task in tasks_of(bootstrap).items()}
    assert started == {key: f"${{resources.jobs.{key}.id}}" for key in expected}
    # Each use case: features, then training, then monitoring; use cases side by side.
    assert _edges(bootstrap) == {
        (f"{n}_{a}", f"{n}_{b}", None)
        for n in enabled
        for a, b in [("features", "training"), ("training", "monitoring")]
    }
    assert "schedule" not in bootstrap


def test_generators_return_the_same_resources_every_time(target: str) -> None:
    yaml_bundle = load_yaml_bundle(ROOT)
    first, second = (generated_resources(yaml_bundle, target) for _ in range(2))
    # Same keys in the same order, same content: a redeploy changes nothing.
    assert [(k, list(v.items())) for k, v in first.items()] == [
        (k, list(v.items())) for k, v in second.items()
    ]


def test_generators_name_no_use_case() -> None:
    for module in (workflows, resources, prerequisites):
        source = Path(module.__file__)
        named = sorted(name for name in known_use_cases() if name in source.read_text())
        assert named == [], f"{source.name} must read use cases from settings, not name them"


@pytest.mark.parametrize(
    ("where", "disabled_in"),
    [("use_cases/{name}.yml", set(EXPECTED_TARGETS)), ("prod.yml", {"prod"})],
    ids=["in its own file", "in one environment"],
)
def test_disabling_a_use_case_removes_its_jobs_and_resources(
    tmp_path, monkeypatch: pytest.MonkeyPatch, where: str, disabled_in: set[str]
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
    for target in EXPECTED_TARGETS:
        kept = before[target] - {name} if target in disabled_in else before[target]
        expected = {f"{uc}_{kind}" for uc in kept for kind in workflows.KINDS}
        found = generated_resources(yaml_bundle, target)
        assert set(found["jobs"]) == expected | {workflows.BOOTSTRAP}, target
        models = set(found["registered_models"])  # use cases' and segment tables' models
        assert models & before[target] == kept, target
        assert any(m.startswith(name) for m in models) == (name in kept), target
        assert set(found["experiments"]) == kept, target
        assert (name in found["schemas"]) == (name in kept), target


def test_a_use_case_that_never_retrains_only_scores_and_reports(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = load_settings("prod").enabled_use_cases[0]
    never = {"drift": {"retrain_on_drift": False}, "performance": {"retrain_on_drop": False}}
    edit = {f"use_cases/{name}.yml": never}
    monkeypatch.setenv(CONF_DIR_ENV_VAR, str(write_conf_copy(tmp_path, edit)))
    bundle = load_bundle(ROOT, "prod")
    monitoring = _use_case_jobs(bundle, "monitoring")
    assert [task["task_key"] for task in monitoring[name]["tasks"]] == [
        "score",
        "drift",
        "performance",
        "report",
    ]
    for other, job in monitoring.items():
        if other != name:
            assert "retrain" in tasks_of(job), other
    # Training stays, to run on demand; the bundle is still consistent.
    assert f"{name}_training" in jobs_of(bundle)
    assert all_problems(bundle, "prod") == []


def test_a_generated_job_may_not_replace_a_yaml_job() -> None:
    yaml_bundle = load_yaml_bundle(ROOT)
    generated = generated_jobs(yaml_bundle, "dev")
    key = next(iter(generated))
    taken = merge(yaml_bundle, {"resources": {"jobs": {key: {"name": "hand-written"}}}})
    with pytest.raises(ValueError, match=f"resources.jobs.{key} is defined more than once"):
        add_resources(taken, "jobs", generated, "python.resources")


def test_load_yaml_bundle_rejects_a_resource_defined_twice(tmp_path) -> None:
    (tmp_path / BUNDLE_FILE).write_text("bundle: {name: x}\ninclude: [jobs/*.yml]\n")
    (tmp_path / "jobs").mkdir()
    for name in ("a.yml", "b.yml"):
        (tmp_path / "jobs" / name).write_text("resources: {jobs: {same: {name: s}}}\n")
    with pytest.raises(ValueError, match="defined more than once"):
        load_yaml_bundle(tmp_path)


def test_a_bad_setting_is_a_generator_error_naming_it(tmp_path, monkeypatch) -> None:
    edit = {"dev.yml": {"storage": {"raw_dir": "/Volumes/featurehouse_dev"}}}
    monkeypatch.setenv(CONF_DIR_ENV_VAR, str(write_conf_copy(tmp_path, edit)))
    found = resources.load_resources(python_bundle(load_yaml_bundle(ROOT), "dev"))
    [error] = found.diagnostics.items
    assert "use_cases." in error.summary and "is not inside a volume" in error.summary


def test_the_cli_build_module_loads_the_same_resources_from_the_bundle_venv(tmp_path) -> None:
    """Run the CLI's side of the protocol (`python -m databricks.bundles.build`) as `bundle
    validate` does: in `python.venv_path`, from the bundle root, on the configuration."""
    yaml_bundle = load_yaml_bundle(ROOT)
    python = ROOT / yaml_bundle["python"]["venv_path"] / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"no virtualenv at {python.parent.parent}: run `make setup`")
    target = "dev"
    config = copy.deepcopy(yaml_bundle)
    config["bundle"]["target"] = target
    for name, spec in config["variables"].items():
        value = variable_value(yaml_bundle, target, name)
        if value is not None:
            spec["value"] = value
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
    expected = generated_resources(yaml_bundle, target)
    for kind, found in expected.items():
        assert output["resources"].get(kind, {}) == found, kind
    locations = {
        entry["path"]: entry["file"]
        for entry in map(json.loads, files["locations"].read_text().splitlines())
    }
    for key, job in output["resources"]["jobs"].items():
        # Diagnostics point at the generator; the wheel path resolves from the bundle root.
        assert locations[f"resources.jobs.{key}"] == "jobs/workflows.py"
        for e, env_spec in enumerate(job.get("environments", [])):
            for d, _ in enumerate(env_spec["spec"]["dependencies"]):
                where = f"resources.jobs.{key}.environments[{e}].spec.dependencies[{d}]"
                assert locations[where] == BUNDLE_FILE, where
    for kind in ("schemas", "volumes", "registered_models", "experiments"):
        for key in output["resources"][kind]:
            assert locations[f"resources.{kind}.{key}"] == "jobs/resources.py"


# ---- shape ----


def test_merged_bundle_validates_against_official_schema(
    bundle: dict[str, Any], validator: Any
) -> None:
    errors = schema_errors(validator, bundle)
    assert not errors, "bundle does not match the official schema:\n" + describe(errors)


def test_every_job_parses_as_a_typed_databricks_job(bundle: dict[str, Any], target: str) -> None:
    for key, job in jobs_of(bundle).items():
        # Raises on unknown fields, missing required fields and bad enum values.
        parsed = Job.from_dict(resolve(copy.deepcopy(job), bundle, target))
        assert parsed.tasks, f"job {key} has no tasks"
        assert target in str(parsed.name)


def test_the_bundle_passes_every_cross_reference_check(bundle: dict[str, Any], target: str) -> None:
    problems = {name: check(bundle, target) for name, check in CROSS_REFERENCE_CHECKS.items()}
    assert {name: found for name, found in problems.items() if found} == {}


# ---- Unity Catalog, experiments ----


def test_each_use_case_has_its_schema_model_and_experiment_named_as_in_conf(
    bundle: dict[str, Any], target: str
) -> None:
    settings = load_settings(target)
    use_cases = load_use_cases(settings)
    schemas = resolve_resource_names(resources_of(bundle, "schemas"), bundle)
    models = resolve_resource_names(resources_of(bundle, "registered_models"), bundle)
    experiments = resources_of(bundle, "experiments")
    expected_models = {}
    for name, use_case in use_cases.items():
        schema = {(s["catalog_name"], s["name"]) for s in schemas.values()}
        assert (settings.catalog, settings.schema_of(name)) in schema, name
        expected_models[name] = settings.model_name(name, use_case.model_name)
        for table in use_case.tables:
            if table.segmentation is not None:
                key = f"{name}_{table.name}"
                expected_models[key] = settings.segmentation_model_name(name, table.name)
        assert experiments[name]["name"] == settings.experiment(name)
    found = {
        key: f"{m['catalog_name']}.{m['schema_name']}.{m['name']}" for key, m in models.items()
    }
    assert found == expected_models
    assert "demand_forecasting_store_item_segments" in found  # a segment table's model
    assert set(experiments) == set(use_cases)


def test_every_volume_the_jobs_use_is_declared_inside_a_declared_schema(
    bundle: dict[str, Any], target: str
) -> None:
    settings = load_settings(target)
    volumes = resolve_resource_names(resources_of(bundle, "volumes"), bundle)
    declared = {
        f"/Volumes/{v['catalog_name']}/{v['schema_name']}/{v['name']}" for v in volumes.values()
    }
    folders = resources.volume_settings(settings)
    assert folders, "no folder in the settings"
    for setting, folder in folders.items():
        assert any(str(folder).startswith(f"{volume}") for volume in declared), setting
    # The raw landing folder of every use case, the feature staging folder, the Feast registry.
    for name in settings.enabled_use_cases:
        assert f"use_cases.{name}.raw_dir" in folders
    for volume in resources_of(bundle, "volumes").values():
        assert volume["schema_name"].startswith("${resources.schemas."), volume
        assert volume["volume_type"] == "MANAGED"


def test_the_operators_group_has_grants_and_permissions_everywhere(bundle: dict[str, Any]) -> None:
    group = "${var.ops_group}"
    for kind in ("schemas", "volumes", "registered_models"):
        for key, resource in resources_of(bundle, kind).items():
            principals = {grant["principal"] for grant in resource.get("grants", [])}
            assert group in principals, f"{kind}.{key}"
    for key, model in resources_of(bundle, "registered_models").items():
        assert model["grants"] == [{"principal": group, "privileges": ["EXECUTE"]}], key
    for key, experiment in resources_of(bundle, "experiments").items():
        assert experiment["permissions"] == [{"group_name": group, "level": "CAN_READ"}], key
    for key, job in jobs_of(bundle).items():
        assert job["permissions"] == [{"group_name": group, "level": "CAN_MANAGE_RUN"}], key


def test_data_outlives_a_destroy_in_staging_and_prod(bundle: dict[str, Any], target: str) -> None:
    for kind in ("schemas", "volumes", "registered_models"):
        for key, resource in resources_of(bundle, kind).items():
            protected = (resource.get("lifecycle") or {}).get("prevent_destroy", False)
            assert protected == (target in ("staging", "prod")), f"{target} {kind}.{key}"


def test_experiment_folders_are_what_ci_creates_before_deploying(
    bundle: dict[str, Any], target: str
) -> None:
    folders = prerequisites.experiment_folders(load_settings(target))
    for key, experiment in resources_of(bundle, "experiments").items():
        assert str(PurePosixPath(experiment["name"]).parent) in folders, key
    text = prerequisites.describe(target)
    for folder in folders:
        assert f"databricks workspace mkdirs {folder}" in text


# ---- production settings ----


def _target(bundle: dict[str, Any], name: str) -> dict[str, Any]:
    return bundle["targets"][name]


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_staging_and_prod_run_as_the_service_principal_from_its_own_folder(
    bundles: dict[str, dict[str, Any]], name: str
) -> None:
    spec = _target(bundles[name], name)
    assert spec["run_as"] == {"service_principal_name": "${var.service_principal}"}
    root = spec["workspace"]["root_path"]
    # Not world-writable: the service principal's home folder, one copy per target.
    assert root.startswith("/Workspace/Users/${var.service_principal}/"), root
    assert not root.startswith(("/Workspace/Shared", "/Shared")), root
    assert "${bundle.target}" in root
    assert spec["permissions"] == [
        {"level": "CAN_MANAGE", "service_principal_name": "${var.service_principal}"}
    ]


def test_targets_modes_defaults_and_schedules(bundles: dict[str, dict[str, Any]]) -> None:
    targets = bundles["prod"]["targets"]
    assert [n for n, spec in targets.items() if spec.get("default")] == ["dev"]
    assert targets["prod"]["mode"] == "production"
    # Development mode would rename the schemas, models and experiments the jobs look up by
    # their conf/ names to dev_<user>_<name>.
    assert "mode" not in targets["dev"] and "mode" not in targets["staging"]
    assert "name_prefix" not in (targets["dev"].get("presets") or {})


def test_no_variable_in_fields_that_configure_authentication(
    bundles: dict[str, dict[str, Any]],
) -> None:
    bundle = bundles["prod"]
    sections = [bundle.get("workspace") or {}] + [
        (spec or {}).get("workspace") or {} for spec in bundle["targets"].values()
    ]
    for section in sections:
        assert "host" not in section, "the host comes from DATABRICKS_HOST or a profile"


@pytest.mark.parametrize(
    ("target", "expected"), [("dev", "PAUSED"), ("staging", "PAUSED"), ("prod", "UNPAUSED")]
)
def test_schedules_run_only_in_prod(bundle: dict[str, Any], target: str, expected: str) -> None:
    spec = bundle["targets"][target]
    preset = (spec.get("presets") or {}).get("trigger_pause_status", "UNPAUSED")
    scheduled = [key for key, job in jobs_of(bundle).items() if "schedule" in job]
    assert scheduled
    for key in scheduled:
        # The CLI applies the target's preset only where pause_status is unset.
        effective = jobs_of(bundle)[key]["schedule"].get("pause_status", preset)
        assert effective == expected, f"{key} schedule is {effective} in {target}"


def test_every_deploy_builds_a_fresh_uniquely_versioned_wheel_and_no_task_installs_spark(
    bundle: dict[str, Any], target: str
) -> None:
    artifact = target_config(bundle, target)["artifacts"]["default"]
    assert artifact["type"] == "whl"
    # A stale wheel in dist/ would also match dist/*.whl.
    assert artifact["build"] == "rm -rf dist && uv build --wheel"
    assert artifact["executable"] == "bash"
    assert artifact["dynamic_version"] is True
    dist = (ROOT / artifact["path"] / "dist").resolve()
    for key, job in jobs_of(bundle).items():
        wheel_tasks = [t for t in job["tasks"] if "python_wheel_task" in t]
        if not wheel_tasks:
            assert "environments" not in job, key
            continue
        for env in job["environments"]:
            wheels = [d for d in env["spec"]["dependencies"] if d.endswith(".whl")]
            assert wheels, f"{key}.{env['environment_key']} does not install the wheel"
            for wheel in wheels:
                assert (ROOT / wheel).parent.resolve() == dist, wheel
        for _, text in strings(job):
            assert not any(pkg in text.lower() for pkg in SPARK_PACKAGES), f"{key}: {text}"


def test_every_job_reports_failures_and_slow_runs_and_runs_once_at_a_time(
    bundle: dict[str, Any],
) -> None:
    for key, job in jobs_of(bundle).items():
        notifications = job["email_notifications"]
        assert notifications["on_failure"] == ["${var.alert_email}"], key
        assert notifications["on_duration_warning_threshold_exceeded"] == ["${var.alert_email}"]
        [rule] = job["health"]["rules"]
        assert (rule["metric"], rule["op"]) == ("RUN_DURATION_SECONDS", "GREATER_THAN"), key
        assert 0 < rule["value"] < job["timeout_seconds"], key
        assert job["max_concurrent_runs"] == 1, key
        # A run started while one is going waits instead of being skipped.
        assert job["queue"] == {"enabled": True}, key


def test_catalog_variable_matches_conf_and_ingest_reads_raw_folders_from_conf(
    bundle: dict[str, Any], target: str
) -> None:
    settings = load_settings(target)
    assert variable_value(bundle, target, "catalog") == settings.catalog
    for name, job in _use_case_jobs(bundle, "features").items():
        params = tasks_of(job)["ingest"]["python_wheel_task"]["parameters"]
        # The raw folder is the use case's own, from conf/, inside the target's catalog.
        assert "--input" not in params
        assert str(settings.raw_dir(name)).startswith(f"/Volumes/{settings.catalog}/"), name


# ---- workflows ----


def test_every_job_takes_its_use_case_as_a_parameter(bundle: dict[str, Any]) -> None:
    for kind in workflows.KINDS:
        for name, job in _use_case_jobs(bundle, kind).items():
            assert job_parameters(job)["use_case"] == name
            for task in job["tasks"]:
                if "python_wheel_task" in task:
                    params = task["python_wheel_task"]["parameters"]
                    assert params[:4] == [
                        "--env",
                        "${bundle.target}",
                        "--use-case",
                        "{{job.parameters.use_case}}",
                    ]


@pytest.mark.parametrize(
    ("parameters", "feature_task", "extra"),
    [
        ({}, "features", []),
        ({"mode": "full"}, "features_full", ["--full"]),
        (
            {"mode": "backfill", "start": "2024-01-01", "end": "2024-02-01"},
            "features_backfill",
            ["--start", "2024-01-01", "--end", "2024-02-01"],
        ),
    ],
    ids=["incremental", "full", "backfill"],
)
def test_features_job_runs_ingest_one_feature_run_by_mode_then_materialize(
    bundles: dict[str, dict[str, Any]], parameters: dict, feature_task: str, extra: list[str]
) -> None:
    for name, job in _use_case_jobs(bundles["prod"], "features").items():
        assert set(job_parameters(job)) == {"use_case", "mode", "start", "end"}
        state = simulate_run(job, parameters)
        ran = {key for key, done in state.items() if done == "success"}
        assert ran == {"ingest", feature_task, "materialize"}, (name, state)
        args = tasks_of(job)[feature_task]["python_wheel_task"]["parameters"][4:]
        values = job_parameters(job) | parameters
        resolved = [values[a[17:-2]] if a.startswith("{{job.parameters.") else a for a in args]
        assert resolved == extra
        assert _wheel_entry_points(job) == {
            "ingest": "fh-ingest",
            "features": "fh-features",
            "features_full": "fh-features",
            "features_backfill": "fh-features",
            "materialize": "fh-materialize",
        }
        retries = {k: t.get("max_retries", 0) for k, t in tasks_of(job).items()}
        assert retries["ingest"] == retries["materialize"] == 1
        assert retries["features"] == 0


def test_training_job_trains_then_validates_and_queues_triggered_runs(
    bundle: dict[str, Any],
) -> None:
    for name, job in _use_case_jobs(bundle, "training").items():
        assert _wheel_entry_points(job) == {"train": "fh-train", "validate": "fh-validate"}, name
        assert _edges(job) == {("train", "validate", None)}
        assert job["queue"] == {"enabled": True}
        assert "schedule" not in job


def test_monitoring_retrains_its_own_use_case_only_when_the_gate_asks(
    bundle: dict[str, Any],
) -> None:
    for name, job in _use_case_jobs(bundle, "monitoring").items():
        assert _wheel_entry_points(job) == {
            "score": "fh-score",
            "drift": "fh-drift",
            "performance": "fh-performance",
            "report": "fh-report",
        }
        retrain = tasks_of(job)["retrain"]["run_job_task"]
        assert retrain["job_id"] == f"${{resources.jobs.{name}_training.id}}"
        assert retrain["job_parameters"] == {"use_case": "{{job.parameters.use_case}}"}
        gate = tasks_of(job)[workflows.GATE_TASK]["notebook_task"]
        assert (ROOT / gate["notebook_path"]).is_file()
        assert gate["base_parameters"] == {
            "env": "${bundle.target}",
            "use_case": "{{job.parameters.use_case}}",
        }
        asked = simulate_run(job, task_values={"retrain_gate.retrain": "true"})
        steady = simulate_run(job, task_values={"retrain_gate.retrain": "false"})
        assert (asked["retrain"], steady["retrain"]) == ("success", "excluded")
        assert {
            ("score", "drift", None),
            ("score", "performance", None),
            ("drift", "retrain_gate", None),
            ("performance", "retrain_gate", None),
        } <= _edges(job)


def test_job_names_tags_and_descriptions_come_from_the_use_case(bundle: dict[str, Any]) -> None:
    use_cases = load_use_cases(load_settings("prod"))
    for key, job in jobs_of(bundle).items():
        if key == workflows.BOOTSTRAP:
            assert job["tags"] == {"project": "featurehouse", "workflow": "bootstrap"}
            assert job["name"] == "featurehouse-bootstrap-${bundle.target}"
            continue
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


# ---- the checks catch mistakes ----


def _job(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    """The first use case's job of `kind`, to break."""
    return jobs_of(bundle)[sorted(key for key in jobs_of(bundle) if key.endswith(f"_{kind}"))[0]]


def _job_key(bundle: dict[str, Any], kind: str) -> str:
    return sorted(key for key in jobs_of(bundle) if key.endswith(f"_{kind}"))[0]


def _first_task(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return _job(bundle, kind)["tasks"][0]


def _other_training(bundle: dict[str, Any]) -> str:
    return sorted(key for key in jobs_of(bundle) if key.endswith("_training"))[1]


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
        lambda b: _job(b, "monitoring")["tasks"][4]["condition_task"].update(op="EQUALS"),
        "'EQUALS' is not one of",
    ),
    "missing required field": (
        lambda b: _first_task(b, "training")["python_wheel_task"].pop("package_name"),
        "'package_name' is a required property",
    ),
    "python resources not a list": (
        lambda b: b["python"].update(resources=GENERATORS[0]),
        "is not of type 'array'",
    ),
    "bad volume type": (
        lambda b: next(iter(resources_of(b, "volumes").values())).update(volume_type="LOCAL"),
        "'LOCAL' is not one of",
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


def _set_dep(b: dict[str, Any], kind: str, task: int, deps: list[dict[str, str]]) -> None:
    _job(b, kind)["tasks"][task]["depends_on"] = deps


def _params(b: dict[str, Any], kind: str) -> list[str]:
    return _first_task(b, kind)["python_wheel_task"]["parameters"]


CROSS_REFERENCE_BREAKAGES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "unknown depends_on": (
        "depends_on",
        lambda b: _set_dep(b, "features", 1, [{"task_key": "ingestion"}]),
        "depends on unknown task ingestion",
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
    "unknown job id": (
        "resource_references",
        lambda b: _job(b, "monitoring")["tasks"][5]["run_job_task"].update(
            job_id="${resources.jobs.training.id}"
        ),
        "names an undefined job (resources.jobs.training)",
    ),
    "model in an undeclared schema": (
        "resource_references",
        lambda b: next(iter(resources_of(b, "registered_models").values())).update(
            schema_name="${resources.schemas.models.name}"
        ),
        "names an undefined schema (resources.schemas.models)",
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
    "unknown use case in a task": (
        "wheel_tasks",
        lambda b: _params(b, "training").__setitem__(3, "churn"),
        "--use-case churn is not a use case",
    ),
    "parameter the job does not define": (
        "job_parameters",
        lambda b: _params(b, "training").append("{{job.parameters.since}}"),
        "{{job.parameters.since}} names no parameter of the job",
    ),
    "task of another use case": (
        "use_cases",
        lambda b: _params(b, "features").__setitem__(3, _other_training(b).rsplit("_", 1)[0]),
        "runs use case",
    ),
    "retrain starts another use case's training": (
        "use_cases",
        lambda b: _job(b, "monitoring")["tasks"][5]["run_job_task"].update(
            job_id=f"${{resources.jobs.{_other_training(b)}.id}}"
        ),
        "of another use case",
    ),
    "bootstrap runs a wheel": (
        "use_cases",
        lambda b: jobs_of(b)["bootstrap"]["tasks"].append(
            copy.deepcopy(_first_task(b, "training"))
        ),
        "a job of no use case may only run jobs",
    ),
    "ungated condition": (
        "conditions",
        lambda b: _set_dep(b, "monitoring", 5, [{"task_key": "retrain_needed"}]),
        "no task depends on it with outcome 'true'",
    ),
    "condition on a task that is not upstream": (
        "conditions",
        lambda b: _set_dep(b, "monitoring", 4, [{"task_key": "score"}]),
        "reads retrain_gate but does not depend on it",
    ),
    "unknown time zone": (
        "schedules",
        lambda b: b["variables"]["schedule_timezone"].update(default="Mars/Olympus"),
        "'Mars/Olympus' is not a time zone ID",
    ),
    "two default targets": (
        "targets",
        lambda b: b["targets"]["prod"].update(default=True),
        "exactly one target must be the default",
    ),
    "variable in the workspace host": (
        "targets",
        lambda b: b["targets"]["prod"]["workspace"].update(host="${var.host}"),
        "no variable interpolation in fields that configure authentication",
    ),
}


@pytest.mark.parametrize("breakage", sorted(CROSS_REFERENCE_BREAKAGES))
def test_cross_reference_checks_catch_a_broken_bundle(
    bundles: dict[str, dict[str, Any]], breakage: str
) -> None:
    check, mutate, expected = CROSS_REFERENCE_BREAKAGES[breakage]
    bundle = bundles["prod"]
    assert CROSS_REFERENCE_CHECKS[check](bundle, "prod") == [], "the intact bundle must pass"
    broken = copy.deepcopy(bundle)
    mutate(broken)
    problems = CROSS_REFERENCE_CHECKS[check](broken, "prod")
    assert any(expected in problem for problem in problems), problems


# ---- bad input: each caught before deployment, naming the file and the key ----


def test_a_target_with_a_missing_variable_names_the_target_and_the_variable(
    bundles: dict[str, dict[str, Any]],
) -> None:
    from tests.bundle.checks import variable_problems, workflow_variables

    supplied = workflow_variables()
    # CI supplies these for staging and prod; databricks.yml has no value for them there.
    assert {"alert_email", "service_principal"} <= set(supplied["prod"])
    assert variable_problems(bundles["prod"], "prod", supplied) == []
    without = {
        t: {k: v for k, v in names.items() if k != "alert_email"} for t, names in supplied.items()
    }
    [problem] = variable_problems(bundles["prod"], "prod", without)
    assert problem.startswith(
        f"{BUNDLE_FILE}: targets.prod.variables.alert_email: target prod has no value for"
        " variable alert_email (used at resources.jobs."
    ), problem
    assert problem.endswith(
        "set variables.alert_email.default or targets.prod.variables.alert_email, or"
        " BUNDLE_VAR_alert_email in the workflow that deploys prod"
    ), problem
    # A value in databricks.yml is as good as one from CI.
    fixed = copy.deepcopy(bundles["prod"])
    fixed["targets"]["prod"]["variables"]["alert_email"] = "ops@example.com"
    assert variable_problems(fixed, "prod", without) == []
    # dev, deployed by people, has a value of its own.
    assert variable_problems(bundles["dev"], "dev", {}) == []


def test_an_unknown_use_case_in_a_job_parameter_names_the_file_and_the_parameter(
    bundles: dict[str, dict[str, Any]],
) -> None:
    from tests.bundle.checks import job_parameter_problems

    broken = copy.deepcopy(bundles["prod"])
    key = _job_key(broken, "training")
    jobs_of(broken)[key]["parameters"][0]["default"] = "churn"
    problems = job_parameter_problems(broken, "prod")
    assert problems[0].startswith(
        f"jobs/workflows.py: resources.jobs.{key}.parameters.use_case: default 'churn' is not a"
        " use case"
    ), problems


def test_a_wheel_entry_point_that_does_not_exist_names_the_file_and_the_task(
    bundles: dict[str, dict[str, Any]],
) -> None:
    from tests.bundle.checks import wheel_task_problems

    broken = copy.deepcopy(bundles["prod"])
    key = _job_key(broken, "training")
    tasks_of(jobs_of(broken)[key])["validate"]["python_wheel_task"]["entry_point"] = "fh-check"
    [problem] = wheel_task_problems(broken, "prod")
    assert problem.startswith(
        f"jobs/workflows.py: resources.jobs.{key}.tasks[validate].python_wheel_task.entry_point:"
        " entry point fh-check is not a script of pyproject.toml [project.scripts] ("
    ), problem
    assert "fh-validate" in problem


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("0 * * * *", "5 fields, expected 6 or 7"),
        ("0 0 25 * * ?", "hours '25': 25 is outside 0-23"),
        ("0 0 6 * * *", "exactly one of day-of-month and day-of-week must be '?'"),
        ("0 0 6 ? * MON-FUN", "day-of-week 'MON-FUN': 'FUN' is not a number"),
        ("0 0/0 * * * ?", "minutes '0/0': step '0' in '0/0' is not a positive number"),
    ],
)
def test_a_bad_cron_expression_names_the_file_the_key_and_why(
    bundles: dict[str, dict[str, Any]], expression: str, why: str
) -> None:
    from tests.bundle.checks import schedule_problems

    broken = copy.deepcopy(bundles["prod"])
    key = _job_key(broken, "features")
    jobs_of(broken)[key]["schedule"]["quartz_cron_expression"] = expression
    [problem] = schedule_problems(broken, "prod")
    assert problem.startswith(
        f"jobs/workflows.py: resources.jobs.{key}.schedule.quartz_cron_expression:"
        f" {expression!r} is not a Quartz cron expression: {why}"
    ), problem


def test_the_generated_schedules_are_valid_quartz_cron() -> None:
    from tests.bundle.checks import quartz_cron_problem

    for expression in (workflows.HOURLY, workflows.DAILY):
        assert quartz_cron_problem(expression) is None, expression
