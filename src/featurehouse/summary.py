"""The whole pipeline in order, and the short summary `make demo` ends with."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from featurehouse.config import Settings
from featurehouse.features import FEATURE_TABLES


@dataclass
class PipelineOutcome:
    ingest: list = field(default_factory=list)
    training: list = field(default_factory=list)
    scoring: object | None = None
    drift: object | None = None
    online: dict | None = None
    online_machine: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_pipeline(
    settings: Settings, *, simulate_data: bool, step: Callable[[str], None] = print
) -> PipelineOutcome:
    from featurehouse import cli

    outcome = PipelineOutcome()

    def timed(name: str, fn: Callable[[], object]) -> object:
        step(f"[{name}] ...")
        started = time.perf_counter()
        result = fn()
        outcome.seconds[name] = time.perf_counter() - started
        step(f"[{name}] done in {outcome.seconds[name]:.1f} s")
        return result

    if simulate_data:
        timed("simulate", lambda: cli.run_simulate(settings))
    outcome.ingest = timed("ingest", lambda: cli.run_ingest(settings))
    timed("features", lambda: cli.run_features(settings))
    timed("materialize", lambda: cli.run_materialize(settings))
    outcome.training.append(timed("train", lambda: cli.run_train(settings)))
    outcome.scoring = timed("score", lambda: cli.run_score(settings))
    outcome.drift = timed("drift", lambda: cli.run_drift(settings))
    if outcome.drift.drifted and settings.drift.retrain_on_drift:
        outcome.training.append(timed("retrain", lambda: cli.run_train(settings)))
    machine = _first_machine(settings)
    outcome.online_machine = machine
    outcome.online = timed("online", lambda: cli.run_online(settings, [machine]))
    return outcome


def _first_machine(settings: Settings) -> int:
    from featurehouse.io import Lakehouse
    from featurehouse.spark import get_spark

    lake = Lakehouse(get_spark(settings), settings)
    return int(lake.read("machines").agg({"machine_id": "min"}).collect()[0][0])


def table_row_counts(settings: Settings) -> dict[str, int]:
    from featurehouse.io import Lakehouse
    from featurehouse.spark import get_spark

    lake = Lakehouse(get_spark(settings), settings)
    keys = type(settings.tables).model_fields
    return {lake.name(k): lake.read(k).count() for k in keys if lake.exists(k)}


def pipeline_summary(settings: Settings, outcome: PipelineOutcome) -> str:
    latest = outcome.training[-1]
    lines = ["", "=== featurehouse demo summary ===", "Rows per table:"]
    lines += [f"  {name:45s} {rows:>10,d}" for name, rows in table_row_counts(settings).items()]
    metrics = dict(latest.test_metrics)
    test_rows = int(metrics.pop("rows"))
    lines.append(
        f"Model {latest.model.name} version {latest.model.version}, on {test_rows:,d} test rows:"
    )
    lines += [f"  {k:14s} {v:.3f}" for k, v in metrics.items()]
    lines.append(f"Champion: version {latest.champion_version}")
    drift = outcome.drift
    verdict = "DRIFT" if drift.drifted else "no drift"
    lines.append(
        f"Drift ({drift.window_start:%Y-%m-%d %H:%M} .. {drift.window_end:%Y-%m-%d %H:%M}): {verdict};"
        f" drifted columns: {', '.join(drift.drifted_columns) or 'none'}"
    )
    if len(outcome.training) > 1:
        lines.append(f"Retrained after drift: version {latest.model.version}")
    online = outcome.online or {}
    lines.append(f"Online features of machine {outcome.online_machine} (first of each view):")
    for table in FEATURE_TABLES:
        name = table.feature_names[0]
        lines.append(f"  {table.view_name + ':' + name:45s} {online.get(name, [None])[0]}")
    lines.append(f"Step times (s): {', '.join(f'{k} {v:.0f}' for k, v in outcome.seconds.items())}")
    if settings.is_local:
        lines.append(
            "MLflow UI: .venv/bin/mlflow ui --backend-store-uri "
            f"{settings.mlflow.tracking_uri} --port 5000"
        )
    return "\n".join(lines)
