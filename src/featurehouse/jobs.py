"""One function per job, for one use case: the CLI, the wheel's entry points, the demo and
the tests all call these. Each loads nothing by itself: it is given the settings and the
use case's declaration, builds the use case's lakehouse, and calls the library.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featurehouse.config import Settings
from featurehouse.errors import (
    ConfigError,
    DataQualityError,
    FeaturehouseError,
    InputDataError,
)
from featurehouse.usecase import UseCase

log = logging.getLogger(__name__)

FEAST_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def lakehouse(settings: Settings, use_case: UseCase):
    """The use case's tables, on the session of this environment (locally, also queryable
    by name in SQL)."""
    from featurehouse.io import Lakehouse
    from featurehouse.spark import get_spark

    lake = Lakehouse(get_spark(settings), settings, use_case.name)
    if settings.is_local:
        lake.register_tables()
    return lake


def simulate(settings: Settings, use_case: UseCase, out_dir: Path | None = None) -> Path:
    """Write the use case's simulated raw files (to its raw folder by default)."""
    if use_case.simulator is None:
        raise FeaturehouseError(f"use case {use_case.name} has no simulator")
    values = settings.use_case(use_case.name).simulation
    try:
        spec = use_case.simulator.spec(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"conf/use_cases/{use_case.name}.yml: bad simulation settings {dict(values)}: {exc}"
        ) from None
    target = out_dir or settings.raw_dir(use_case.name)
    use_case.simulator.write(spec, target)
    return target


def has_raw_files(settings: Settings, use_case: UseCase, input_dir: Path | None = None) -> bool:
    folder = input_dir or settings.raw_dir(use_case.name)
    return folder.is_dir() and any(any(folder.glob(d.pattern)) for d in use_case.datasets)


def ingest(settings: Settings, use_case: UseCase, input_dir: Path | None = None):
    from featurehouse.ingest import ingest_use_case

    folder = input_dir or settings.raw_dir(use_case.name)
    return ingest_use_case(lakehouse(settings, use_case), use_case, folder)


def features(
    settings: Settings,
    use_case: UseCase,
    *,
    full: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
):
    from featurehouse.features.build import build_feature_tables
    from featurehouse.monitoring.alerts import quality_alerts

    lake = lakehouse(settings, use_case)
    try:
        runs = build_feature_tables(lake, use_case, full=full, start=start, end=end)
    except DataQualityError as exc:
        alert(settings, use_case, quality_alerts(use_case.name, [str(exc)], "critical"))
        raise
    lake.register_tables()
    warned = [
        f"{run.table}: {warning} (sources {run.source_versions})"
        for run in runs
        for warning in run.warnings
    ]
    alert(settings, use_case, quality_alerts(use_case.name, warned, "warning"))
    return runs


def alert(settings: Settings, use_case: UseCase, alerts: Sequence) -> list:
    """Record, log and post the alerts not raised before (`featurehouse.monitoring.alerts`)."""
    from featurehouse.monitoring.alerts import raise_alerts

    return raise_alerts(lakehouse(settings, use_case), alerts, settings.alerts.url())


def apply(settings: Settings, use_case: UseCase) -> list[str]:
    from featurehouse.store.feast_store import apply_definitions, feature_store

    return apply_definitions(feature_store(settings), settings, use_case)


def materialize(settings: Settings, use_case: UseCase, *, full: bool = False) -> list:
    """Register the use case's Feast definitions (idempotent), then bring the online store
    up to the feature tables' current versions: every entity's newest row the first time
    (or with `full`), else only the entities whose newest row changed since.

    Returns one `featurehouse.store.online.ViewMaterialization` per view."""
    from featurehouse.store.feast_store import apply_definitions, feature_store
    from featurehouse.store.online import materialize_online

    lake = lakehouse(settings, use_case)
    apply_definitions(feature_store(settings), settings, use_case)
    return materialize_online(lake, settings, use_case, full=full)


def train(settings: Settings, use_case: UseCase):
    from featurehouse.training.train import train as train_model

    return train_model(lakehouse(settings, use_case), settings, use_case)


def validate(settings: Settings, use_case: UseCase, version: str | None = None):
    """The promotion gate: check the challenger (or `version`), promote it if it passes."""
    from featurehouse.training.registry import configure_mlflow
    from featurehouse.training.validation import validate as validate_version

    configure_mlflow(settings, use_case.name)
    return validate_version(settings, use_case, version)


def model_history(settings: Settings, use_case: UseCase):
    from featurehouse.training.lifecycle import history
    from featurehouse.training.registry import configure_mlflow

    configure_mlflow(settings, use_case.name)
    return history(settings, use_case)


def promote(settings: Settings, use_case: UseCase, version: str, reason: str):
    from featurehouse.training.lifecycle import promote as promote_version
    from featurehouse.training.registry import configure_mlflow

    configure_mlflow(settings, use_case.name)
    return promote_version(settings, use_case, version, reason)


def rollback(settings: Settings, use_case: UseCase, reason: str):
    from featurehouse.training.lifecycle import rollback as roll_back
    from featurehouse.training.registry import configure_mlflow

    configure_mlflow(settings, use_case.name)
    return roll_back(settings, use_case, reason)


def rebuild_training_set(settings: Settings, use_case: UseCase, run_id: str):
    from featurehouse.training.dataset import rebuild_training_set as rebuild
    from featurehouse.training.registry import configure_mlflow

    lake = lakehouse(settings, use_case)
    configure_mlflow(settings)
    return rebuild(lake, use_case, run_id)


def score(settings: Settings, use_case: UseCase):
    """Batch scoring, after checking that every feature table keeps up with its data (a
    stale one raises an alert); an anomaly use case's new events are raised as alerts."""
    from featurehouse.monitoring.alerts import anomaly_alerts
    from featurehouse.monitoring.freshness import stale_feature_alerts
    from featurehouse.scoring import score as score_entities

    lake = lakehouse(settings, use_case)
    now = datetime.now(UTC).replace(tzinfo=None)
    alert(
        settings,
        use_case,
        stale_feature_alerts(lake, use_case.tables, now, settings.quality.max_staleness),
    )
    result = score_entities(lake, settings, use_case)
    alert(settings, use_case, anomaly_alerts(use_case.name, use_case.keys, result.new_events))
    return result


def drift(settings: Settings, use_case: UseCase):
    from featurehouse.monitoring.alerts import drift_alerts
    from featurehouse.monitoring.job import detect_drift

    report = detect_drift(lakehouse(settings, use_case), settings, use_case)
    alert(settings, use_case, drift_alerts(report))
    return report


def report(settings: Settings, use_case: UseCase, out: Path | None = None):
    """The monitoring report: a self-contained HTML page, also logged to MLflow."""
    from featurehouse.monitoring.report import write_report

    return write_report(lakehouse(settings, use_case), settings, use_case, out)


def retrain_gate(settings: Settings, use_case: UseCase):
    """Whether the newest drift and performance results ask for a new model (a
    RetrainDecision), published as the task value `retrain` on Databricks."""
    from featurehouse.monitoring.gate import (
        RETRAIN_TASK_VALUE,
        publish_task_value,
        retrain_decision,
    )

    decision = retrain_decision(lakehouse(settings, use_case), settings, use_case)
    publish_task_value(RETRAIN_TASK_VALUE, str(decision.retrain).lower())
    return decision


def performance(settings: Settings, use_case: UseCase):
    """The champion's (and earlier versions') metrics where the labels have arrived."""
    from featurehouse.monitoring.alerts import performance_alerts
    from featurehouse.monitoring.performance import monitor_performance

    report = monitor_performance(lakehouse(settings, use_case), settings, use_case)
    alert(settings, use_case, performance_alerts(report))
    return report


def export(settings: Settings, use_case: UseCase, out_dir: Path | None = None):
    """The champion as a self-contained ONNX bundle for edge devices, checked against
    scikit-learn before it is written (`featurehouse.export`). Returns an ExportResult."""
    from featurehouse.export import export_champion

    return export_champion(settings, use_case, out_dir)


def serve(
    settings: Settings, use_cases: Sequence[UseCase], overrides: Mapping[str, Any] | None = None
) -> None:
    """Run the prediction service until stopped (`featurehouse.serving`); `overrides` go
    over conf's `serving` settings."""
    from featurehouse.serving.server import serve as run
    from featurehouse.serving.settings import serving_settings

    run(settings, use_cases, serving_settings(settings, dict(overrides or {})))


def skew(settings: Settings, use_case: UseCase, *, url: str | None = None, sample: int = 20):
    """Online features and the service's prediction against the offline point-in-time
    features and the batch prediction, for a sample of entities (a SkewReport). `url`: a
    running service; None starts one in this process."""
    from featurehouse.serving.skew import check_skew

    return check_skew(lakehouse(settings, use_case), settings, use_case, url=url, sample=sample)


def load_inference_log(settings: Settings, use_case: UseCase):
    """Merge the service's pending inference log batches into the use case's table."""
    from featurehouse.serving.inference_log import load_inference_log as load

    return load(lakehouse(settings, use_case), settings, use_case)


def online(
    settings: Settings, use_case: UseCase, entity_rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """Online features as columns, keys first (None where an entity has none); see
    `online_rows` for each entity's status."""
    from featurehouse.store.online import online_columns

    return online_columns(use_case, online_rows(settings, use_case, entity_rows))


def online_rows(settings: Settings, use_case: UseCase, entity_rows: Sequence[Mapping[str, Any]]):
    """Each entity's online features, event times and status ("ok", "not found", or its
    missing or expired views), read directly from the online store."""
    from featurehouse.store.online import read_online

    return read_online(settings, use_case, [entity_row(use_case, row) for row in entity_rows])


def entity_row(use_case: UseCase, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entity's keys from `values`, typed as declared; a missing or unknown key, or a
    value of the wrong type, is one clear error."""
    keys = use_case.entity.keys
    unknown = sorted(set(values) - set(keys))
    missing = [k for k in keys if k not in values]
    if unknown or missing:
        raise FeaturehouseError(
            f"use case {use_case.name} identifies an entity by {', '.join(keys)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )
    row = {}
    for key, dtype in keys.items():
        try:
            row[key] = int(values[key]) if dtype == "bigint" else str(values[key])
        except ValueError:
            raise FeaturehouseError(f"{key} must be an integer, got {values[key]!r}") from None
    return row


def first_entity(settings: Settings, use_case: UseCase) -> dict[str, Any]:
    """The entity with the smallest keys in the spine's data set (for the demo's online read)."""
    lake = lakehouse(settings, use_case)
    keys = list(use_case.keys)
    row = lake.read(use_case.spine.source.name).select(*keys).orderBy(*keys).first()
    return {k: row[k] for k in keys}


# --- the whole pipeline ----------------------------------------------------------------------


@dataclass
class PipelineOutcome:
    """What the pipeline did for one use case."""

    use_case: str
    ingest: list = field(default_factory=list)
    features: list = field(default_factory=list)
    training: list = field(default_factory=list)
    validation: list = field(default_factory=list)
    scoring: object | None = None
    drift: object | None = None
    performance: object | None = None
    online: dict | None = None
    online_entity: dict | None = None
    report: object | None = None  # the monitoring report (a ReportResult)
    served: dict | None = None  # the prediction service's answer for online_entity
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None  # why the use case did not run (no raw data)
    stopped: str | None = None  # why it stopped before scoring (no champion)


def run_pipeline(
    settings: Settings,
    use_case: UseCase,
    *,
    simulate_data: bool = True,
    step: Callable[[str], None] = print,
) -> PipelineOutcome:
    """Every job in order for one use case: simulate (if it has a simulator), ingest,
    features, materialize, train, validate (promotes), score, drift, retrain and validate
    on drift or a performance drop, the monitoring report, one online read."""
    from featurehouse.monitoring.gate import decide

    outcome = PipelineOutcome(use_case.name)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = fn()
        outcome.seconds[name] = time.perf_counter() - started
        step(f"[{use_case.name}] {name:<11} {outcome.seconds[name]:6.1f} s")
        return result

    if simulate_data and use_case.simulator is not None:
        timed("simulate", lambda: simulate(settings, use_case))
    if not has_raw_files(settings, use_case):
        outcome.skipped = f"no raw files in {settings.raw_dir(use_case.name)}"
        step(f"[{use_case.name}] skipped: {outcome.skipped}")
        return outcome
    outcome.ingest = timed("ingest", lambda: ingest(settings, use_case))
    outcome.features = timed("features", lambda: features(settings, use_case))
    timed("materialize", lambda: materialize(settings, use_case))
    outcome.training.append(timed("train", lambda: train(settings, use_case)))
    outcome.validation.append(timed("validate", lambda: validate(settings, use_case)))
    if outcome.validation[-1].champion_version is None:
        # Nothing may score or be monitored until a version passes the gate.
        outcome.stopped = f"no champion: {outcome.validation[-1].verdict}"
        step(f"[{use_case.name}] {outcome.stopped}; scoring and monitoring skipped")
        return outcome
    outcome.scoring = timed("score", lambda: score(settings, use_case))
    outcome.drift = timed("drift", lambda: drift(settings, use_case))
    outcome.performance = timed("performance", lambda: performance(settings, use_case))
    uc_settings = settings.use_case(use_case.name)
    gate = decide(use_case.name, outcome.drift.drifted, outcome.performance.dropped, uc_settings)
    if gate.retrain:
        outcome.training.append(timed("retrain", lambda: train(settings, use_case)))
        outcome.validation.append(timed("revalidate", lambda: validate(settings, use_case)))
    outcome.report = timed("report", lambda: report(settings, use_case))
    outcome.online_entity = first_entity(settings, use_case)
    outcome.online = timed("online", lambda: online(settings, use_case, [outcome.online_entity]))
    return outcome


def run_pipelines(
    settings: Settings,
    use_cases: Sequence[UseCase],
    *,
    simulate_data: bool = True,
    step: Callable[[str], None] = print,
) -> list[PipelineOutcome]:
    """The pipeline of every use case in turn; one with no raw data is skipped, not failed."""
    outcomes = []
    for use_case in use_cases:
        try:
            outcomes.append(
                run_pipeline(settings, use_case, simulate_data=simulate_data, step=step)
            )
        except InputDataError as exc:
            raise InputDataError(f"{use_case.name}: {exc}") from None
    scored = [(uc, o) for uc, o in zip(use_cases, outcomes, strict=True) if o.scoring is not None]
    if scored:
        started = time.perf_counter()
        answers = predict_once(settings, [(uc, o.online_entity) for uc, o in scored])
        for uc, o in scored:
            o.served = answers[uc.name]
        seconds = time.perf_counter() - started
        step(f"[service] {'predict':<11} {seconds:6.1f} s (one entity per use case, over HTTP)")
    return outcomes


def predict_once(
    settings: Settings, entities: Sequence[tuple[UseCase, Mapping[str, Any]]]
) -> dict[str, dict]:
    """Start the prediction service in this process, ask it for one entity's prediction per
    use case, and stop it: each use case's answer for that entity."""
    from featurehouse.serving.server import post_json, running_service

    answers = {}
    with running_service(settings, [use_case for use_case, _ in entities]) as url:
        for use_case, entity in entities:
            status, body = post_json(
                f"{url}/v1/use-cases/{use_case.name}/predict", {"entities": [dict(entity)]}
            )
            if status != 200:
                raise FeaturehouseError(
                    f"{use_case.name}: the prediction service answered {status}: {body}"
                )
            answers[use_case.name] = {"model": body["model"], **body["predictions"][0]}
    return answers
