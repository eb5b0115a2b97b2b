"""Predictive maintenance: will a machine have a component failure in the next 24 hours?

Raw data in the format of Microsoft's Azure predictive-maintenance data (machines,
hourly telemetry, errors, maintenance records, failures); a seeded fleet simulator
writes the same files for the demo.
"""

from __future__ import annotations

from datetime import timedelta

from featurehouse.training.models import boosted_trees_classifier
from featurehouse.usecase import Candidate, Classification, Label, Simulator, Spine, UseCase
from featurehouse.usecases.predictive_maintenance.datasets import (
    DATASETS,
    FAILURES,
    MACHINE,
    TELEMETRY,
)
from featurehouse.usecases.predictive_maintenance.errors import ERROR_FEATURES
from featurehouse.usecases.predictive_maintenance.machines import MACHINE_ATTRIBUTES
from featurehouse.usecases.predictive_maintenance.maintenance import MAINTENANCE_FEATURES
from featurehouse.usecases.predictive_maintenance.simulator import FleetSpec, write_fleet
from featurehouse.usecases.predictive_maintenance.telemetry import TELEMETRY_FEATURES

USE_CASE = UseCase(
    name="predictive_maintenance",
    description="Will a machine have a component failure in the next 24 hours?",
    entity=MACHINE,
    datasets=DATASETS,
    tables=(TELEMETRY_FEATURES, ERROR_FEATURES, MAINTENANCE_FEATURES, MACHINE_ATTRIBUTES),
    # One row every 3 hours per machine: consecutive hours are near duplicates, and fewer
    # rows keep the point-in-time join cheap.
    spine=Spine(TELEMETRY, every=timedelta(hours=3)),
    label=Label("failure_within_horizon", "event", FAILURES, horizon=timedelta(hours=24)),
    task=Classification(prediction="failure_probability", flag="predicted_failure"),
    candidates=(
        Candidate(
            "boosted_trees",
            boosted_trees_classifier,
            {"learning_rate": (0.05, 0.1), "max_leaf_nodes": (15, 31), "l2_regularization": (0, 1)},
        ),
    ),
    model_name="machine_failure",
    simulator=Simulator(spec=FleetSpec, write=write_fleet),
    segments=("model",),
)
