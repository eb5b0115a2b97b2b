"""Demand forecasting: how many units of an item will a store sell over the next 7 days?

Daily sales of items in stores (a composite entity), with prices, promotions, holidays,
weather and stock-outs; a seeded simulator writes the raw files for the demo.
"""

from __future__ import annotations

from datetime import timedelta

from featurehouse.training.models import boosted_trees_regressor
from featurehouse.usecase import Candidate, Label, Regression, Simulator, Spine, UseCase
from featurehouse.usecases.demand_forecasting.datasets import DATASETS, SALES, STORE_ITEM
from featurehouse.usecases.demand_forecasting.features import (
    DAILY_FEATURES,
    ITEM_ATTRIBUTES,
    STORE_ATTRIBUTES,
    SUM_7D,
)
from featurehouse.usecases.demand_forecasting.simulator import DemandSpec, write_demand

USE_CASE = UseCase(
    name="demand_forecasting",
    description="How many units of an item will a store sell over the next 7 days?",
    entity=STORE_ITEM,
    datasets=DATASETS,
    tables=(DAILY_FEATURES, STORE_ATTRIBUTES, ITEM_ATTRIBUTES),
    spine=Spine(SALES, every=timedelta(days=1)),
    label=Label("units_next_7d", "sum", SALES, horizon=timedelta(days=7), column="units"),
    task=Regression(prediction="units_next_7d_forecast", baseline=SUM_7D),
    candidates=(
        Candidate(
            "boosted_trees",
            boosted_trees_regressor,
            {
                "learning_rate": (0.05, 0.1),
                "max_leaf_nodes": (15, 31),
                "loss": ("poisson", "squared_error"),
            },
        ),
    ),
    model_name="store_item_demand",
    simulator=Simulator(spec=DemandSpec, write=write_demand),
    segments=("category", "store_type"),
)
