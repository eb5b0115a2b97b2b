"""The evaluation plots a training run logs: figures a person reads faster than numbers.

Each function takes plain arrays and returns a matplotlib Figure (the training job logs it
with `mlflow.log_figure`). The Agg backend draws without a display.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
)

SIZE = (6, 4.5)


def roc_curve_figure(labels: np.ndarray, scores: np.ndarray, baseline: float) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    RocCurveDisplay.from_predictions(labels, scores, ax=ax, name="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label=f"chance (AUC {baseline:.2f})")
    ax.set_title("ROC curve, test window")
    ax.legend(loc="lower right")
    return fig


def precision_recall_figure(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    PrecisionRecallDisplay.from_predictions(labels, scores, ax=ax, name="model")
    prior = float(np.mean(labels))
    ax.axhline(prior, linestyle="--", color="grey", label=f"class prior ({prior:.3f})")
    predicted = scores >= threshold
    if predicted.any():
        precision = float(np.mean(labels[predicted]))
        recall = float(np.sum(labels[predicted]) / max(np.sum(labels), 1))
        ax.plot(recall, precision, "o", color="black", label=f"threshold {threshold:.3f}")
    ax.set_title("Precision-recall, test window")
    ax.legend(loc="upper right")
    return fig


def confusion_matrix_figure(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    ConfusionMatrixDisplay.from_predictions(
        labels, (scores >= threshold).astype(int), ax=ax, colorbar=False
    )
    ax.set_title(f"Confusion matrix at threshold {threshold:.3f}")
    return fig


def calibration_figure(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    observed, predicted = calibration_curve(labels, scores, n_bins=bins, strategy="quantile")
    ax.plot(predicted, observed, "o-", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration, test window")
    ax.legend(loc="upper left")
    return fig


def predicted_vs_actual_figure(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    ax.scatter(actual, predicted, s=6, alpha=0.4)
    top = float(np.nanmax([np.nanmax(actual), np.nanmax(predicted), 1.0]))
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect forecast")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual, test window")
    ax.legend(loc="upper left")
    return fig


def residuals_over_time_figure(times: pd.Series, residuals: np.ndarray) -> Figure:
    """The mean residual per day, with the band of its spread: bias that builds up shows."""
    fig, ax = plt.subplots(figsize=SIZE)
    daily = pd.DataFrame({"t": pd.to_datetime(times).dt.floor("D").to_numpy(), "r": residuals})
    grouped = daily.groupby("t")["r"]
    mean, std = grouped.mean(), grouped.std().fillna(0)
    ax.plot(mean.index, mean.to_numpy(), label="mean residual (actual - predicted)")
    ax.fill_between(mean.index, (mean - std).to_numpy(), (mean + std).to_numpy(), alpha=0.2)
    ax.axhline(0, color="grey", linestyle="--")
    ax.set_title("Residuals over time, test window")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    return fig


def residuals_by_segment_figure(segments: Mapping[str, pd.Series], residuals: np.ndarray) -> Figure:
    """One box plot of residuals per value of each declared segment."""
    fig, axes = plt.subplots(1, max(len(segments), 1), figsize=(6 * max(len(segments), 1), 4.5))
    for ax, (name, values) in zip(np.atleast_1d(axes), segments.items(), strict=False):
        frame = pd.DataFrame(
            {"segment": values.fillna("(missing)").astype(str).to_numpy(), "r": residuals}
        )
        groups = sorted(frame["segment"].unique())
        ax.boxplot([frame.loc[frame["segment"] == g, "r"] for g in groups], showfliers=False)
        ax.set_xticks(range(1, len(groups) + 1), groups, rotation=30)
        ax.axhline(0, color="grey", linestyle="--")
        ax.set_title(f"Residuals by {name}")
    return fig


def anomaly_scores_figure(times: pd.Series, scores: np.ndarray, threshold: float) -> Figure:
    """The highest anomaly score per hour, with the threshold: when the detector fires."""
    fig, ax = plt.subplots(figsize=SIZE)
    frame = pd.DataFrame({"t": pd.to_datetime(times).dt.floor("h").to_numpy(), "s": scores})
    peak = frame.groupby("t")["s"].max()
    ax.plot(peak.index, peak.to_numpy(), label="highest score in the hour")
    ax.axhline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_ylim(0, 1.02)
    ax.set_title("Anomaly scores, test window")
    ax.legend(loc="lower left")
    fig.autofmt_xdate()
    return fig


def importance_figure(importances: pd.Series) -> Figure:
    """Permutation importance: how much the metric drops when a feature is shuffled."""
    top = importances.sort_values().tail(20)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(top) + 1)))
    ax.barh(top.index, top.to_numpy())
    ax.set_xlabel("drop of the score when the feature is shuffled")
    ax.set_title("Permutation importance, test window")
    fig.tight_layout()
    return fig
