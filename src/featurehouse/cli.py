"""The `featurehouse` command: one subcommand per job, and `pipeline` to run them all in order.

Each job is also a console script (`fh-ingest`, `fh-train`, ...) for Databricks
`python_wheel_task`s. Commands only parse arguments, load settings, call library
functions and print a short result.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer

from featurehouse.config import ENVIRONMENTS, Settings, load_settings
from featurehouse.errors import FeaturehouseError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])

EnvOption = Annotated[
    str, typer.Option("--env", "-e", help=f"Environment: {', '.join(ENVIRONMENTS)}.")
]

FEAST_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("featurehouse").setLevel(logging.INFO)
    # Quiet the libraries' chatter so that the jobs' own one-line results stand out.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import feast  # noqa: F401 - installs warning filters at import; ours must come after

    warnings.filterwarnings("ignore", message=".*experimental feature in alpha development.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", module="sqlalchemy")


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


def _lake(settings: Settings):
    from featurehouse.io import Lakehouse
    from featurehouse.spark import get_spark

    lake = Lakehouse(get_spark(settings), settings)
    if settings.is_local:
        lake.register_tables()
    return lake


# --- jobs ------------------------------------------------------------------------


def run_simulate(settings: Settings, out_dir: Path | None = None) -> dict[str, Path]:
    from featurehouse.datagen.fleet import FleetSpec, simulate_fleet, write_raw_csv

    sim = settings.simulation
    spec = FleetSpec(machines=sim.machines, start=sim.start, days=sim.days, seed=sim.seed)
    return write_raw_csv(simulate_fleet(spec), out_dir or settings.storage.raw_dir)


def run_ingest(settings: Settings, input_dir: Path | None = None):
    from featurehouse.ingest import ingest_all

    return ingest_all(_lake(settings), input_dir or settings.storage.raw_dir)


def run_features(
    settings: Settings,
    *,
    full: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
):
    from featurehouse.features.build import build_feature_tables

    lake = _lake(settings)
    runs = build_feature_tables(lake, full=full, start=start, end=end)
    lake.register_tables()
    return runs


def run_apply(settings: Settings) -> list[str]:
    from featurehouse.store.feast_store import apply_definitions, feature_store

    return apply_definitions(feature_store(settings), settings)


def run_materialize(settings: Settings) -> list[str]:
    """Register the Feast definitions (idempotent), then fill the online store."""
    from featurehouse.store.feast_store import apply_definitions, feature_store, materialize

    lake = _lake(settings)  # Feast reads through the active, Delta-enabled session
    store = feature_store(settings)
    views = apply_definitions(store, settings)
    materialize(store, lake.spark, FEAST_EPOCH, datetime.now(UTC))
    return views


def run_train(settings: Settings):
    from featurehouse.training.train import train

    return train(_lake(settings), settings)


def run_rebuild_training_set(settings: Settings, run_id: str):
    from featurehouse.training.dataset import rebuild_training_set
    from featurehouse.training.registry import configure_mlflow

    lake = _lake(settings)
    configure_mlflow(settings)
    return rebuild_training_set(lake, run_id)


def run_score(settings: Settings):
    from featurehouse.scoring import score_fleet

    return score_fleet(_lake(settings), settings)


def run_drift(settings: Settings):
    from featurehouse.monitoring.job import detect_drift, publish_task_value

    report = detect_drift(_lake(settings), settings)
    publish_task_value("drift_detected", str(report.drifted).lower())
    return report


def run_online(settings: Settings, machine_ids: list[int]) -> dict:
    from featurehouse.store.feast_store import feature_store, online_features

    return online_features(feature_store(settings), settings, machine_ids)


# --- commands --------------------------------------------------------------------


@app.command()
@_friendly_errors
def simulate(
    env: EnvOption = "local",
    out: Annotated[Path | None, typer.Option(help="Folder for the raw CSV files.")] = None,
) -> None:
    """Write a simulated fleet's raw CSV files (Azure predictive-maintenance format)."""
    paths = run_simulate(load_settings(env), out)
    typer.echo(f"simulated fleet written to {next(iter(paths.values())).parent}")


@app.command()
@_friendly_errors
def ingest(
    env: EnvOption = "local",
    input: Annotated[Path | None, typer.Option(help="Folder of raw CSV files.")] = None,
) -> None:
    """Raw CSV files -> bronze Delta tables, with a quarantine for refused rows."""
    for r in run_ingest(load_settings(env), input):
        typer.echo(
            f"{r.table}: {r.rows_read} read = {r.accepted} accepted ({r.inserted} new)"
            f" + {r.quarantined} quarantined {r.quarantine_reasons or ''}"
        )
        for file, columns in r.ignored_columns.items():
            typer.echo(f"  warning: {file}: ignored unknown column(s) {', '.join(columns)}")


@app.command()
@_friendly_errors
def features(
    env: EnvOption = "local",
    full: Annotated[bool, typer.Option("--full", help="Recompute every row.")] = False,
    start: Annotated[
        datetime | None, typer.Option(help="Backfill rows from this time (UTC) on.")
    ] = None,
    end: Annotated[datetime | None, typer.Option(help="Backfill rows before this time.")] = None,
) -> None:
    """Bronze tables -> Delta feature tables: incremental by default, checked, idempotent."""
    for run in run_features(load_settings(env), full=full, start=start, end=end):
        typer.echo(
            f"{run.table}: {run.mode} ({run.reason}): {run.rows_computed} rows computed ="
            f" {run.rows_valid} valid ({run.inserted} new, {run.updated} changed)"
            f" + {run.rows_quarantined} quarantined"
        )
        for warning in run.warnings:
            typer.echo(f"  warning: {warning}")


@app.command()
@_friendly_errors
def apply(env: EnvOption = "local") -> None:
    """Register entities, feature views and the feature service in Feast."""
    typer.echo("registered feature views " + ", ".join(run_apply(load_settings(env))))


@app.command()
@_friendly_errors
def materialize(env: EnvOption = "local") -> None:
    """Load the newest features of every machine into the online store."""
    views = run_materialize(load_settings(env))
    typer.echo("materialized the online store: " + ", ".join(views))


@app.command()
@_friendly_errors
def train(env: EnvOption = "local") -> None:
    """Point-in-time training set -> model -> MLflow run, registry, champion/challenger."""
    result = run_train(load_settings(env))
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in result.test_metrics.items())
    typer.echo(
        f"model version {result.model.version} (run {result.run_id}): {metrics};"
        f" champion is version {result.champion_version}"
    )


@app.command()
@_friendly_errors
def score(env: EnvOption = "local") -> None:
    """Score every machine's newest features with the champion model."""
    r = run_score(load_settings(env))
    typer.echo(f"scored {r.machines} machines with model version {r.model_version}")


@app.command()
@_friendly_errors
def drift(env: EnvOption = "local") -> None:
    """Compare the newest window with the champion's training reference."""
    report = run_drift(load_settings(env))
    verdict = "DRIFT" if report.drifted else "no drift"
    typer.echo(f"{verdict}: drifted columns {report.drifted_columns or 'none'}")


@app.command()
@_friendly_errors
def online(
    machine_id: Annotated[list[int], typer.Option("--machine-id", "-m", help="Machine id(s).")],
    env: EnvOption = "local",
) -> None:
    """Read a machine's features from the online store."""
    values = run_online(load_settings(env), machine_id)
    for name, column in values.items():
        typer.echo(f"{name}: {column}")


training_set_app = typer.Typer(no_args_is_help=True, help="Training sets of MLflow runs.")
app.add_typer(training_set_app, name="training-set")


@training_set_app.command("rebuild")
@_friendly_errors
def rebuild_training_set(
    run_id: Annotated[str, typer.Option("--run-id", help="The MLflow run that trained on it.")],
    env: EnvOption = "local",
    output: Annotated[
        Path | None, typer.Option(help="Write the rebuilt set as Parquet here.")
    ] = None,
) -> None:
    """Rebuild a run's training set exactly, through Delta time travel."""
    frame = run_rebuild_training_set(load_settings(env), run_id)
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
    simulate_data: Annotated[
        bool, typer.Option("--simulate/--no-simulate", help="Write a simulated fleet first.")
    ] = True,
) -> None:
    """Run every job in order: simulate, ingest, features, apply, materialize, train, score, drift."""
    from featurehouse.summary import pipeline_summary, run_pipeline

    settings = load_settings(env)
    outcome = run_pipeline(settings, simulate_data=simulate_data, step=typer.echo)
    typer.echo(pipeline_summary(settings, outcome))


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
score_entry = _entry("score")
drift_entry = _entry("drift")
