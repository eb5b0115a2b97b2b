"""The newest segmentation of each segment table, as a registered model of its own.

The feature job segments the entities at every refit time (`features.segments`). The
training job refits the newest segmentation before the end of its training rows from the
same profiles (the same function and seed give the same model), checks that it puts every
entity in the table's segment, logs it to the training run (silhouette, segment sizes, and
centres in the profile's units) and registers it, so that other use cases and people can
segment new profiles with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import mlflow
import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from mlflow.models import infer_signature
from sklearn.metrics import silhouette_score

from featurehouse.config import Settings
from featurehouse.features.segments import fit_segmentation
from featurehouse.io import Lakehouse
from featurehouse.training.registry import ModelVersionRef, model_requirements, register_version
from featurehouse.usecase import FeatureTable, UseCase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentationResult:
    table: str
    model: ModelVersionRef
    fitted_at: datetime
    entities: int
    sizes: list[int]  # entities per segment, segment 0 first
    silhouette: float
    agreement: float  # share of entities the refit puts in the table's segment


def register_segmentations(
    lake: Lakehouse, settings: Settings, use_case: UseCase, as_of: datetime, run_id: str
) -> list[SegmentationResult]:
    """Inside the training run: each segment table's newest segmentation at `as_of`."""
    results = []
    for table in use_case.tables:
        if table.segmentation is None:
            continue
        rows = lake.read(table.name).where(F.col(table.timestamp) <= F.lit(as_of))
        newest = rows.agg(F.max(table.timestamp)).first()[0]
        if newest is None:
            log.warning("%s: no segmentation before %s to register", table.name, as_of)
            continue
        profiles = rows.where(F.col(table.timestamp) == F.lit(newest)).toPandas()
        results.append(_register(settings, use_case, table, profiles, newest, run_id))
    return results


def _register(
    settings: Settings,
    use_case: UseCase,
    table: FeatureTable,
    profiles: pd.DataFrame,
    fitted_at: datetime,
    run_id: str,
) -> SegmentationResult:
    segmentation = table.segmentation
    columns = list(segmentation.profile)
    complete = profiles.dropna(subset=columns)
    model = fit_segmentation(complete, segmentation)
    segments = model.predict(complete[columns])
    agreement = float(np.mean(segments == complete[segmentation.column].to_numpy()))
    scaled = model[:-1].transform(complete[columns])
    silhouette = (
        float(silhouette_score(scaled, segments)) if len(set(segments)) > 1 else float("nan")
    )
    sizes = np.bincount(segments, minlength=model[-1].n_clusters).tolist()
    centres = model[:-1].inverse_transform(model[-1].cluster_centers_)
    prefix = f"segmentation_{table.name}"
    metrics = {f"{prefix}_silhouette": silhouette, f"{prefix}_agreement": agreement}
    mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
    mlflow.log_dict(
        {
            "fitted_at": str(fitted_at),
            "entities": len(complete),
            "sizes": sizes,
            "centres": pd.DataFrame(centres, columns=columns).to_dict(orient="records"),
        },
        f"segments/{table.name}.json",
    )
    info = mlflow.sklearn.log_model(
        model,
        name=prefix,
        signature=infer_signature(complete[columns].head(100), segments[:100]),
        input_example=complete[columns].head(3),
        pip_requirements=model_requirements(),
    )
    name = settings.segmentation_model_name(use_case.name, table.name)
    version = register_version(name, table.description, info, run_id)
    return SegmentationResult(
        table.name, version, fitted_at, len(complete), sizes, silhouette, agreement
    )
