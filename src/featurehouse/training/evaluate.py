"""Fit and evaluate: the model of a use case on its training set, in pandas.

Pure functions of the frame and the declarations: no MLflow, no Spark. The training job
(`featurehouse.training.train`) logs and registers what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from featurehouse.config import UseCaseSettings
from featurehouse.errors import ConfigError, FeaturehouseError
from featurehouse.training.metrics import (
    best_f1_threshold,
    classification_metrics,
    regression_metrics,
)
from featurehouse.training.split import DataSplit, split_frame
from featurehouse.usecase import Classification, ModelInputs, Task, UseCase

# The metric promotion uses when conf names none.
DEFAULT_PROMOTION_METRIC = {"classification": "pr_auc", "regression": "rmse"}


def model_inputs(use_case: UseCase, params: dict[str, Any]) -> ModelInputs:
    """The feature columns in feature-service order: strings are categories, the rest numbers."""
    features = use_case.features
    return ModelInputs(
        numeric=tuple(f.name for f in features if f.dtype != "string"),
        categorical=tuple(f.name for f in features if f.dtype == "string"),
        params=params,
    )


def promotion_metric(use_case: UseCase, settings: UseCaseSettings) -> str:
    metric = settings.training.promotion_metric or DEFAULT_PROMOTION_METRIC[use_case.task.kind]
    if metric not in use_case.task.metrics:
        raise ConfigError(
            f"conf/use_cases/{use_case.name}.yml: training.promotion_metric {metric!r} is not a"
            f" {use_case.task.kind} metric; choose one of {', '.join(use_case.task.metrics)}"
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


@dataclass(frozen=True)
class Evaluation:
    """A fitted model and how it did: metrics per part ("validation", "test"), and for a
    regression with a declared baseline the baseline's test metrics beside them."""

    model: Any
    inputs: ModelInputs
    split: DataSplit
    threshold: float | None  # the decision threshold of a classifier
    metrics: dict[str, dict[str, float]]
    test_predictions: np.ndarray

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.metrics["test"]


def fit_and_evaluate(
    use_case: UseCase, frame: pd.DataFrame, settings: UseCaseSettings
) -> Evaluation:
    """Split, fit on train, choose a classifier's threshold on validation, score validation
    and test (and the baseline on test)."""
    cfg = settings.training
    label = use_case.label.name
    split = split_frame(
        frame,
        use_case.split,
        keys=use_case.keys,
        validation_fraction=cfg.validation_fraction,
        test_fraction=cfg.test_fraction,
        gap=use_case.label.horizon,
    )
    check_parts(use_case, split)
    inputs = model_inputs(use_case, settings.model)
    model = use_case.model(inputs)
    columns = inputs.columns
    model.fit(split.train[columns], split.train[label])

    task = use_case.task
    validation_predictions = predict(model, task, split.validation[columns])
    threshold = None
    if isinstance(task, Classification):
        threshold = best_f1_threshold(split.validation[label].to_numpy(), validation_predictions)
    test_predictions = predict(model, task, split.test[columns])
    metrics = {
        "validation": task_metrics(
            task, split.validation[label].to_numpy(), validation_predictions, threshold
        ),
        "test": task_metrics(task, split.test[label].to_numpy(), test_predictions, threshold),
    }
    baseline = getattr(task, "baseline", None)
    if baseline is not None:
        known = split.test[split.test[baseline].notna()]
        metrics["baseline_test"] = regression_metrics(
            known[label].to_numpy(dtype=float), known[baseline].to_numpy(dtype=float)
        )
    return Evaluation(model, inputs, split, threshold, metrics, test_predictions)


def check_parts(use_case: UseCase, split: DataSplit) -> None:
    label = use_case.label.name
    for name, part in split.parts().items():
        if part.empty:
            raise FeaturehouseError(
                f"{use_case.name}: the {name} split is empty; need more history (or entities)"
            )
    if isinstance(use_case.task, Classification) and split.train[label].nunique() < 2:
        raise FeaturehouseError(
            f"{use_case.name}: the train split holds one class only; need more history"
        )
