"""Training/serving skew: does the service see and predict what training and batch scoring
would, for the same entity at the same time?

For a sample of entities (from the spine's data set, by a seeded hash of their keys):

1. The time T of each entity's newest feature row (over all of its feature tables): what
   the online store should hold after `materialize`.
2. Offline: the point-in-time features at T through the Feast feature service's lookups
   (`featurehouse.store.training_set.service_features`: the engine training and scoring
   use), and the prediction of the same model version on them (scikit-learn itself).
3. Online: the service's answer for the same keys, with the features it used
   (`include_features`), from a running service (`url`) or one started here on loopback.
4. Compared: every feature value, the prediction, and the batch prediction of the
   predictions table where it has a row for the entity at T by the same model version.

Any difference beyond `tolerance` (relative, 1e-9 by default: stored doubles travel
exactly, so only the summation order of the trees may differ) is a mismatch, reported
with the entity, what differs, and both values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.serving.server import post_json, running_service
from featurehouse.usecase import EVENT_TIMESTAMP, Classification, UseCase

DEFAULT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SkewMismatch:
    keys: dict[str, Any]
    what: str  # "feature <name>", "prediction", "batch prediction", "status"
    online: Any
    offline: Any

    def describe(self) -> str:
        entity = ", ".join(f"{k}={v}" for k, v in self.keys.items())
        return f"{entity}: {self.what}: online {self.online!r}, offline {self.offline!r}"


@dataclass(frozen=True)
class SkewReport:
    use_case: str
    model_name: str
    model_version: str
    entities: int
    features_compared: int
    predictions_compared: int
    batch_compared: int
    max_feature_difference: float
    max_prediction_difference: float
    tolerance: float
    mismatches: list[SkewMismatch] = field(default_factory=list)
    skipped: int = 0  # sampled entities without any feature row

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def describe(self, limit: int = 20) -> str:
        head = (
            f"{self.use_case}: {self.entities} entities, {self.features_compared} feature values,"
            f" {self.predictions_compared} predictions and {self.batch_compared} batch predictions"
            f" compared ({self.model_name} version {self.model_version}, tolerance"
            f" {self.tolerance:g}): "
        )
        if self.ok:
            return head + (
                f"no mismatch (largest difference: features {self.max_feature_difference:.3g},"
                f" predictions {self.max_prediction_difference:.3g})"
            )
        lines = [head + f"{len(self.mismatches)} mismatches"]
        lines += [f"  {m.describe()}" for m in self.mismatches[:limit]]
        if len(self.mismatches) > limit:
            lines.append(f"  ... and {len(self.mismatches) - limit} more")
        return "\n".join(lines)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def difference(online: Any, offline: Any) -> float:
    """0 when equal (both missing counts as equal); the relative difference of two numbers;
    inf for anything else that differs."""
    if _missing(online) and _missing(offline):
        return 0.0
    if _missing(online) or _missing(offline):
        return math.inf
    if isinstance(online, str) or isinstance(offline, str):
        return 0.0 if online == offline else math.inf
    a, b = float(online), float(offline)
    return abs(a - b) / max(1.0, abs(b))


# ---------------------------------------------------------------------------------------
# Offline, with Spark


def sample_entities(lake: Any, use_case: UseCase, sample: int, seed: int = 7):
    """A seeded sample of the spine's entities with T, the time of their newest feature
    row over all feature tables (null when they have none). A Spark DataFrame."""
    import pyspark.sql.functions as F

    keys = use_case.entity.keys
    spine = lake.read(use_case.spine.source.name)
    entities = spine.select(*[F.col(k).cast(t).alias(k) for k, t in keys.items()]).distinct()
    sampled = entities.orderBy(F.xxhash64(*keys, F.lit(seed)), *keys).limit(sample)
    newest = []
    for i, table in enumerate(use_case.tables):
        column = f"_newest_{i}"
        rows = lake.read(table.name).groupBy(*table.keys).agg(F.max(table.timestamp).alias(column))
        sampled = sampled.join(rows, list(table.keys), "left")
        newest.append(F.col(column))
    at = F.greatest(*newest) if len(newest) > 1 else newest[0]
    return sampled.select(*keys, at.alias(EVENT_TIMESTAMP))


def offline_features(lake: Any, settings: Settings, use_case: UseCase, entities) -> list[dict]:
    """Point-in-time features of (keys, event_timestamp) rows, through the feature service."""
    from featurehouse.store.feast_store import feature_store
    from featurehouse.store.training_set import service_features

    service = settings.feature_service(use_case.name)
    frame = service_features(lake, feature_store(settings), service, use_case, entities)
    return [row.asDict() for row in frame.collect()]


def batch_predictions(lake: Any, use_case: UseCase, version: str, entities) -> dict[tuple, dict]:
    """The predictions table's rows for the entities at their T by `version` (the newest
    scoring run's, where several scored them), by keys."""
    import pyspark.sql.functions as F
    from pyspark.sql import Window

    if not lake.exists("predictions"):
        return {}
    keys = list(use_case.entity.keys)
    scored = lake.read("predictions").where(F.col("model_version") == version)
    matched = scored.join(entities, [*keys, EVENT_TIMESTAMP], "left_semi")
    newest = Window.partitionBy(*keys).orderBy(F.col("scored_at").desc())
    rows = matched.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").collect()
    return {tuple(row[k] for k in keys): row.asDict() for row in rows}


# ---------------------------------------------------------------------------------------
# Online, through the service


def served(url: str, use_case: UseCase, entities: list[dict]) -> dict[str, Any]:
    """The service's answer for the entities, with the features used."""
    status, body = post_json(
        f"{url.rstrip('/')}/v1/use-cases/{use_case.name}/predict",
        {"entities": entities, "include_features": True},
    )
    if status != 200:
        raise FeaturehouseError(
            f"the prediction service answered {status}: {body.get('message', body)}"
        )
    return body


# ---------------------------------------------------------------------------------------
# The check


def check_skew(
    lake: Any,
    settings: Settings,
    use_case: UseCase,
    *,
    url: str | None = None,
    sample: int = 20,
    seed: int = 7,
    tolerance: float = DEFAULT_TOLERANCE,
) -> SkewReport:
    """Compare online and offline features and predictions for a sample of entities (see
    the module docstring). `url`: a running service; None starts one here."""
    keys = list(use_case.entity.keys)
    features = [f.name for f in use_case.features]
    entities = sample_entities(lake, use_case, sample, seed).cache()
    try:
        timed = [row.asDict() for row in entities.collect()]
        found = [row for row in timed if row[EVENT_TIMESTAMP] is not None]
        known = entities.where(entities[EVENT_TIMESTAMP].isNotNull())
        offline = {
            tuple(r[k] for k in keys): r for r in offline_features(lake, settings, use_case, known)
        }
        asked = [{k: row[k] for k in keys} for row in found]
        if not asked:
            raise FeaturehouseError(f"{use_case.name}: no entity with feature rows to compare")
        if url is None:
            with running_service(settings, [use_case]) as local:
                answer = served(local, use_case, asked)
        else:
            answer = served(url, use_case, asked)
        version = answer["model"]["version"]
        batch = batch_predictions(lake, use_case, version, known)
    finally:
        entities.unpersist()
    model_name = answer["model"]["name"]
    expected = _model_predictions(
        settings, use_case, model_name, version, [offline[tuple(a.values())] for a in asked]
    )
    mismatches: list[SkewMismatch] = []
    counts = {"features": 0, "predictions": 0, "batch": 0}
    largest = {"features": 0.0, "predictions": 0.0}
    task = use_case.task
    for entity, online, predicted in zip(asked, answer["predictions"], expected, strict=True):
        key = tuple(entity.values())
        row = offline[key]

        def compare(kind: str, what: str, online_value: Any, offline_value: Any, key=key) -> None:
            gap = difference(online_value, offline_value)
            counts[kind] += 1
            if kind in largest and math.isfinite(gap):
                largest[kind] = max(largest[kind], gap)
            if not gap <= tolerance:
                mismatches.append(
                    SkewMismatch(
                        dict(zip(keys, key, strict=True)), what, online_value, offline_value
                    )
                )

        used = online.get("features") or {}
        if online["features_as_of"] is None:
            mismatches.append(SkewMismatch(entity, "status", online["status"], "features offline"))
            continue
        for name in features:
            compare("features", f"feature {name}", used.get(name), row.get(name))
        if online.get(task.prediction) is None:
            mismatches.append(SkewMismatch(entity, "status", online["status"], "predicted offline"))
            continue
        compare("predictions", "prediction", online[task.prediction], predicted)
        scored = batch.get(key)
        if scored is not None:
            compare("batch", "batch prediction", online[task.prediction], scored[task.prediction])
            if isinstance(task, Classification):
                compare("batch", "batch flag", online[task.flag], scored[task.flag])
    return SkewReport(
        use_case=use_case.name,
        model_name=model_name,
        model_version=version,
        entities=len(asked),
        features_compared=counts["features"],
        predictions_compared=counts["predictions"],
        batch_compared=counts["batch"],
        max_feature_difference=largest["features"],
        max_prediction_difference=largest["predictions"],
        tolerance=tolerance,
        mismatches=mismatches,
        skipped=len(timed) - len(found),
    )


def _model_predictions(
    settings: Settings, use_case: UseCase, model_name: str, version: str, rows: list[dict]
) -> list[float]:
    """The model version's predictions on offline rows, through sklearn (as batch scoring)."""
    import mlflow
    import numpy as np
    import pandas as pd

    from featurehouse.training.evaluate import input_columns, predict
    from featurehouse.training.registry import configure_mlflow

    configure_mlflow(settings)
    model = mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
    columns = input_columns(model)
    categorical = {f.name for f in use_case.features if f.dtype == "string"}
    frame = pd.DataFrame(
        {
            c: pd.Series([r.get(c) for r in rows], dtype=object)
            if c in categorical
            else np.array([np.nan if r.get(c) is None else float(r[c]) for r in rows])
            for c in columns
        },
        columns=columns,
    )
    return predict(model, use_case.task, frame).tolist()
