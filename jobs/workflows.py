"""The Databricks workflows of every enabled use case, generated from settings and declarations.

databricks.yml names `jobs.workflows:load_resources` under `python.resources`. On `databricks
bundle validate|deploy -t <target>` the CLI runs it in `.venv`, from the bundle root, and adds
the jobs it returns to the bundle. The target is the environment (`conf/<target>.yml`), and
each use case enabled there gets three jobs:

- `<use case>_features`: ingest -> features -> materialize, hourly. The job parameter `mode`
  picks the feature run: `incremental` (default), `full` (`--full`) or `backfill` (`--start`
  and `--end`, the job parameters of the same names);
- `<use case>_training`: train -> validate (the promotion gate), on demand or when monitoring
  asks for it;
- `<use case>_monitoring`: score -> drift and performance -> `retrain_gate` (a notebook
  task: only notebook tasks may set task values) -> retrain (through `<use case>_training`)
  when the gate publishes `retrain = "true"` (dataset drift or a performance drop, as the
  use case's settings allow), daily.

One more job, `bootstrap`, runs every use case's three jobs once in order (features, training,
monitoring): what the first deployment of a target needs before the schedules take over.

Every task runs a console script of the project wheel on serverless compute with
`--env ${bundle.target} --use-case {{job.parameters.use_case}}` (the parameter's default is
the job's own use case). Every job tells `${var.alert_email}` when it fails or runs longer
than expected, and `${var.ops_group}` may see and run it. Nothing here names a use case:
enabling, disabling or installing one changes the jobs on the next deploy, with no YAML to copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from databricks.bundles.core import Bundle, Location, Resources
from databricks.bundles.jobs import (
    ConditionTask,
    ConditionTaskOp,
    CronSchedule,
    Environment,
    Job,
    JobEmailNotifications,
    JobEnvironment,
    JobParameterDefinition,
    JobPermission,
    JobsHealthRule,
    JobsHealthRules,
    NotebookTask,
    PythonWheelTask,
    QueueSettings,
    RunIf,
    RunJobTask,
    Task,
    TaskDependency,
)

from featurehouse.config import Settings, load_settings
from featurehouse.discovery import load_use_cases
from featurehouse.errors import ConfigError
from featurehouse.monitoring.gate import RETRAIN_TASK_VALUE
from featurehouse.usecase import UseCase

PACKAGE = "featurehouse"
KINDS = ("features", "training", "monitoring")
BOOTSTRAP = "bootstrap"
# The `workflow` tag keeps the values of the hand-written jobs, so cost reports and
# dashboards grouped by it carry on.
WORKFLOW_TAGS = {
    "features": "feature_pipeline",
    "training": "training",
    "monitoring": "monitoring",
    BOOTSTRAP: BOOTSTRAP,
}

BUNDLE_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_FILE = BUNDLE_ROOT / "databricks.yml"
ENVIRONMENT_KEY = "default"
ENVIRONMENT_VERSION = "4"
# The wheel `artifacts.default` builds. Relative to the bundle root, not to this file: see
# `_resolve_from_bundle_root`.
WHEEL = "dist/*.whl"

HOURLY = "0 0 * * * ?"
DAILY = "0 0 6 * * ?"
TIMEZONE = "${var.schedule_timezone}"
# No pause_status on the schedules: the target decides (dev and staging paused, prod running).

# Who hears about a failed or slow run, and who may see and run the jobs (databricks.yml).
ALERT_EMAIL = "${var.alert_email}"
OPS_GROUP = "${var.ops_group}"
OPS_JOB_LEVEL = "CAN_MANAGE_RUN"

DRIFT_TASK = "drift"
GATE_TASK = "retrain_gate"
# Relative to the bundle root (notebook paths of Python resources resolve from there).
GATE_NOTEBOOK = "notebooks/retrain_gate.py"

# Job parameters: what a person may change when running a job (`bundle run --params` or
# "Run now with different parameters").
USE_CASE_PARAM = "use_case"
MODE_PARAM, START_PARAM, END_PARAM = "mode", "start", "end"
MODES = ("incremental", "full", "backfill")
# The date the run started (UTC): a backfill whose range is left at the defaults is empty.
RUN_DATE = "{{job.start_time.iso_date}}"
USE_CASE_ARG = f"{{{{job.parameters.{USE_CASE_PARAM}}}}}"


def job_key(use_case: str, kind: str) -> str:
    """The stable resource key of a use case's job: renaming it would redeploy a new job."""
    return f"{use_case}_{kind}"


def job_parameter(name: str) -> str:
    """A dynamic value reference to a job parameter, for task parameters and conditions."""
    return f"{{{{job.parameters.{name}}}}}"


def _depends(*keys: str, outcome: str | None = None) -> list[TaskDependency]:
    return [TaskDependency(task_key=key, outcome=outcome) for key in keys]


def _wheel_task(
    task_key: str,
    entry_point: str,
    *,
    depends_on: list[TaskDependency] | None = None,
    extra: list[str] | None = None,
    retry: bool = False,
    run_if: RunIf | None = None,
) -> Task:
    # A retry a minute later rides out a transient error; as in the hand-written jobs, only
    # ingest and materialize retry.
    retries = {"max_retries": 1, "min_retry_interval_millis": 60_000} if retry else {}
    return Task(
        task_key=task_key,
        depends_on=depends_on or [],
        run_if=run_if,
        environment_key=ENVIRONMENT_KEY,
        python_wheel_task=PythonWheelTask(
            package_name=PACKAGE,
            entry_point=entry_point,
            parameters=[
                "--env",
                "${bundle.target}",
                "--use-case",
                USE_CASE_ARG,
                *(extra or []),
            ],
        ),
        **retries,
    )


def _condition(task_key: str, left: str, right: str, *, after: list[TaskDependency]) -> Task:
    return Task(
        task_key=task_key,
        depends_on=after,
        condition_task=ConditionTask(left=left, op=ConditionTaskOp.EQUAL_TO, right=right),
    )


def _job(
    title: str,
    *,
    description: str,
    tasks: list[Task],
    timeout_seconds: int,
    parameters: Mapping[str, str],
    tags: Mapping[str, str],
    schedule: CronSchedule | None = None,
) -> Job:
    """What every job shares: name, tags, parameters, the wheel's serverless environment, one
    run at a time (a run started meanwhile, by a schedule, the bootstrap job or monitoring,
    waits in the queue instead of being skipped), failure and duration alerts, the operators'
    permissions."""
    return Job(
        name=f"{PACKAGE}-{title}-${{bundle.target}}",
        description=description,
        max_concurrent_runs=1,
        timeout_seconds=timeout_seconds,
        # A run still going at half its timeout is worth a look before it is killed.
        health=JobsHealthRules(
            rules=[
                JobsHealthRule(
                    metric="RUN_DURATION_SECONDS", op="GREATER_THAN", value=timeout_seconds // 2
                )
            ]
        ),
        email_notifications=JobEmailNotifications(
            on_failure=[ALERT_EMAIL],
            on_duration_warning_threshold_exceeded=[ALERT_EMAIL],
            no_alert_for_skipped_runs=True,
        ),
        permissions=[JobPermission(level=OPS_JOB_LEVEL, group_name=OPS_GROUP)],
        parameters=[
            JobParameterDefinition(name=key, default=value) for key, value in parameters.items()
        ],
        schedule=schedule,
        queue=QueueSettings(enabled=True),
        tags=dict(tags),
        # Spark and Delta come from the platform: the environment installs the wheel only.
        environments=[
            JobEnvironment(
                environment_key=ENVIRONMENT_KEY,
                spec=Environment(environment_version=ENVIRONMENT_VERSION, dependencies=[WHEEL]),
            )
        ]
        if any(task.python_wheel_task for task in tasks)
        else [],
        tasks=tasks,
    )


def _use_case_job(
    use_case: UseCase,
    kind: str,
    *,
    summary: str,
    extra_parameters: Mapping[str, str] | None = None,
    **kwargs,
) -> Job:
    return _job(
        f"{use_case.name}-{kind}",
        description=f"{summary} Use case {use_case.name}: {use_case.description}".rstrip(": "),
        parameters={USE_CASE_PARAM: use_case.name, **(extra_parameters or {})},
        tags={"project": PACKAGE, "workflow": WORKFLOW_TAGS[kind], "use_case": use_case.name},
        **kwargs,
    )


def features_job(use_case: UseCase) -> Job:
    """Hourly: land raw files in bronze, compute the feature tables, push them online.

    The `mode` parameter chooses the feature run; condition tasks route to exactly one of
    `features` (incremental), `features_full` (`--full`) and `features_backfill` (`--start`,
    `--end`), and materialize follows whichever ran.
    """
    mode = job_parameter(MODE_PARAM)
    return _use_case_job(
        use_case,
        "features",
        summary="Ingest the raw files, build the feature tables and materialize them online."
        f" Parameter {MODE_PARAM}: {' | '.join(MODES)}; backfill recomputes [{START_PARAM},"
        f" {END_PARAM}) (UTC dates such as 2024-01-01; both default to the run's date).",
        extra_parameters={MODE_PARAM: MODES[0], START_PARAM: RUN_DATE, END_PARAM: RUN_DATE},
        timeout_seconds=3600,
        schedule=CronSchedule(quartz_cron_expression=HOURLY, timezone_id=TIMEZONE),
        tasks=[
            _wheel_task("ingest", "fh-ingest", retry=True),
            _condition("full_requested", mode, "full", after=_depends("ingest")),
            _wheel_task(
                "features_full",
                "fh-features",
                depends_on=_depends("full_requested", outcome="true"),
                extra=["--full"],
            ),
            _condition(
                "backfill_requested",
                mode,
                "backfill",
                after=_depends("full_requested", outcome="false"),
            ),
            _wheel_task(
                "features_backfill",
                "fh-features",
                depends_on=_depends("backfill_requested", outcome="true"),
                extra=["--start", job_parameter(START_PARAM), "--end", job_parameter(END_PARAM)],
            ),
            _wheel_task(
                "features",
                "fh-features",
                depends_on=_depends("backfill_requested", outcome="false"),
            ),
            _wheel_task(
                "materialize",
                "fh-materialize",
                depends_on=_depends("features", "features_full", "features_backfill"),
                # Two of the three never run (excluded by their condition).
                run_if=RunIf.AT_LEAST_ONE_SUCCESS,
                retry=True,
            ),
        ],
    )


def training_job(use_case: UseCase) -> Job:
    """Train a challenger on point-in-time features, then validate it: the gate promotes it
    to champion only if it passes every check (Databricks' train -> validate -> deploy)."""
    return _use_case_job(
        use_case,
        "training",
        summary="Train a challenger from the feature store; the validation step promotes it"
        " when it passes its checks.",
        timeout_seconds=7200,
        tasks=[
            _wheel_task("train", "fh-train"),
            _wheel_task("validate", "fh-validate", depends_on=_depends("train")),
        ],
    )


def monitoring_job(use_case: UseCase, *, retrain: bool = True) -> Job:
    """Daily: score with the champion, measure drift and performance and, if asked to,
    retrain when the gate finds dataset drift or a performance drop.

    With `retrain` off (the use case retrains neither on drift nor on a drop: its
    `drift.retrain_on_drift` and `performance.retrain_on_drop` settings, which the local
    pipeline honours too) the job only scores and reports.
    """
    name = use_case.name
    tasks = [
        _wheel_task("score", "fh-score"),
        _wheel_task(DRIFT_TASK, "fh-drift", depends_on=_depends("score")),
        # Judges earlier predictions whose labels have arrived; alerts on a drop.
        _wheel_task("performance", "fh-performance", depends_on=_depends("score")),
    ]
    if retrain:
        tasks += [
            Task(
                task_key=GATE_TASK,
                description="Reads the drift and performance tables and publishes the task"
                f" value {RETRAIN_TASK_VALUE} (a wheel task cannot set task values).",
                depends_on=_depends(DRIFT_TASK, "performance"),
                notebook_task=NotebookTask(
                    notebook_path=GATE_NOTEBOOK,
                    base_parameters={"env": "${bundle.target}", "use_case": USE_CASE_ARG},
                ),
            ),
            Task(
                task_key="retrain_needed",
                description=f'True when {GATE_TASK} published {RETRAIN_TASK_VALUE} = "true".',
                depends_on=_depends(GATE_TASK),
                condition_task=ConditionTask(
                    left=f"{{{{tasks.{GATE_TASK}.values.{RETRAIN_TASK_VALUE}}}}}",
                    op=ConditionTaskOp.EQUAL_TO,
                    right="true",
                ),
            ),
            Task(
                task_key="retrain",
                description=f"Run {job_key(name, 'training')}, only when the gate asks for it.",
                depends_on=_depends("retrain_needed", outcome="true"),
                run_job_task=RunJobTask(
                    job_id=f"${{resources.jobs.{job_key(name, 'training')}.id}}",
                    job_parameters={USE_CASE_PARAM: USE_CASE_ARG},
                ),
            ),
        ]
    # The page a person reads (logged to MLflow), whatever the gate decides.
    tasks.append(_wheel_task("report", "fh-report", depends_on=_depends(DRIFT_TASK, "performance")))
    summary = "Score with the champion model, measure feature drift and performance"
    summary += "; retrain on drift or a performance drop." if retrain else "."
    return _use_case_job(
        use_case,
        "monitoring",
        summary=summary,
        timeout_seconds=7200,
        schedule=CronSchedule(quartz_cron_expression=DAILY, timezone_id=TIMEZONE),
        tasks=tasks,
    )


def bootstrap_job(use_cases: Mapping[str, UseCase]) -> Job:
    """Every use case's features, training and monitoring jobs once, in that order (use cases
    side by side): the first run of a fresh target, so that monitoring finds a champion."""
    tasks = []
    for name in use_cases:
        previous: str | None = None
        for kind in KINDS:
            key = job_key(name, kind)
            tasks.append(
                Task(
                    task_key=key,
                    description=f"Run {key} once.",
                    depends_on=_depends(previous) if previous else [],
                    run_job_task=RunJobTask(job_id=f"${{resources.jobs.{key}.id}}"),
                )
            )
            previous = key
    return _job(
        BOOTSTRAP,
        description="The first run of a new deployment: for every use case, its features,"
        " training and monitoring jobs in order.",
        parameters={},
        tags={"project": PACKAGE, "workflow": WORKFLOW_TAGS[BOOTSTRAP]},
        # Longer than the three jobs of one use case together (1 h + 2 h + 2 h).
        timeout_seconds=6 * 3600,
        tasks=tasks,
    )


def workflow_jobs(settings: Settings, use_cases: Mapping[str, UseCase]) -> dict[str, Job]:
    """The three jobs of each use case, keyed by resource key, in the use cases' order, and
    the bootstrap job."""
    jobs: dict[str, Job] = {}
    for name, use_case in use_cases.items():
        uc_settings = settings.use_case(name)
        retrain = uc_settings.drift.retrain_on_drift or uc_settings.performance.retrain_on_drop
        jobs[job_key(name, "features")] = features_job(use_case)
        jobs[job_key(name, "training")] = training_job(use_case)
        jobs[job_key(name, "monitoring")] = monitoring_job(use_case, retrain=retrain)
    if use_cases:
        jobs[BOOTSTRAP] = bootstrap_job(use_cases)
    return jobs


def _artifact_location() -> Location:
    """databricks.yml at its `artifacts:` line, where the wheel is declared."""
    lines = BUNDLE_FILE.read_text(encoding="utf-8").splitlines()
    line = next((n for n, text in enumerate(lines, 1) if text.startswith("artifacts:")), 1)
    return Location(file=str(BUNDLE_FILE), line=line, column=1)


def _resolve_from_bundle_root(resources: Resources, key: str, job: Job) -> None:
    """Make the CLI resolve the job's wheel path from the bundle root, whatever its version.

    The CLI resolves a relative path from the folder of the file its value is "located" in.
    Values defined in Python are located in the Python file that added them (jobs/), except
    the paths the CLI keeps at its virtual `<bundle root>/__generated_by_python__.yml`:
    notebook and file paths always, environment dependencies only in some CLI versions.
    Locating each dependency in databricks.yml, at the bundle root, makes `dist/*.whl` mean
    `<bundle root>/dist/*.whl` in every version.
    """
    location = _artifact_location()
    for e, environment in enumerate(job.environments):
        for d, _ in enumerate(environment.spec.dependencies if environment.spec else []):
            path = ("resources", "jobs", key, f"environments[{e}]", "spec", f"dependencies[{d}]")
            resources.add_location(path, location)


def load_resources(bundle: Bundle) -> Resources:
    """The jobs of every use case enabled in the target's environment (`conf/<target>.yml`)."""
    resources = Resources()
    try:
        settings = load_settings(bundle.target)
        use_cases = load_use_cases(settings)
    except ConfigError as exc:
        resources.add_diagnostic_error(str(exc))
        return resources
    for key, job in workflow_jobs(settings, use_cases).items():
        resources.add_job(key, job)
        _resolve_from_bundle_root(resources, key, job)
    if not settings.enabled_use_cases:
        resources.add_diagnostic_warning(
            f"no use case is enabled for environment {bundle.target!r}: the bundle has no job"
        )
    return resources
