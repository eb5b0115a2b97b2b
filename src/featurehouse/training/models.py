"""Model factories a use case can declare: scikit-learn pipelines over its feature columns.

A factory takes `ModelInputs` (numeric and categorical feature names, and the
hyper-parameters from `conf/use_cases/<name>.yml`) and returns an unfitted estimator
that reads a pandas frame with those columns.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from featurehouse.usecase import ModelInputs


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
