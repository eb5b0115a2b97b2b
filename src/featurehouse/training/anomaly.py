"""Unsupervised anomaly detectors a use case can declare, as scikit-learn classifiers.

`AnomalyDetector` wraps any detector pipeline so that the rest of featurehouse (tuning,
the threshold, MLflow, batch scoring, the service, drift) treats it like a binary
classifier: `predict_proba(X)[:, 1]` is the anomaly score and `predict` the flag at
`threshold`. Its `fit` takes no label: one passed by generic code is ignored, so labels
can only ever choose the threshold and evaluate.

The score is the share of the fitted rows that are less unusual than the row (its
percentile among the training rows' raw scores), so scores of different detectors, and of
one detector over time, are on the same [0, 1] scale and a threshold reads as "more
unusual than 99.5% of what the detector was fitted on".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from featurehouse.usecase import ModelInputs


class AnomalyDetector(ClassifierMixin, BaseEstimator):
    """A detector pipeline whose last step has `score_samples` (higher is more normal, as
    Isolation Forest's) or `transform` to distances (lower is more normal, as k-means'
    distance to each centroid, of which the nearest counts)."""

    def __init__(self, detector: Any = None, threshold: float = 0.5):
        self.detector = detector
        self.threshold = threshold

    def fit(self, X: pd.DataFrame, y: Any = None) -> AnomalyDetector:
        # `y` is in the signature only because generic code passes one: it is not used.
        self.detector_ = clone(self.detector).fit(X)
        self.reference_ = np.sort(self.raw_scores(X))
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def raw_scores(self, X: pd.DataFrame) -> np.ndarray:
        """The detector's own measure of how unusual each row is (higher: more unusual)."""
        detector = self.detector_
        if hasattr(detector, "score_samples"):
            return -np.asarray(detector.score_samples(X), dtype=float)
        return np.asarray(detector.transform(X), dtype=float).min(axis=1)

    def anomaly_score(self, X: pd.DataFrame) -> np.ndarray:
        raw = self.raw_scores(X)
        return np.searchsorted(self.reference_, raw, side="right") / len(self.reference_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        score = self.anomaly_score(X)
        return np.column_stack([1.0 - score, score])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.anomaly_score(X) >= self.threshold).astype(int)


def _scaled(inputs: ModelInputs) -> ColumnTransformer:
    """Numbers only, missing values (no history yet) as the median, on one scale: distances
    and random splits must not be dominated by the widest feature."""
    if inputs.categorical:
        raise ValueError(
            f"anomaly detectors read numeric features; {list(inputs.categorical)} are text"
        )
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    return ColumnTransformer(
        [("numeric", numeric, list(inputs.numeric))], verbose_feature_names_out=False
    )


def isolation_forest(inputs: ModelInputs) -> AnomalyDetector:
    """Isolation Forest: rows that few random splits isolate are unusual."""
    forest = IsolationForest(**{"random_state": 0, **inputs.params})
    return AnomalyDetector(Pipeline([("scale", _scaled(inputs)), ("forest", forest)]))


def kmeans_distance(inputs: ModelInputs) -> AnomalyDetector:
    """k-means: a row far from every cluster centre of normal behaviour is unusual."""
    kmeans = KMeans(**{"random_state": 0, "n_init": 4, **inputs.params})
    return AnomalyDetector(Pipeline([("scale", _scaled(inputs)), ("kmeans", kmeans)]))
