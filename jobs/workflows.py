"""The Databricks workflows of every enabled use case, generated from settings and declarations.

databricks.yml names `jobs.workflows:load_resources` under `python.resources`. On `databricks
bundle validate|deploy -t <target>` the CLI runs it in `.venv`, from the bundle root, and adds
the jobs it returns to the bundle. The target is the environment (`conf/<target>.yml`), and
each use case enabled there gets three jobs:

- `<use case>_features`: ingest -> features -> materialize, hourly;
- `<use case>_training`: train, on demand or when monitoring asks for it;
- `<use case>_monitoring`: score -> drift -> retrain (through `<use case>_training`) when
  fh-drift publishes the task value `drift_detected = "true"`, daily.

Every task runs a console script of the project wheel on serverless compute with
`--env ${bundle.target} --use-case <name>`. Nothing here names a use case: enabling, disabling
or installing one changes the jobs on the next deploy, with no YAML to copy.
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
    JobEnvironment,
    PythonWheelTask,
    QueueSettings,
    RunJobTask,
    Task,
    TaskDependency,
)

from featurehouse.config import Settings, load_settings
from featurehouse.discovery import load_use_cases
from featurehouse.monitoring.job import DRIFT_TASK_VALUE
from featurehouse.usecase import UseCase

PACKAGE = "featurehouse"
KINDS = ("features", "training", "monitoring")
# The `workflow` tag keeps the values of the hand-written jobs, so cost reports and
# dashboards grouped by it carry on.
WORKFLOW_TAGS = {"features": "feature_pipeline", "training": "training", "monitoring": "monitoring"}

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

DRIFT_TASK = "drift"


def job_key(use_case: str, kind: str) -> str:
    """The stable resource key of a use case's job: renaming it would redeploy a new job."""
    return f"{use_case}_{kind}"


def _wheel_task(
    use_case: str,
    task_key: str,
    entry_point: str,
    *,
    after: str | None = None,
    retry: bool = False,
) -> Task:
    # A retry a minute later rides out a transient error; as in the hand-written jobs, only
    # ingest and materialize retry.
    retries = {"max_retries": 1, "min_retry_interval_millis": 60_000} if retry else {}
    return Task(
        task_key=task_key,
        depends_on=[TaskDependency(task_key=after)] if after else [],
        environment_key=ENVIRONMENT_KEY,
        python_wheel_task=PythonWheelTask(
            package_name=PACKAGE,
            entry_point=entry_point,
            parameters=["--env", "${bundle.target}", "--use-case", use_case],
        ),
        **retries,
    )


def _job(
    use_case: UseCase,
    kind: str,
    *,
    summary: str,
    tasks: list[Task],
    timeout_seconds: int,
    schedule: CronSchedule | None = None,
    queue: QueueSettings | None = None,
) -> Job:
    """What every job shares: name, tags, the wheel's serverless environment, one run at a time."""
    return Job(
        name=f"{PACKAGE}-{use_case.name}-{kind}-${{bundle.target}}",
        description=f"{summary} Use case {use_case.name}: {use_case.description}".rstrip(": "),
        max_concurrent_runs=1,
        timeout_seconds=timeout_seconds,
        schedule=schedule,
        queue=queue,
        tags={"project": PACKAGE, "workflow": WORKFLOW_TAGS[kind], "use_case": use_case.name},
        # Spark and Delta come from the platform: the environment installs the wheel only.
        environments=[
            JobEnvironment(
                environment_key=ENVIRONMENT_KEY,
                spec=Environment(environment_version=ENVIRONMENT_VERSION, dependencies=[WHEEL]),
            )
        ],
        tasks=tasks,
    )


def features_job(use_case: UseCase) -> Job:
    """Hourly: land raw files in bronze, compute the feature tables, push them online."""
    name = use_case.name
    return _job(
        use_case,
        "features",
        summary="Ingest the raw files, build the feature tables and materialize them online.",
        timeout_seconds=3600,
        schedule=CronSchedule(quartz_cron_expression=HOURLY, timezone_id=TIMEZONE),
        tasks=[
            _wheel_task(name, "ingest", "fh-ingest", retry=True),
            _wheel_task(name, "features", "fh-features", after="ingest"),
            _wheel_task(name, "materialize", "fh-materialize", after="features", retry=True),
        ],
    )


def training_job(use_case: UseCase) -> Job:
    """Train a challenger on point-in-time features; promote it if it beats the champion."""
    return _job(
        use_case,
        "training",
        summary="Train a model from the feature store and promote it when it beats the champion.",
        timeout_seconds=7200,
        # A drift-triggered run waits for a running one instead of being skipped.
        queue=QueueSettings(enabled=True),
        tasks=[_wheel_task(use_case.name, "train", "fh-train")],
    )


def monitoring_job(use_case: UseCase, *, retrain_on_drift: bool = True) -> Job:
    """Daily: score with the champion, measure drift and, if asked to, retrain on drift.

    With `retrain_on_drift` off (the use case's `drift.retrain_on_drift` setting, which the
    local pipeline honours too) the job only scores and reports drift.
    """
    name = use_case.name
    tasks = [
        _wheel_task(name, "score", "fh-score"),
        _wheel_task(name, DRIFT_TASK, "fh-drift", after="score"),
    ]
    if retrain_on_drift:
        tasks += [
            Task(
                task_key="drift_detected",
                description=f'True when fh-drift published {DRIFT_TASK_VALUE} = "true".',
                depends_on=[TaskDependency(task_key=DRIFT_TASK)],
                condition_task=ConditionTask(
                    left=f"{{{{tasks.{DRIFT_TASK}.values.{DRIFT_TASK_VALUE}}}}}",
                    op=ConditionTaskOp.EQUAL_TO,
                    right="true",
                ),
            ),
            Task(
                task_key="retrain",
                description=f"Run {job_key(name, 'training')}, only when drift was detected.",
                depends_on=[TaskDependency(task_key="drift_detected", outcome="true")],
                run_job_task=RunJobTask(
                    job_id=f"${{resources.jobs.{job_key(name, 'training')}.id}}"
                ),
            ),
        ]
    summary = "Score with the champion model and measure feature drift"
    summary += "; retrain when drift is detected." if retrain_on_drift else "."
    return _job(
        use_case,
        "monitoring",
        summary=summary,
        timeout_seconds=7200,
        schedule=CronSchedule(quartz_cron_expression=DAILY, timezone_id=TIMEZONE),
        tasks=tasks,
    )


def workflow_jobs(settings: Settings, use_cases: Mapping[str, UseCase]) -> dict[str, Job]:
    """The three jobs of each use case, keyed by resource key, in the use cases' order."""
    jobs: dict[str, Job] = {}
    for name, use_case in use_cases.items():
        retrain = settings.use_case(name).drift.retrain_on_drift
        jobs[job_key(name, "features")] = features_job(use_case)
        jobs[job_key(name, "training")] = training_job(use_case)
        jobs[job_key(name, "monitoring")] = monitoring_job(use_case, retrain_on_drift=retrain)
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
    settings = load_settings(bundle.target)
    resources = Resources()
    for key, job in workflow_jobs(settings, load_use_cases(settings)).items():
        resources.add_job(key, job)
        _resolve_from_bundle_root(resources, key, job)
    if not settings.enabled_use_cases:
        resources.add_diagnostic_warning(
            f"no use case is enabled for environment {bundle.target!r}: the bundle has no job"
        )
    return resources
