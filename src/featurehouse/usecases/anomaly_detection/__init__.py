"""Anomaly detection on server metrics: is this sample of this series unusual?

Unsupervised: the detectors (Isolation Forest, k-means distance) are fitted to the
features of the samples alone. The labelled anomaly windows (NAB's ground truth, or the
simulator's) only choose the threshold on the validation window and evaluate on the test
window, beside the rolling z-score rule. Batch scoring flags samples and merges each
series' consecutive flags into anomaly events, each raised as an alert.

Data: the Numenta Anomaly Benchmark's real AWS CloudWatch series (../shared/data/nab_aws,
Ahmad, Lavin, Purdy and Agha, 2017) when present; a seeded simulator of the same layout
with injected spikes, level shifts, drifts and stuck values for the demo and the tests.
"""

from __future__ import annotations

from datetime import timedelta

from featurehouse.training.anomaly import isolation_forest, kmeans_distance
from featurehouse.usecase import Anomaly, Candidate, Label, Simulator, Spine, Split, UseCase
from featurehouse.usecases.anomaly_detection.datasets import (
    ANOMALY_WINDOWS,
    METRIC_SERIES,
    METRICS,
)
from featurehouse.usecases.anomaly_detection.features import METRIC_FEATURES, ZSCORE_RULE
from featurehouse.usecases.anomaly_detection.simulator import (
    ServerMetricsSpec,
    write_server_metrics,
)

USE_CASE = UseCase(
    name="anomaly_detection",
    description="Is this sample of this server metric unusual?",
    entity=METRIC_SERIES,
    datasets=(METRICS, ANOMALY_WINDOWS),
    tables=(METRIC_FEATURES,),
    # Every sample: NAB's are five minutes apart on each series' own minute.
    spine=Spine(METRICS, every=timedelta(minutes=1)),
    label=Label(
        "in_anomaly_window",
        "window",
        ANOMALY_WINDOWS,
        horizon=timedelta(minutes=5),
        column="window_end",
    ),
    task=Anomaly(prediction="anomaly_score", flag="anomaly_flag", baseline=ZSCORE_RULE),
    candidates=(
        Candidate(
            "isolation_forest",
            isolation_forest,
            {"max_samples": (256, 1024), "max_features": (0.5, 1.0)},
        ),
        Candidate("kmeans_distance", kmeans_distance, {"n_clusters": (4, 8, 16)}),
    ),
    model_name="server_metric_anomalies",
    split=Split("time_per_entity"),
    simulator=Simulator(ServerMetricsSpec, write_server_metrics),
)
