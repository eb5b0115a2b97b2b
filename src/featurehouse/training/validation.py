"""The promotion gate: a challenger becomes champion only if it passes every check.

As in Databricks' MLOps template (train, then validate, then deploy), validation is its
own job. Its checks, each logged to the challenger's run and as tags of its registry
version:

- `floors`: the test metrics reach the absolute floors in `conf/` (`validation.floors`);
- `beats_champion`: on the challenger's own test window, it beats the champion's
  predictions by `validation.min_improvement` in the promotion metric's direction;
- `signature`: the model reads exactly the use case's declared feature columns;
- `feature_references`: the features it was trained on are the feature service's now;
- `smoke_prediction`: the packaged model (pyfunc, as MLflow's tools load it) predicts a finite
  value for a few test rows.

Passed: `champion` moves to the challenger, recording who, when and why. A worse
challenger is never promoted.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.store.feast_store import feature_references, feature_store
from featurehouse.training.evaluate import (
    decision_threshold,
    input_columns,
    model_inputs,
    part_metrics,
    predict,
    promotion_metric,
)
from featurehouse.training.metrics import improvement
from featurehouse.training.registry import (
    CHALLENGER,
    CHAMPION,
    ModelVersionRef,
    make_champion,
    should_promote,
    version_with_alias,
)
from featurehouse.training.train import load_test_window
from featurehouse.usecase import LOWER_IS_BETTER, UseCase

log = logging.getLogger(__name__)

CHECKS = ("floors", "beats_champion", "signature", "feature_references", "smoke_prediction")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ValidationResult:
    use_case: str
    model: ModelVersionRef
    checks: list[Check]
    promoted: bool
    champion_version: str | None  # after the step

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def verdict(self) -> str:
        failed = [c.name for c in self.checks if not c.passed]
        if failed:
            return f"refused version {self.model.version}: {', '.join(failed)} failed"
        if self.promoted:
            return f"promoted version {self.model.version} to champion"
        return f"version {self.model.version} passed; it is already the champion"


def floors_check(metrics: dict[str, float], floors: dict[str, float]) -> Check:
    """Every configured floor reached: at least it for a score, at most it for an error."""
    missed = []
    for metric, floor in sorted(floors.items()):
        value = metrics.get(metric, float("nan"))
        worse = value > floor if metric in LOWER_IS_BETTER else value < floor
        if value != value or worse:
            missed.append(f"{metric} {value:.4f} vs floor {floor}")
    if missed:
        return Check("floors", False, "; ".join(missed))
    shown = ", ".join(f"{m} {metrics[m]:.4f} >= {f}" for m, f in sorted(floors.items()))
    return Check("floors", True, shown or "no floors configured")


def champion_check(
    metric: str, challenger: float, champion: float | None, min_improvement: float
) -> Check:
    if champion is None:
        return Check("beats_champion", True, "no champion to beat yet")
    passed = should_promote(metric, challenger, champion, min_improvement)
    gain = improvement(metric, challenger, champion)
    return Check(
        "beats_champion",
        passed,
        f"{metric} {challenger:.4f} vs champion {champion:.4f} (better by {gain:+.4f};"
        f" needed more than {min_improvement})",
    )


def columns_check(name: str, actual: list[str], expected: list[str]) -> Check:
    if actual == expected:
        return Check(name, True, f"{len(expected)} columns as declared")
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    detail = f"missing {missing}, unexpected {extra}" if missing or extra else "other order"
    return Check(name, False, detail)


def validate(
    settings: Settings,
    use_case: UseCase,
    version: str | None = None,
    *,
    reason: str = "passed the validation step",
) -> ValidationResult:
    """Check a version (default: the challenger) and promote it if it passes."""
    client = MlflowClient()
    name = settings.model_name(use_case.name, use_case.model_name)
    candidate = _version(client, name, version)
    run = client.get_run(candidate.run_id)
    uc_settings = settings.use_case(use_case.name)
    metric = promotion_metric(use_case, uc_settings)
    test = load_test_window(candidate.run_id)
    expected = model_inputs(use_case, {}).columns
    test_metrics = {
        k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")
    }

    champion = version_with_alias(client, name, CHAMPION)
    champion_score = None
    if champion is not None and champion.version != candidate.version:
        champion_score = _score(champion, use_case, test, metric)
    checks = [
        floors_check(test_metrics, uc_settings.validation.floors),
        champion_check(
            metric,
            test_metrics.get(metric, float("nan")),
            champion_score,
            uc_settings.validation.min_improvement,
        ),
        columns_check("signature", _signature_columns(candidate), expected),
        columns_check(
            "feature_references",
            _trained_references(candidate),
            feature_references(feature_store(settings), settings.feature_service(use_case.name)),
        ),
        _smoke(candidate, as_signature_types(test[expected].head(5), use_case)),
    ]
    promoted = False
    passed = all(c.passed for c in checks)
    if passed and (champion is None or champion.version != candidate.version):
        make_champion(client, candidate, reason=reason)
        promoted = True
    _record(client, candidate, checks)
    after = version_with_alias(client, name, CHAMPION)
    result = ValidationResult(
        use_case.name, candidate, checks, promoted, after.version if after else None
    )
    log.info("%s: %s", use_case.name, result.verdict)
    return result


def _version(client: MlflowClient, name: str, version: str | None) -> ModelVersionRef:
    if version is None:
        challenger = version_with_alias(client, name, CHALLENGER)
        if challenger is None:
            raise FeaturehouseError(f"no '{CHALLENGER}' version of model {name}: train one first")
        return challenger
    try:
        found = client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException:
        raise FeaturehouseError(f"model {name} has no version {version}") from None
    return ModelVersionRef(name, str(found.version), found.run_id)


def _score(champion: ModelVersionRef, use_case: UseCase, test, metric: str) -> float | None:
    """The champion's metric on the challenger's test window; None when it cannot read it
    (its features are gone), which the gate counts as nothing to beat."""
    model = mlflow.sklearn.load_model(champion.uri)
    try:
        predictions = predict(model, use_case.task, test[input_columns(model)])
    except (KeyError, AttributeError) as exc:
        log.warning("champion %s cannot score the test window (%s)", champion.version, exc)
        return None
    return part_metrics(use_case, test, predictions, decision_threshold(model))[metric]


def _signature_columns(version: ModelVersionRef) -> list[str]:
    info = mlflow.models.get_model_info(version.uri)
    return [] if info.signature is None else list(info.signature.inputs.input_names())


def _trained_references(version: ModelVersionRef) -> list[str]:
    logged = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/features.json")
    return list(logged["feature_references"])


def as_signature_types(rows, use_case: UseCase):
    """Numbers as doubles, as the logged signature declares them."""
    numeric = model_inputs(use_case, {}).numeric
    return rows.astype({c: "float64" for c in numeric})


def _smoke(version: ModelVersionRef, rows) -> Check:
    """A prediction through the packaged model, the way MLflow's tools load it."""
    try:
        output = np.asarray(mlflow.pyfunc.load_model(version.uri).predict(rows), dtype=float)
    except Exception as exc:  # any failure of the packaged model is the finding
        return Check("smoke_prediction", False, f"{type(exc).__name__}: {exc}")
    finite = output.shape[0] == len(rows) and bool(np.isfinite(output).all())
    return Check("smoke_prediction", finite, f"{len(rows)} rows -> output of shape {output.shape}")


def _record(client: MlflowClient, version: ModelVersionRef, checks: list[Check]) -> None:
    """Each check's result on the run (a metric and a JSON) and on the registry version."""
    status = "passed" if all(c.passed for c in checks) else "failed"
    with mlflow.start_run(run_id=version.run_id):
        mlflow.log_metrics({f"validation_{c.name}": float(c.passed) for c in checks})
        mlflow.log_dict(
            {"status": status, "checks": [asdict(c) for c in checks]}, "validation.json"
        )
    for check in checks:
        client.set_model_version_tag(
            version.name,
            version.version,
            f"validation_{check.name}",
            "pass" if check.passed else "fail",
        )
    client.set_model_version_tag(version.name, version.version, "validation_status", status)
