"""Select, fit and evaluate the model of a use case on its training set, in pandas.

1. Split by time and/or entity (`training.split`).
2. Tune: every candidate with each sampled combination of its hyper-parameters is fitted
   on the train window and scored on the validation window (time-ordered, never the test
   window); the best by the promotion metric wins.
3. Refit the winner on train + validation (and, for the comparison table, every other
   candidate's best trial). A classifier's decision threshold is chosen on the validation
   window and travels inside the model (`FixedThresholdClassifier`, or the anomaly
   detector's own `threshold`).
4. Evaluate once on the test window: the winner, the other candidates, and a baseline on
   the same rows (the class prior for a classifier, the declared seasonal-naive feature
   for a regressor, the declared rule's feature for an anomaly detector).

An anomaly detector is fitted to the features alone: its label (known incident windows)
only chooses the threshold and evaluates, with the window metrics of
`training.anomaly_metrics` beside the row-level ones. Declared without a label, its
threshold is the configured share of fitted rows and every part is measured by what it
flags (`alarm_metrics`).

Pure functions of the frame, the declarations and the settings: no MLflow, no Spark. The
training job (`featurehouse.training.train`) logs and registers what these return.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import FixedThresholdClassifier

from featurehouse.config import UseCaseSettings
from featurehouse.errors import ConfigError, FeaturehouseError
from featurehouse.training.anomaly_metrics import alarm_metrics, window_metrics
from featurehouse.training.metrics import (
    best_f1_threshold,
    classification_metrics,
    improvement,
    regression_metrics,
)
from featurehouse.training.split import DataSplit, split_frame
from featurehouse.usecase import (
    EVENT_TIMESTAMP,
    Anomaly,
    Candidate,
    Classification,
    ModelInputs,
    Task,
    UseCase,
)

# The metric that selects and promotes when conf names none.
DEFAULT_PROMOTION_METRIC = {"classification": "pr_auc", "regression": "rmse", "anomaly": "pr_auc"}
UNLABELLED_PROMOTION_METRIC = "alarms_per_day"


def model_inputs(use_case: UseCase, params: dict[str, Any]) -> ModelInputs:
    """The feature columns in feature-service order: strings are categories, the rest numbers."""
    features = use_case.features
    return ModelInputs(
        numeric=tuple(f.name for f in features if f.dtype != "string"),
        categorical=tuple(f.name for f in features if f.dtype == "string"),
        params=params,
    )


def promotion_metric(use_case: UseCase, settings: UseCaseSettings) -> str:
    default = (
        UNLABELLED_PROMOTION_METRIC
        if use_case.label is None
        else DEFAULT_PROMOTION_METRIC[use_case.task.kind]
    )
    metric = settings.training.promotion_metric or default
    if metric not in use_case.metrics:
        kind = "unlabelled anomaly" if use_case.label is None else use_case.task.kind
        raise ConfigError(
            f"conf/use_cases/{use_case.name}.yml: training.promotion_metric {metric!r} is not"
            f" among the {kind} metrics; choose one of {', '.join(use_case.metrics)}"
        )
    return metric


def predict(model: Any, task: Task, features: pd.DataFrame) -> np.ndarray:
    """The task's prediction: the positive class's probability, or the forecast value."""
    if isinstance(task, Classification):
        return model.predict_proba(features)[:, 1]
    return np.asarray(model.predict(features), dtype=float)


def task_metrics(task: Task, labels: np.ndarray, predictions: np.ndarray, threshold: float | None):
    if isinstance(task, Classification):
        return classification_metrics(labels, predictions, threshold)
    return regression_metrics(labels, predictions)


def decision_threshold(model: Any) -> float | None:
    """A classifier's or detector's threshold, carried by the model itself; None for a
    regressor."""
    threshold = getattr(model, "threshold", None)
    return None if threshold is None else float(threshold)


def part_metrics(
    use_case: UseCase, part: pd.DataFrame, scores: np.ndarray, threshold: float | None
) -> dict[str, float]:
    """The task's metrics of `scores` on one part of the split; for an anomaly detector
    also whether each labelled window was found, and the false alarms; without a label,
    what it flags."""
    task = use_case.task
    if use_case.label is None:
        flagged = part[[*use_case.keys, EVENT_TIMESTAMP]].assign(
            _flag=(scores >= threshold).astype(int)
        )
        return alarm_metrics(flagged, use_case.keys, EVENT_TIMESTAMP, "_flag")
    label = use_case.label.name
    metrics = task_metrics(task, part[label].to_numpy(), scores, threshold)
    if isinstance(task, Anomaly):
        flagged = part[[*use_case.keys, EVENT_TIMESTAMP, label]].assign(
            _flag=(scores >= threshold).astype(int)
        )
        metrics |= window_metrics(flagged, use_case.keys, EVENT_TIMESTAMP, label, "_flag")
    return metrics


def labels_of(use_case: UseCase, part: pd.DataFrame) -> np.ndarray:
    """The label column of a part, empty when the use case declares no label."""
    return part[use_case.label.name].to_numpy() if use_case.label else np.array([])


def fit_model(
    estimator: Any, task: Task, rows: pd.DataFrame, columns: list[str], label: str | None
):
    """Fit on `rows`; an anomaly detector is given the features only, never the label."""
    if isinstance(task, Anomaly):
        return estimator.fit(rows[columns])
    return estimator.fit(rows[columns], rows[label])


def input_columns(model: Any) -> list[str]:
    """The feature columns a fitted model reads, in order."""
    inner = model.estimator_ if isinstance(model, FixedThresholdClassifier) else model
    return list(inner.feature_names_in_)


# --- tuning ------------------------------------------------------------------------------------


def parameter_sets(candidate: Candidate, settings: UseCaseSettings) -> list[dict[str, Any]]:
    """The hyper-parameters of each trial: the candidate's fixed ones from conf, plus one
    combination of its search space (conf's space replaces the declared one). At most
    `tuning.trials` combinations, sampled without replacement with the tuning seed."""
    fixed = dict(settings.models.get(candidate.name, {}))
    space = settings.tuning.space.get(candidate.name, candidate.space)
    names = sorted(space)
    grid = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(space[n] for n in names))
    ]
    if len(grid) > settings.tuning.trials:
        grid = random.Random(settings.tuning.seed).sample(grid, settings.tuning.trials)
    return [fixed | combination for combination in grid] or [fixed]


@dataclass(frozen=True)
class Trial:
    candidate: str
    params: dict[str, Any]
    validation_metrics: dict[str, float]
    score: float  # the promotion metric on the validation window


def better(metric: str, score: float, best: float | None) -> bool:
    if best is None or best != best:
        return score == score
    return score == score and improvement(metric, score, best) > 0


# --- the whole fit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The selected model and how it did: trials, metrics per part ("validation" of the
    winning trial, "test"), the baseline's metrics on the test window, and each
    candidate's (its best trial refitted like the winner) on the test window."""

    model: Any
    candidate: str
    inputs: ModelInputs
    split: DataSplit
    threshold: float | None
    trials: list[Trial]
    metrics: dict[str, dict[str, float]]
    test_predictions: np.ndarray
    baseline_name: str
    candidate_metrics: dict[str, dict[str, float]]

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.metrics["test"]

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return self.metrics["baseline_test"]


def fit_and_evaluate(
    use_case: UseCase, frame: pd.DataFrame, settings: UseCaseSettings, metric: str
) -> Evaluation:
    cfg = settings.training
    task, label = use_case.task, use_case.label
    split = split_frame(
        frame,
        use_case.split,
        keys=use_case.keys,
        validation_fraction=cfg.validation_fraction,
        test_fraction=cfg.test_fraction,
        gap=label.horizon if label else timedelta(0),
    )
    label = label.name if label else None
    check_parts(use_case, split)
    trials, best = [], {}  # best: candidate name -> (trial, candidate, inputs, threshold)
    for candidate in use_case.candidates:
        for params in parameter_sets(candidate, settings):
            inputs = model_inputs(use_case, params)
            model = fit_model(candidate.factory(inputs), task, split.train, inputs.columns, label)
            predictions = predict(model, task, split.validation[inputs.columns])
            threshold = _threshold(
                task, labels_of(use_case, split.validation), predictions, cfg.anomaly_threshold
            )
            metrics = part_metrics(use_case, split.validation, predictions, threshold)
            trial = Trial(candidate.name, params, metrics, metrics[metric])
            trials.append(trial)
            if candidate.name not in best or better(
                metric, trial.score, best[candidate.name][0].score
            ):
                best[candidate.name] = (trial, candidate, inputs, threshold)
    winner = None
    for name, (trial, *_) in best.items():
        if winner is None or better(metric, trial.score, best[winner][0].score):
            winner = name
    # Every candidate's best trial is refitted and measured on the test window, for the
    # comparison table; only the winner, chosen on validation, is kept.
    refit_rows = pd.concat([split.train, split.validation])
    candidate_metrics = {}
    for name, (trial, candidate, inputs, threshold) in best.items():
        model = _refit(candidate.factory(inputs), task, threshold, refit_rows, inputs, label)
        predictions = predict(model, task, split.test[inputs.columns])
        candidate_metrics[name] = part_metrics(use_case, split.test, predictions, threshold)
        if name == winner:
            kept = (model, inputs, threshold, predictions, trial)
    model, inputs, threshold, test_predictions, trial = kept
    baseline_name, baseline = baseline_metrics(use_case, split, cfg.anomaly_threshold)
    metrics = {
        "validation": trial.validation_metrics,
        "test": candidate_metrics[winner],
        "baseline_test": baseline,
    }
    return Evaluation(
        model, winner, inputs, split, threshold, trials, metrics, test_predictions,
        baseline_name, candidate_metrics,
    )  # fmt: skip


def _threshold(
    task: Task, labels: np.ndarray, predictions: np.ndarray, unlabelled: float
) -> float | None:
    """Best F1 on the validation window; for a detector whose validation window holds no
    labelled anomaly, the configured share of fitted rows (`anomaly_threshold`)."""
    if isinstance(task, Anomaly) and len(np.unique(labels)) < 2:
        return unlabelled
    return best_f1_threshold(labels, predictions) if isinstance(task, Classification) else None


def _refit(
    estimator: Any,
    task: Task,
    threshold: float | None,
    rows: pd.DataFrame,
    inputs: ModelInputs,
    label: str | None,
):
    """The winner fitted on train + validation, with its threshold inside."""
    if isinstance(task, Anomaly):
        estimator.set_params(threshold=threshold)
    elif threshold is not None:
        estimator = FixedThresholdClassifier(
            estimator, threshold=threshold, response_method="predict_proba"
        )
    return fit_model(estimator, task, rows, inputs.columns, label)


def baseline_metrics(
    use_case: UseCase, split: DataSplit, unlabelled_threshold: float
) -> tuple[str, dict[str, float]]:
    """The reference every metric is read against, on the test window: a classifier's class
    prior (the train window's positive rate for every row), a regressor's declared
    seasonal-naive feature (rows where it is known), or a detector's declared rule (the
    magnitude of a feature, such as a z-score, thresholded on the validation window). An
    unlabelled detector without a rule has no reference."""
    task = use_case.task
    if isinstance(task, Anomaly) and task.baseline is not None:

        def rule(part: pd.DataFrame) -> np.ndarray:
            return part[task.baseline].abs().fillna(0.0).to_numpy(dtype=float)

        validation = split.validation
        labels = labels_of(use_case, validation)
        if len(np.unique(labels)) < 2:
            threshold = float(np.quantile(rule(validation), unlabelled_threshold))
        else:
            threshold = best_f1_threshold(labels, rule(validation))
        return task.baseline, part_metrics(use_case, split.test, rule(split.test), threshold)
    if use_case.label is None:
        return "none declared", {}
    label = use_case.label.name
    if isinstance(task, Classification):
        prior = float(split.train[label].mean())
        scores = np.full(len(split.test), prior)
        return "class prior", classification_metrics(split.test[label].to_numpy(), scores, 0.5)
    if task.baseline is None:
        mean = float(split.train[label].mean())
        values = np.full(len(split.test), mean)
        return "train mean", regression_metrics(split.test[label].to_numpy(dtype=float), values)
    known = split.test[split.test[task.baseline].notna()]
    actual, forecast = (
        known[label].to_numpy(dtype=float),
        known[task.baseline].to_numpy(dtype=float),
    )
    return task.baseline, regression_metrics(actual, forecast)


def check_parts(use_case: UseCase, split: DataSplit) -> None:
    for name, part in split.parts().items():
        if part.empty:
            raise FeaturehouseError(
                f"{use_case.name}: the {name} split is empty; need more history (or entities)"
            )
    supervised = isinstance(use_case.task, Classification) and not isinstance(
        use_case.task, Anomaly
    )
    if supervised and split.train[use_case.label.name].nunique() < 2:
        raise FeaturehouseError(
            f"{use_case.name}: the train split holds one class only; need more history"
        )
