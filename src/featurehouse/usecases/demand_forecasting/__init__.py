"""Demand forecasting: how many units of an item will a store sell over the next 7 days?

Daily sales of items in stores (a composite entity), with prices, promotions, holidays,
weather and stock-outs; a seeded simulator writes the raw files for the demo. The
candidates: boosted trees over every feature, the same trees without the monthly k-means
demand segments (to measure what they add), and the classical forecasters fitted per
(store, item) by the feature job (Holt-Winters, seasonal ARIMA); the same days last week
are the seasonal-naive baseline.
"""

from __future__ import annotations

from datetime import timedelta

from featurehouse.training.models import (
    boosted_trees_regressor,
    column_forecast,
    without_features,
)
from featurehouse.usecase import Candidate, Label, Regression, Simulator, Spine, UseCase
from featurehouse.usecases.demand_forecasting.datasets import DATASETS, SALES, STORE_ITEM
from featurehouse.usecases.demand_forecasting.features import (
    DAILY_FEATURES,
    DEMAND_SEGMENTS,
    HOLT_WINTERS_7D,
    ITEM_ATTRIBUTES,
    SEASONAL_ARIMA_7D,
    SERIES_FORECASTS,
    STORE_ATTRIBUTES,
    SUM_7D,
)
from featurehouse.usecases.demand_forecasting.simulator import DemandSpec, write_demand

BOOSTED_TREES_SPACE = {
    "learning_rate": (0.05, 0.1),
    "max_leaf_nodes": (15, 31),
    "loss": ("poisson", "squared_error"),
}

USE_CASE = UseCase(
    name="demand_forecasting",
    description="How many units of an item will a store sell over the next 7 days?",
    entity=STORE_ITEM,
    datasets=DATASETS,
    tables=(DAILY_FEATURES, SERIES_FORECASTS, DEMAND_SEGMENTS, STORE_ATTRIBUTES, ITEM_ATTRIBUTES),
    spine=Spine(SALES, every=timedelta(days=1)),
    label=Label("units_next_7d", "sum", SALES, horizon=timedelta(days=7), column="units"),
    task=Regression(prediction="units_next_7d_forecast", baseline=SUM_7D),
    candidates=(
        Candidate("boosted_trees", boosted_trees_regressor, BOOSTED_TREES_SPACE),
        # The same trees without the demand segments and their profiles: what they add.
        Candidate(
            "boosted_trees_without_segments",
            without_features(boosted_trees_regressor, tuple(DEMAND_SEGMENTS.feature_names)),
            BOOSTED_TREES_SPACE,
        ),
        Candidate("holt_winters", column_forecast(HOLT_WINTERS_7D, fallback=SUM_7D)),
        Candidate("seasonal_arima", column_forecast(SEASONAL_ARIMA_7D, fallback=SUM_7D)),
    ),
    model_name="store_item_demand",
    simulator=Simulator(spec=DemandSpec, write=write_demand),
    segments=("category", "store_type"),
)
