"""The `featurehouse` command: one subcommand per job, and `pipeline` to run them all in order.

Every job takes `--use-case NAME` (repeatable); without it, it runs for every enabled
use case. Each job is also a console script (`fh-ingest`, `fh-train`, ...) for Databricks
`python_wheel_task`s. Commands only parse arguments, load settings, call `featurehouse.jobs`
and print a short result.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer

from featurehouse.config import ENVIRONMENTS, Settings, load_settings
from featurehouse.errors import FeaturehouseError, NoChampionError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])

EnvOption = Annotated[
    str, typer.Option("--env", "-e", help=f"Environment: {', '.join(ENVIRONMENTS)}.")
]
UseCaseOption = Annotated[
    list[str] | None,
    typer.Option("--use-case", "-u", help="Use case (repeatable); default: every enabled one."),
]
LOG_FILE_ENV_VAR = "FEATUREHOUSE_LOG_FILE"


def _setup_logging() -> None:
    """The console shows the jobs' own lines; library logs and warnings go to a log file
    (`$FEATUREHOUSE_LOG_FILE`, default `.featurehouse/logs/featurehouse.log` in the project).
    On Databricks everything stays on the console: the job run's output is the log."""
    import mlflow  # noqa: F401 - configures its loggers at import; ours must come after
    from mlflow.utils.logging_utils import disable_logging

    from featurehouse.config import default_conf_dir
    from featurehouse.spark import running_on_databricks

    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler()
    console.setFormatter(formatter)
    ours = logging.getLogger("featurehouse")
    ours.setLevel(logging.INFO)
    if running_on_databricks():
        logging.basicConfig(level=logging.WARNING, handlers=[console], force=True)
        return
    log_file = Path(
        os.environ.get(LOG_FILE_ENV_VAR)
        or default_conf_dir().resolve().parent / ".featurehouse" / "logs" / "featurehouse.log"
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[to_file], force=True)
    # Our warnings and errors also reach the console.
    console.setLevel(logging.WARNING)
    ours.addHandler(console)
    for name in ("mlflow", "alembic", "sqlalchemy", "huey"):
        library = logging.getLogger(name)
        library.handlers = [to_file]
        library.setLevel(logging.WARNING)
    for name in ("py4j", "urllib3", "feast"):
        logging.getLogger(name).setLevel(logging.WARNING)
    disable_logging()  # MLflow's own prints ("Successfully registered model ...")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def _friendly_errors(command: Callable) -> Callable:
    """Known problems end with one message and exit code 2, not a stack trace."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FeaturehouseError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper


def _selected(settings: Settings, names: list[str] | None) -> Iterator:
    """The use cases named (or every enabled one), as declarations."""
    from featurehouse.discovery import load_use_cases

    yield from load_use_cases(settings, names or None).values()


# --- commands --------------------------------------------------------------------


@app.command("use-cases")
@_friendly_errors
def use_cases(env: EnvOption = "local") -> None:
    """List the use cases: entity, feature tables, task, model and where their data land."""
    from featurehouse.discovery import load_use_case
    from featurehouse.usecase import format_duration

    settings = load_settings(env)
    for name, uc_settings in settings.use_cases.items():
        uc = load_use_case(settings, name)
        keys = ", ".join(f"{k} {t}" for k, t in uc.entity.keys.items())
        state = "" if uc_settings.enabled else " (disabled)"
        typer.echo(f"{uc.name}{state}: {uc.description}")
        typer.echo(f"  entity     {uc.entity.name} ({keys})")
        typer.echo(f"  data sets  {', '.join(settings.table(name, d.name) for d in uc.datasets)}")
        typer.echo(f"  features   {', '.join(settings.table(name, t.name) for t in uc.tables)}")
        target = (
            f"of {uc.label.name} over {format_duration(uc.label.horizon)}"
            if uc.label
            else "without a label"
        )
        typer.echo(
            f"  task       {uc.task.kind} {target}, every {format_duration(uc.spine.every)}"
            " per entity"
        )
        typer.echo(f"  model      {settings.model_name(name, uc.model_name)}")
        typer.echo(f"  raw files  {settings.raw_dir(name)}")


@app.command()
@_friendly_errors
def simulate(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the raw files.")] = None,
) -> None:
    """Write simulated raw files for the use cases that have a simulator."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        if uc.simulator is None:
            typer.echo(f"{uc.name}: no simulator (its data are real files)")
            continue
        typer.echo(f"{uc.name}: simulated raw files written to {jobs.simulate(settings, uc, out)}")


@app.command()
@_friendly_errors
def ingest(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    input: Annotated[Path | None, typer.Option(help="Folder of raw files.")] = None,
) -> None:
    """Raw files -> bronze Delta tables, with a quarantine for refused rows."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        for r in jobs.ingest(settings, uc, input):
            if r.files == 0:
                typer.echo(f"{r.table}: no files, skipped")
                continue
            typer.echo(
                f"{r.table}: {r.rows_read} read = {r.accepted} accepted ({r.inserted} new,"
                f" {r.updated} updated) + {r.quarantined} quarantined"
                f" {r.quarantine_reasons or ''}"
            )
            for file, columns in r.ignored_columns.items():
                typer.echo(f"  warning: {file}: ignored unknown column(s) {', '.join(columns)}")


@app.command()
@_friendly_errors
def features(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute every row.")] = False,
    start: Annotated[
        datetime | None, typer.Option(help="Backfill rows from this time (UTC) on.")
    ] = None,
    end: Annotated[datetime | None, typer.Option(help="Backfill rows before this time.")] = None,
) -> None:
    """Bronze tables -> Delta feature tables: incremental by default, checked, idempotent."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        for run in jobs.features(settings, uc, full=full, start=start, end=end):
            typer.echo(
                f"{run.table}: {run.mode} ({run.reason}): {run.rows_computed} rows computed ="
                f" {run.rows_valid} valid ({run.inserted} new, {run.updated} changed)"
                f" + {run.rows_quarantined} quarantined"
            )
            for warning in run.warnings:
                typer.echo(f"  warning: {warning}")


@app.command()
@_friendly_errors
def apply(env: EnvOption = "local", use_case: UseCaseOption = None) -> None:
    """Register entities, feature views and feature services in Feast."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        typer.echo(f"{uc.name}: registered feature views {', '.join(jobs.apply(settings, uc))}")


@app.command()
@_friendly_errors
def materialize(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Write every entity, not only those that changed.")
    ] = False,
) -> None:
    """Load the newest features of the entities that changed into the online store."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        for view in jobs.materialize(settings, uc, full=full):
            typer.echo(f"{uc.name}: {view.describe()}")


@app.command()
@_friendly_errors
def train(env: EnvOption = "local", use_case: UseCaseOption = None) -> None:
    """Point-in-time training set -> model -> MLflow run, registry, champion/challenger."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        result = jobs.train(settings, uc)
        metric = result.promotion_metric
        typer.echo(
            f"{uc.name}: challenger version {result.model.version} (run {result.run_id}):"
            f" {result.candidate} after {result.trials} trials, test {metric}"
            f" {result.test_metrics[metric]:.4f} (baseline {result.baseline}:"
            f" {result.baseline_metrics[metric]:.4f})"
        )


@app.command()
@_friendly_errors
def validate(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    version: Annotated[
        str | None, typer.Option(help="The model version to check (default: the challenger).")
    ] = None,
) -> None:
    """The promotion gate: check the challenger and make it champion if it passes."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        result = jobs.validate(settings, uc, version)
        typer.echo(f"{uc.name}: {result.verdict}")
        for check in result.checks:
            typer.echo(f"  {'pass' if check.passed else 'FAIL'}  {check.name}: {check.detail}")


@app.command()
@_friendly_errors
def score(env: EnvOption = "local", use_case: UseCaseOption = None) -> None:
    """Score every entity's newest features with the champion model."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        try:
            r = jobs.score(settings, uc)
        except NoChampionError as exc:  # a first deployment: nothing promoted yet
            typer.echo(f"{uc.name}: skipped: {exc}")
            continue
        typer.echo(f"{uc.name}: scored {r.entities} entities with model version {r.model_version}")


@app.command()
@_friendly_errors
def drift(env: EnvOption = "local", use_case: UseCaseOption = None) -> None:
    """Compare the newest window with the champion's training reference."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        try:
            report = jobs.drift(settings, uc)
        except NoChampionError as exc:
            typer.echo(f"{uc.name}: skipped: {exc}")
            continue
        drifted = f" ({', '.join(report.drifted_columns)})" if report.drifted_columns else ""
        typer.echo(f"{uc.name}: {report.summary}{drifted}")


@app.command()
@_friendly_errors
def performance(env: EnvOption = "local", use_case: UseCaseOption = None) -> None:
    """Judge the predictions whose labels have arrived, per model version and window."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        typer.echo(f"{uc.name}: {jobs.performance(settings, uc).verdict}")


@app.command()
@_friendly_errors
def report(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the page (one use case only).")
    ] = None,
) -> None:
    """Write the monitoring report: drift, performance, quality and model versions as one
    HTML page (also logged to MLflow)."""
    from featurehouse import jobs

    settings = load_settings(env)
    chosen = list(_selected(settings, use_case))
    if out is not None and len(chosen) != 1:
        raise FeaturehouseError("--out writes one page: choose one use case with --use-case")
    for uc in chosen:
        typer.echo(jobs.report(settings, uc, out).describe())


def _parse_keys(values: list[str], key_names: list[str]) -> dict[str, str]:
    """`name=value` pairs; a bare value names the only key of a single-key entity."""
    parsed = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep:
            if len(key_names) != 1:
                raise FeaturehouseError(
                    f"give each key as name=value ({', '.join(key_names)}), not {value!r}"
                )
            name, text = key_names[0], value
        parsed[name.strip()] = text.strip()
    return parsed


@app.command()
@_friendly_errors
def online(
    key: Annotated[
        list[str], typer.Option("--key", "-k", help="An entity key as name=value (repeatable).")
    ],
    env: EnvOption = "local",
    use_case: Annotated[str, typer.Option("--use-case", "-u", help="The use case.")] = "",
) -> None:
    """Read one entity's features from the online store."""
    from featurehouse import jobs
    from featurehouse.discovery import load_use_case

    settings = load_settings(env)
    name = use_case or _only_use_case(settings)
    uc = load_use_case(settings, name)
    (row,) = jobs.online_rows(settings, uc, [_parse_keys(key, list(uc.keys))])
    entity = ", ".join(f"{k}={v}" for k, v in row.keys.items())
    if not row.found:
        typer.echo(
            f"{entity}: not found in the online store (unknown entity, or never materialized)"
        )
        return
    oldest = f"{row.oldest_event_timestamp:%Y-%m-%d %H:%M:%S} UTC"
    typer.echo(f"{entity}: {row.status}, features as of {oldest} (the oldest view's)")
    for name, value in {**row.keys, **row.features}.items():
        typer.echo(f"{name}: [{value!r}]")


@app.command()
@_friendly_errors
def serve(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    host: Annotated[str | None, typer.Option(help="Default: serving.host in conf.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: serving.port in conf.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Serve real-time predictions: POST /v1/use-cases/<name>/predict (docs at /docs)."""
    from featurehouse import jobs
    from featurehouse.serving.settings import serving_settings

    settings = load_settings(env)
    chosen = list(_selected(settings, use_case))
    given = {"host": host, "port": port, "workers": workers}
    overrides = {k: v for k, v in given.items() if v is not None}
    serving = serving_settings(settings, overrides)
    names = ", ".join(uc.name for uc in chosen)
    typer.echo(f"serving {names} on http://{serving.host}:{serving.port} (docs at /docs)")
    jobs.serve(settings, chosen, overrides)


@app.command("connect-server")
@_friendly_errors
def connect_server(
    env: EnvOption = "local",
    port: Annotated[int, typer.Option(help="Loopback port to listen on.")] = 15002,
) -> None:
    """Run pyspark's Spark Connect server here, with the local settings (Delta, UTC), until
    stopped; point the jobs at it with FEATUREHOUSE_SPARK_REMOTE=sc://127.0.0.1:<port>."""
    from featurehouse.spark import connect_server_command

    command = connect_server_command(load_settings(env), port)
    typer.echo(f"Spark Connect on sc://127.0.0.1:{port} (Ctrl-C stops it)")
    os.execve(command[0], command, {**os.environ, "PYSPARK_PYTHON": sys.executable})


@app.command()
@_friendly_errors
def skew(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    url: Annotated[
        str | None, typer.Option(help="A running service; default: start one here.")
    ] = None,
    sample: Annotated[int, typer.Option(help="Entities compared.")] = 20,
) -> None:
    """Check training/serving skew: online features and the service's prediction against
    the offline point-in-time features and the batch prediction. Exit 1 on a mismatch."""
    from featurehouse import jobs

    settings = load_settings(env)
    failed = False
    for uc in _selected(settings, use_case):
        try:
            report = jobs.skew(settings, uc, url=url, sample=sample)
        except NoChampionError as exc:
            typer.echo(f"{uc.name}: skipped: {exc}")
            continue
        typer.echo(report.describe())
        failed |= not report.ok
    if failed:
        raise typer.Exit(code=1)


@app.command("inference-log")
@_friendly_errors
def inference_log(env: EnvOption = "local", use_case: UseCaseOption = None) -> None:
    """Load the prediction service's inference log batches into each use case's table."""
    from featurehouse import jobs

    settings = load_settings(env)
    for uc in _selected(settings, use_case):
        typer.echo(jobs.load_inference_log(settings, uc).describe())


def _only_use_case(settings: Settings) -> str:
    names = settings.enabled_use_cases
    if len(names) != 1:
        raise FeaturehouseError(f"choose a use case with --use-case: {', '.join(names)}")
    return names[0]


EXPORT_FORMATS = ("onnx",)


@app.command()
@_friendly_errors
def export(
    env: EnvOption = "local",
    use_case: Annotated[str, typer.Option("--use-case", "-u", help="The use case.")] = "",
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(help="Bundle folder; default <storage root>/exports/<use case>/v<version>."),
    ] = None,
) -> None:
    """Export the champion for edge devices: ONNX model, features.json, standalone predict.py."""
    from featurehouse import jobs
    from featurehouse.discovery import load_use_case

    if fmt not in EXPORT_FORMATS:
        raise FeaturehouseError(
            f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}"
        )
    settings = load_settings(env)
    name = use_case or _only_use_case(settings)
    result = jobs.export(settings, load_use_case(settings, name), out)
    typer.echo(
        f"{name}: model {result.model_name} version {result.model_version} exported to"
        f" {result.out_dir} ({result.inputs} inputs; checked on {result.rows_checked} rows,"
        f" max |onnx - scikit-learn| {result.max_abs_diff:.1e})"
    )


model_app = typer.Typer(no_args_is_help=True, help="A use case's registered model versions.")
app.add_typer(model_app, name="model")
UseCaseName = Annotated[str, typer.Option("--use-case", "-u", help="The use case.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: recorded in the registry.")]


@model_app.command("history")
@_friendly_errors
def model_history(use_case: UseCaseName, env: EnvOption = "local") -> None:
    """Every version with its test metric and validation status, and every change of champion."""
    from datetime import UTC

    from featurehouse import jobs
    from featurehouse.discovery import load_use_case

    settings = load_settings(env)
    found = jobs.model_history(settings, load_use_case(settings, use_case))
    typer.echo(f"{found.model}:")
    for row in found.versions:
        created = datetime.fromtimestamp(row.created / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        value = "n/a" if row.test_value is None else f"{row.test_value:.4f}"
        aliases = f"  [{', '.join(row.aliases)}]" if row.aliases else ""
        typer.echo(
            f"  v{row.version}  {created}  test {row.metric} {value}  {row.validation}{aliases}"
        )
    for change in found.changes:
        typer.echo(
            f"  {change.at}  {change.action} v{change.version} by {change.by}: {change.reason}"
        )


@model_app.command("promote")
@_friendly_errors
def model_promote(
    use_case: UseCaseName,
    version: Annotated[str, typer.Option("--version", help="The version to promote.")],
    reason: ReasonOption = "promoted by hand",
    env: EnvOption = "local",
) -> None:
    """Make a version champion; it must pass the validation step's checks."""
    from featurehouse import jobs
    from featurehouse.discovery import load_use_case

    settings = load_settings(env)
    result = jobs.promote(settings, load_use_case(settings, use_case), version, reason)
    typer.echo(f"{use_case}: {result.verdict}")
    for check in result.checks:
        typer.echo(f"  {'pass' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    if not result.passed:
        raise typer.Exit(code=1)


@model_app.command("rollback")
@_friendly_errors
def model_rollback(use_case: UseCaseName, reason: ReasonOption, env: EnvOption = "local") -> None:
    """Move champion back to the previous champion version."""
    from featurehouse import jobs
    from featurehouse.discovery import load_use_case

    settings = load_settings(env)
    change = jobs.rollback(settings, load_use_case(settings, use_case), reason)
    typer.echo(
        f"{use_case}: champion is version {change.version} again (was {change.replaced});"
        f" recorded by {change.by} at {change.at}: {change.reason}"
    )


training_set_app = typer.Typer(no_args_is_help=True, help="Training sets of MLflow runs.")
app.add_typer(training_set_app, name="training-set")


@training_set_app.command("rebuild")
@_friendly_errors
def rebuild_training_set(
    run_id: Annotated[str, typer.Option("--run-id", help="The MLflow run that trained on it.")],
    use_case: Annotated[str, typer.Option("--use-case", "-u", help="The use case.")],
    env: EnvOption = "local",
    output: Annotated[
        Path | None, typer.Option(help="Write the rebuilt set as Parquet here.")
    ] = None,
) -> None:
    """Rebuild a run's training set exactly, through Delta time travel."""
    from featurehouse import jobs
    from featurehouse.discovery import load_use_case

    settings = load_settings(env)
    frame = jobs.rebuild_training_set(settings, load_use_case(settings, use_case), run_id)
    if output is not None:
        frame.write.mode("overwrite").parquet(str(output))
    typer.echo(
        f"rebuilt the training set of run {run_id}: {frame.count()} rows"
        + (f", written to {output}" if output else "")
    )


@app.command()
@_friendly_errors
def pipeline(
    env: EnvOption = "local",
    use_case: UseCaseOption = None,
    simulate_data: Annotated[
        bool, typer.Option("--simulate/--no-simulate", help="Write simulated raw files first.")
    ] = True,
) -> None:
    """Run every job in order for each use case: simulate, ingest, features, materialize,
    train, validate, score, drift (and retrain on drift)."""
    from featurehouse.jobs import run_pipelines
    from featurehouse.summary import pipeline_summary

    settings = load_settings(env)
    chosen = list(_selected(settings, use_case))
    outcomes = run_pipelines(settings, chosen, simulate_data=simulate_data, step=typer.echo)
    typer.echo(pipeline_summary(settings, chosen, outcomes))


def main() -> None:
    _setup_logging()
    app()


def _entry(command: str) -> Callable[[], None]:
    def entry() -> None:
        _setup_logging()
        app([command, *sys.argv[1:]])

    return entry


ingest_entry = _entry("ingest")
features_entry = _entry("features")
materialize_entry = _entry("materialize")
train_entry = _entry("train")
validate_entry = _entry("validate")
score_entry = _entry("score")
drift_entry = _entry("drift")
performance_entry = _entry("performance")
inference_log_entry = _entry("inference-log")
report_entry = _entry("report")
