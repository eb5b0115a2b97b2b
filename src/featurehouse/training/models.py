"""Model factories a use case can declare: scikit-learn pipelines over its feature columns.

A factory takes `ModelInputs` (numeric and categorical feature names, and the
hyper-parameters from `conf/use_cases/<name>.yml`) and returns an unfitted estimator
that reads a pandas frame with those columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from featurehouse.usecase import ModelFactory, ModelInputs


def _encoder(inputs: ModelInputs) -> ColumnTransformer:
    """Categories become ordinal codes (unknown ones missing); numbers pass through."""
    return ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                list(inputs.categorical),
            ),
            ("numeric", "passthrough", list(inputs.numeric)),
        ],
        verbose_feature_names_out=False,
    )


def boosted_trees_classifier(inputs: ModelInputs) -> Pipeline:
    """Gradient-boosted trees, balanced classes. Trees handle missing values natively, so
    nulls (no history yet) need no imputation."""
    classifier = HistGradientBoostingClassifier(
        **inputs.params,
        categorical_features=list(range(len(inputs.categorical))),
        class_weight="balanced",
        early_stopping=False,
    )
    return Pipeline([("encode", _encoder(inputs)), ("classifier", classifier)])


def boosted_trees_regressor(inputs: ModelInputs) -> Pipeline:
    """Gradient-boosted regression trees on squared error."""
    regressor = HistGradientBoostingRegressor(
        **inputs.params,
        categorical_features=list(range(len(inputs.categorical))),
        early_stopping=False,
    )
    return Pipeline([("encode", _encoder(inputs)), ("regressor", regressor)])


class ColumnForecast(RegressorMixin, BaseEstimator):
    """A forecast computed upstream as a feature column (per entity, such as a Holt-Winters
    forecast), as a model: its prediction is that column, or `fallback`'s value where the
    column is null (too little history to fit). Nothing is learnt from the label: the
    forecasters were fitted per entity, on the days before each forecast, by the feature job
    (`featurehouse.features.forecasts`). As a model it is selected, registered, scored and
    served like any other."""

    def __init__(self, column: str, fallback: str | None = None):
        self.column = column
        self.fallback = fallback

    def fit(self, features: pd.DataFrame, labels=None):
        self.feature_names_in_ = np.asarray(features.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        forecast = pd.to_numeric(features[self.column], errors="coerce")
        if self.fallback is not None:
            forecast = forecast.fillna(pd.to_numeric(features[self.fallback], errors="coerce"))
        return forecast.to_numpy(dtype=float)


def column_forecast(column: str, fallback: str | None = None):
    """The factory of a `ColumnForecast` candidate."""

    def factory(inputs: ModelInputs) -> ColumnForecast:
        return ColumnForecast(column, fallback, **inputs.params)

    return factory


def without_features(factory: ModelFactory, columns: tuple[str, ...]) -> ModelFactory:
    """The factory's model, blind to `columns`: a candidate beside the full one measures
    what those features add, on the same rows."""

    def build(inputs: ModelInputs) -> Pipeline:
        kept = ModelInputs(
            numeric=tuple(c for c in inputs.numeric if c not in columns),
            categorical=tuple(c for c in inputs.categorical if c not in columns),
            params=inputs.params,
        )
        drop = ColumnTransformer(
            [("drop", "drop", list(columns))],
            remainder="passthrough",
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        return Pipeline([("drop", drop), ("model", factory(kept))])

    return build
