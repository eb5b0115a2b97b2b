"""Bike sharing: how many bikes will be rented in the next 6 hours?

Real data that no one on this project wrote: the UCI Bike Sharing data set (Capital
Bikeshare, Washington D.C., hourly rentals with weather, 2011-2012; Fanaee-T and Gama,
"Event labeling combining ensemble detectors and background knowledge", Progress in
Artificial Intelligence, 2013). Onboarded with declarations only: `hour.csv` as it is
published, one entity (the city's bike system), and hourly features.
"""

from __future__ import annotations

from datetime import timedelta

from featurehouse.training.models import boosted_trees_regressor
from featurehouse.usecase import Candidate, Label, Regression, Spine, UseCase
from featurehouse.usecases.bike_sharing.datasets import BIKE_SYSTEM, RENTALS
from featurehouse.usecases.bike_sharing.features import HORIZON, HOURLY_FEATURES, WEEK_AGO

USE_CASE = UseCase(
    name="bike_sharing",
    description="How many bikes will be rented in the city over the next 6 hours?",
    entity=BIKE_SYSTEM,
    datasets=(RENTALS,),
    tables=(HOURLY_FEATURES,),
    spine=Spine(RENTALS, every=timedelta(hours=1)),
    label=Label("rentals_next_6h", "sum", RENTALS, horizon=HORIZON, column="cnt"),
    task=Regression(prediction="rentals_next_6h_forecast", baseline=WEEK_AGO),
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
    model_name="bike_rentals",
)
