"""The short summary `make demo` ends with: a few lines per use case."""

from __future__ import annotations

from collections.abc import Sequence

from featurehouse.config import Settings
from featurehouse.jobs import PipelineOutcome, lakehouse
from featurehouse.usecase import Anomaly, UseCase


def table_row_counts(settings: Settings, use_case: UseCase) -> dict[str, int]:
    lake = lakehouse(settings, use_case)
    return {lake.name(k): lake.read(k).count() for k in lake.table_keys()}


def _metrics(values: dict[str, float]) -> str:
    shown = {k: v for k, v in values.items() if k not in ("rows", "positive_rate", "mean_actual")}
    return ", ".join(f"{k} {v:.3f}" for k, v in shown.items())


def use_case_summary(settings: Settings, use_case: UseCase, outcome: PipelineOutcome) -> list[str]:
    lines = [f"--- {use_case.name}: {use_case.description}"]
    if outcome.skipped:
        return [*lines, f"  skipped: {outcome.skipped}"]
    counts = table_row_counts(settings, use_case)
    lines.append(
        "  rows: " + ", ".join(f"{name.split('.')[-1]} {n:,d}" for name, n in counts.items())
    )
    latest, validation = outcome.training[-1], outcome.validation[-1]
    test_rows = int(latest.test_metrics.get("rows", 0))
    lines.append(
        f"  model {latest.model.name} v{latest.model.version}: {latest.candidate} chosen from"
        f" {latest.trials} trials on {latest.promotion_metric}; on {test_rows:,d} test rows:"
        f" {_metrics(latest.test_metrics)}"
    )
    lines.append(f"  baseline ({latest.baseline}), same rows: {_metrics(latest.baseline_metrics)}")
    if len(latest.candidate_metrics) > 1:
        metric = latest.promotion_metric
        lines.append(
            f"  candidates, same rows, {metric}: "
            + ", ".join(f"{c} {m[metric]:.3f}" for c, m in latest.candidate_metrics.items())
        )
    for segmentation in latest.segmentations:
        lines.append(
            f"  segments ({segmentation.table}) v{segmentation.model.version}:"
            f" {segmentation.entities:,d} entities at {segmentation.fitted_at:%Y-%m-%d}, sizes"
            f" {'/'.join(map(str, segmentation.sizes))}, silhouette {segmentation.silhouette:.2f}"
        )
    lines.append(f"  validation: {validation.verdict}; champion is v{validation.champion_version}")
    if outcome.stopped:
        return [*lines, f"  stopped: {outcome.stopped}"]
    scoring = outcome.scoring
    lines.append(f"  scored {scoring.entities:,d} entities with v{scoring.model_version}")
    if isinstance(use_case.task, Anomaly):
        lines.append(
            f"  anomaly events: {scoring.events:,d} in the table, {len(scoring.new_events):,d}"
            " new (each raised as an alert)"
        )
    drift = outcome.drift
    drifted = ", ".join(drift.drifted_columns[:5])
    more = f" and {len(drift.drifted_columns) - 5} more" if len(drift.drifted_columns) > 5 else ""
    lines.append(
        f"  drift {drift.window_start:%Y-%m-%d %H:%M} .. {drift.window_end:%Y-%m-%d %H:%M}:"
        f" {drift.summary}" + (f" ({drifted}{more})" if drifted else "")
    )
    if outcome.performance is not None:
        lines.append(f"  performance: {outcome.performance.verdict}")
        lines.append(f"  operations: {outcome.performance.operations}")
    if outcome.report is not None:
        lines.append(f"  report: {outcome.report.path}")
    if len(outcome.training) > 1:
        lines.append(f"  retrained after drift: v{latest.model.version}")
    online = outcome.online or {}
    entity = ", ".join(f"{k}={v}" for k, v in (outcome.online_entity or {}).items())
    first = [t.feature_names[0] for t in use_case.tables]
    values = ", ".join(f"{name} {online.get(name, [None])[0]}" for name in first)
    lines.append(f"  online ({entity}): {values}")
    if outcome.served is not None:
        lines.append(f"  service ({entity}): {served_text(use_case, outcome.served)}")
    lines.append(
        "  step times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in outcome.seconds.items())
    )
    return lines


def served_text(use_case: UseCase, answer: dict) -> str:
    """E.g. "failure_probability 0.031 by v2, features 1.5 h old (ok)"."""
    value = answer.get(use_case.task.prediction)
    shown = "no prediction" if value is None else f"{use_case.task.prediction} {value:.3f}"
    age = answer.get("feature_age_seconds")
    old = "" if age is None else f", features {age / 3600:,.1f} h old"
    return f"{shown} by v{answer['model']['version']}{old} ({answer['status']})"


def pipeline_summary(
    settings: Settings, use_cases: Sequence[UseCase], outcomes: Sequence[PipelineOutcome]
) -> str:
    lines = ["", "=== featurehouse demo summary ==="]
    for use_case, outcome in zip(use_cases, outcomes, strict=True):
        lines += use_case_summary(settings, use_case, outcome)
    if settings.is_local:
        lines.append(
            "MLflow UI: .venv/bin/mlflow ui --backend-store-uri "
            f"{settings.mlflow.tracking_uri} --port 5000"
        )
    return "\n".join(lines)
