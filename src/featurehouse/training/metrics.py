"""Evaluation metrics of each task, the decision threshold, and which way is better."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_curve,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from featurehouse.usecase import LOWER_IS_BETTER


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the highest F1 on validation data (0.5 if labels are one class)."""
    if len(np.unique(labels)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def classification_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """Threshold metrics at `threshold`, ranking metrics over all thresholds.

    ROC AUC and PR AUC are NaN when the labels hold one class only: they are undefined.
    """
    if len(labels) == 0:
        return dict.fromkeys(
            ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "positive_rate"),
            float("nan"),
        ) | {"rows": 0.0}
    predicted = (scores >= threshold).astype(int)
    two_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, scores)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(labels, scores)) if two_classes else float("nan"),
        "positive_rate": float(np.mean(labels)),
        "rows": float(len(labels)),
    }


def symmetric_mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """sMAPE in percent, 0 to 200: |error| / mean(|actual|, |predicted|), with 0/0 counted as 0
    (a zero forecast of zero demand is exact), so days without sales do not divide by zero."""
    denominator = (np.abs(actual) + np.abs(predicted)) / 2
    ratio = np.divide(
        np.abs(actual - predicted),
        denominator,
        out=np.zeros_like(denominator, dtype=float),
        where=denominator > 0,
    )
    return float(100 * np.mean(ratio))


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE, sMAPE and R² (NaN where undefined: no rows, or R² of a constant target)."""
    if len(actual) == 0:
        return dict.fromkeys(("mse", "rmse", "mae", "smape", "r2", "mean_actual"), float("nan")) | {
            "rows": 0.0
        }
    constant = np.all(actual == actual[0])
    mse = float(mean_squared_error(actual, predicted))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "smape": symmetric_mape(actual, predicted),
        "r2": float("nan") if constant else float(r2_score(actual, predicted)),
        "mean_actual": float(np.mean(actual)),
        "rows": float(len(actual)),
    }


def improvement(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is (positive: better), whichever way the metric runs."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion
