"""Entity segments: k-means over entity-level profiles, as a feature table.

`profiles` holds, at each refit time, one row per entity: its profile as of that time (for
example its mean demand and weekly pattern over the months before). At each refit time
the entities are segmented by a k-means fitted on that time's profiles alone, so a
segment never reflects a later day, and a point-in-time lookup gives each row the newest
segmentation before it. Profiles are standardised first: the features have different
units.

k-means numbers its clusters arbitrarily; here they are renumbered by their centre's
first profile feature, ascending (segment 0 is, say, the lowest-volume one), so that a
segment number means the same at every refit and can be used as a feature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import DataFrame
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from featurehouse.usecase import EVENT_TIMESTAMP, Segmentation


def fit_segmentation(profiles: pd.DataFrame, segmentation: Segmentation) -> Pipeline:
    """Scaler + k-means on the rows with a complete profile, clusters renumbered."""
    columns = list(segmentation.profile)
    rows = profiles[columns].dropna()
    clusters = min(segmentation.clusters, len(rows))
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            ("kmeans", KMeans(n_clusters=clusters, n_init=10, random_state=segmentation.seed)),
        ]
    ).fit(rows)
    kmeans = model.named_steps["kmeans"]
    # Reordering the centres renumbers what `predict` answers, in a plain scikit-learn
    # model that registers, loads and exports as any other.
    order = np.argsort(kmeans.cluster_centers_[:, 0], kind="stable")
    kmeans.cluster_centers_ = kmeans.cluster_centers_[order]
    kmeans.labels_ = np.argsort(order)[kmeans.labels_]
    return model


def assign_segments(profiles: pd.DataFrame, segmentation: Segmentation) -> pd.DataFrame:
    """One refit time's profiles -> the same rows with their segment (null without a
    complete profile; none at all when no entity has one)."""
    out = profiles.copy()
    complete = out[list(segmentation.profile)].notna().all(axis=1)
    out[segmentation.column] = pd.array([pd.NA] * len(out), dtype="Int64")
    if complete.any():
        model = fit_segmentation(out[complete], segmentation)
        out.loc[complete, segmentation.column] = model.predict(
            out.loc[complete, list(segmentation.profile)]
        )
    return out


def with_segments(
    profiles: DataFrame, keys: Sequence[str], segmentation: Segmentation
) -> DataFrame:
    """Per refit time in parallel (a grouped pandas function): `profiles` (keys, event
    timestamp, profile columns) -> the same with the segment column."""
    schema = ", ".join(
        [
            *(f"{c} {profiles.schema[c].dataType.simpleString()}" for c in keys),
            f"{EVENT_TIMESTAMP} timestamp",
            *(f"{c} double" for c in segmentation.profile),
            f"{segmentation.column} bigint",
        ]
    )

    def compute(rows: pd.DataFrame) -> pd.DataFrame:
        return assign_segments(rows, segmentation)

    rows = profiles.select(
        *keys, EVENT_TIMESTAMP, *(F.col(c).cast("double").alias(c) for c in segmentation.profile)
    )
    return rows.groupBy(EVENT_TIMESTAMP).applyInPandas(compute, schema)
