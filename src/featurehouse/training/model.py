"""The failure model: gradient-boosted trees over the feature service's features."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from featurehouse.config import ModelSettings


def build_model(
    numeric_features: Sequence[str], categorical_features: Sequence[str], params: ModelSettings
) -> Pipeline:
    """Trees handle missing values natively, so nulls (no history yet) need no imputation."""
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                list(categorical_features),
            ),
            ("numeric", "passthrough", list(numeric_features)),
        ],
        verbose_feature_names_out=False,
    )
    classifier = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        random_state=params.random_state,
        categorical_features=list(range(len(categorical_features))),
        class_weight="balanced",
        early_stopping=False,
    )
    return Pipeline([("encode", encode), ("classifier", classifier)])


def failure_probability(model, features: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(features)[:, 1]


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
            ("precision", "recall", "f1", "roc_auc", "pr_auc", "positive_rate"), float("nan")
        ) | {"rows": 0.0}
    predicted = (scores >= threshold).astype(int)
    two_classes = len(np.unique(labels)) == 2
    return {
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, scores)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(labels, scores)) if two_classes else float("nan"),
        "positive_rate": float(np.mean(labels)),
        "rows": float(len(labels)),
    }
