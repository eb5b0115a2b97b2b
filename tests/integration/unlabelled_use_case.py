"""A small anomaly use case with no label at all, written outside the package as a person
would write it: a few machine room temperature sensors, nobody has marked an incident.

It declares `label=None`: the detector is fitted, thresholded (the configured share of
fitted rows), compared with the rule and gated without any ground truth. The data hold one
injected incident, a two-hour overheating of one sensor on the last day, which the scored
window must find as an anomaly event.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

MODULE = textwrap.dedent(
    '''
    """Machine room temperatures: is this reading of this sensor unusual? No labels."""

    from datetime import timedelta

    import pyspark.sql.functions as F

    from featurehouse.features.windows import trailing
    from featurehouse.training.anomaly import isolation_forest, kmeans_distance
    from featurehouse.usecase import (
        EVENT_TIMESTAMP, Anomaly, Candidate, Column, Csv, Entity, Feature, FeatureTable,
        RawDataset, Source, Spine, Split, UseCase,
    )

    KEYS = ("sensor",)
    HOUR, STEP = timedelta(hours=1), timedelta(minutes=5)
    SENSOR = Entity("room_sensor", {"sensor": "string"})
    READINGS = RawDataset(
        "readings",
        "readings_*.csv",
        (
            Column("time", "timestamp"),
            Column("sensor", "string"),
            Column("celsius", "double", min=-40, max=120),
        ),
        keys=("sensor", "time"),
        time="time",
        format=Csv(),
    )


    def with_reading_features(readings):
        value = F.col("celsius")
        before = trailing(KEYS, "time", 6 * HOUR - STEP, skip=STEP)
        mean, std = F.avg(value).over(before), F.stddev_samp(value).over(before)
        recent = F.avg(value).over(trailing(KEYS, "time", HOUR))
        return readings.select(
            "sensor",
            F.col("time").alias(EVENT_TIMESTAMP),
            F.try_divide(value - mean, F.when(std != 0, std)).alias("zscore_6h"),
            F.try_divide(recent - mean, F.when(std != 0, std)).alias("shift_1h"),
        )


    READING_FEATURES = FeatureTable(
        name="reading_features",
        view_name="room_reading_features",
        description="How far each temperature reading is from its sensor's last hours.",
        entity=SENSOR,
        features=(
            Feature("zscore_6h", "double", "(reading - mean) / std over the 6 hours before"),
            Feature("shift_1h", "double", "(mean of the last hour - 6h mean) / 6h std"),
        ),
        sources=(Source(READINGS, history=6 * HOUR),),
        build=lambda bronze: with_reading_features(bronze["readings"]),
        ttl=timedelta(minutes=30),
    )

    USE_CASE = UseCase(
        name="room_temperatures",
        description="Is this temperature reading of this sensor unusual?",
        entity=SENSOR,
        datasets=(READINGS,),
        tables=(READING_FEATURES,),
        spine=Spine(READINGS, every=STEP),
        label=None,
        task=Anomaly(prediction="anomaly_score", flag="anomaly_flag", baseline="zscore_6h"),
        candidates=(
            Candidate("isolation_forest", isolation_forest, {"max_samples": (128, 512)}),
            Candidate("kmeans_distance", kmeans_distance, {"n_clusters": (4,)}),
        ),
        model_name="room_temperature_anomalies",
        split=Split("time_per_entity"),
    )
    '''
)
SENSORS, DAYS = ("a", "b", "c"), 5
START = datetime(2024, 3, 1)
STEP = timedelta(minutes=5)
# The one incident: sensor b overheats by 6 degrees for two hours on the last day.
INCIDENT_SENSOR = "b"
INCIDENT_START = START + timedelta(days=DAYS - 1, hours=10)
INCIDENT_END = INCIDENT_START + timedelta(hours=2)


def write_readings(folder) -> None:
    """Five-minute readings with a daily cycle and noise, one CSV file per day."""
    rng = np.random.default_rng(11)
    times = pd.date_range(START, START + timedelta(days=DAYS) - STEP, freq=STEP)
    frames = []
    for index, sensor in enumerate(SENSORS):
        hours = (times - START) / pd.Timedelta(hours=1)
        celsius = 21 + index + 1.5 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.2, len(times))
        if sensor == INCIDENT_SENSOR:
            celsius = np.where(
                (times >= INCIDENT_START) & (times < INCIDENT_END), celsius + 6, celsius
            )
        frames.append(pd.DataFrame({"time": times, "sensor": sensor, "celsius": celsius.round(2)}))
    readings = pd.concat(frames)
    folder.mkdir(parents=True, exist_ok=True)
    for day, rows in readings.groupby(readings["time"].dt.date):
        rows.assign(time=rows["time"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
            folder / f"readings_{day:%Y%m%d}.csv", index=False
        )
