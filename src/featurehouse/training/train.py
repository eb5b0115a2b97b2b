"""The training job: point-in-time training set from Feast, fit, evaluate, log, register, promote."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from featurehouse.config import Settings
from featurehouse.features import ENTITY_KEY, EVENT_TIMESTAMP, FEATURE_TABLES
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import feature_references, feature_store
from featurehouse.training.dataset import SPEC_ARTIFACT, build_training_dataset
from featurehouse.training.labels import LABEL
from featurehouse.training.model import (
    best_f1_threshold,
    build_model,
    classification_metrics,
    failure_probability,
)
from featurehouse.training.registry import (
    CHALLENGER,
    CHAMPION,
    ModelVersionRef,
    configure_mlflow,
    set_alias,
    should_promote,
    version_with_alias,
)
from featurehouse.training.split import split_by_time

log = logging.getLogger(__name__)

# Types the skops format must be told to trust when saving and loading our pipeline:
# we wrote the model ourselves, so its tree arrays are not hostile.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
REFERENCE_ARTIFACT = "reference/training_reference.parquet"
PREDICTION = "failure_probability"


def model_features() -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names, in feature-service order."""
    features = [f for table in FEATURE_TABLES for f in table.features]
    numeric = [f.name for f in features if f.dtype != "string"]
    categorical = [f.name for f in features if f.dtype == "string"]
    return numeric, categorical


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    model: ModelVersionRef
    test_metrics: dict[str, float]
    champion_metric: float | None
    promoted: bool
    champion_version: str


def train(lake: Lakehouse, settings: Settings) -> TrainingResult:
    cfg = settings.training
    training_set, spec = build_training_dataset(lake, settings)
    frame = (
        training_set.toPandas()
        .sort_values([EVENT_TIMESTAMP, ENTITY_KEY], kind="stable")
        .reset_index(drop=True)
    )
    numeric, categorical = model_features()
    feature_columns = categorical + numeric
    split = split_by_time(
        frame,
        validation_fraction=cfg.validation_fraction,
        test_fraction=cfg.test_fraction,
        gap=timedelta(hours=cfg.label_horizon_hours),
    )
    for name, part in (
        ("train", split.train),
        ("validation", split.validation),
        ("test", split.test),
    ):
        if part.empty or part[LABEL].nunique() < 2 and name == "train":
            raise ValueError(
                f"the {name} split has too few rows or one class only; need more history"
            )

    configure_mlflow(settings)
    client = MlflowClient()
    model = build_model(numeric, categorical, cfg.model)
    with mlflow.start_run(run_name="train-machine-failure") as run:
        model.fit(split.train[feature_columns], split.train[LABEL])
        threshold = best_f1_threshold(
            split.validation[LABEL].to_numpy(),
            failure_probability(model, split.validation[feature_columns]),
        )
        test_scores = failure_probability(model, split.test[feature_columns])
        test_metrics = classification_metrics(split.test[LABEL].to_numpy(), test_scores, threshold)
        val_metrics = classification_metrics(
            split.validation[LABEL].to_numpy(),
            failure_probability(model, split.validation[feature_columns]),
            threshold,
        )
        _log_run(settings, lake, frame, split, threshold, test_metrics, val_metrics)
        mlflow.log_dict(spec.to_dict(), SPEC_ARTIFACT)
        held_out = pd.concat([split.validation, split.test])
        _log_reference(
            model, held_out, feature_columns, cfg.reference_sample_rows, cfg.model.random_state
        )
        signature = infer_signature(split.train[feature_columns].head(100), test_scores[:100])
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=split.train[feature_columns].head(3),
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            registered_model_name=settings.mlflow.model_name,
            metadata={
                "decision_threshold": threshold,
                "feature_service": settings.feast.feature_service,
            },
        )
        challenger = ModelVersionRef(
            settings.mlflow.model_name, str(info.registered_model_version), run.info.run_id
        )
        client.set_model_version_tag(
            challenger.name, challenger.version, "decision_threshold", str(threshold)
        )
        set_alias(client, challenger, CHALLENGER)

        champion = version_with_alias(client, challenger.name, CHAMPION)
        champion_metric = _score_champion(champion, split.test, cfg.promotion_metric)
        if champion_metric is not None:
            mlflow.log_metric(f"champion_test_{cfg.promotion_metric}", champion_metric)
        promoted = should_promote(
            test_metrics[cfg.promotion_metric], champion_metric, cfg.min_improvement
        )
        if promoted:
            set_alias(client, challenger, CHAMPION)
        mlflow.set_tag("promoted_to_champion", str(promoted).lower())
    return TrainingResult(
        run_id=run.info.run_id,
        model=challenger,
        test_metrics=test_metrics,
        champion_metric=champion_metric,
        promoted=promoted,
        champion_version=challenger.version if promoted else champion.version,
    )


def _log_run(settings, lake, frame, split, threshold, test_metrics, val_metrics) -> None:
    cfg = settings.training
    mlflow.log_params(
        {
            **{f"model_{k}": v for k, v in cfg.model.model_dump().items()},
            "label_horizon_hours": cfg.label_horizon_hours,
            "entity_stride_hours": cfg.entity_stride_hours,
            "feature_service": settings.feast.feature_service,
            "training_start": str(frame[EVENT_TIMESTAMP].min()),
            "validation_start": str(split.validation_start),
            "test_start": str(split.test_start),
            "training_end": str(frame[EVENT_TIMESTAMP].max()),
            "rows_train": len(split.train),
            "rows_validation": len(split.validation),
            "rows_test": len(split.test),
            "decision_threshold": round(threshold, 6),
        }
    )
    mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items() if v == v})
    mlflow.log_metrics({f"validation_{k}": v for k, v in val_metrics.items() if v == v})
    store = feature_store(settings)
    mlflow.log_dict(
        {
            "feature_service": settings.feast.feature_service,
            "feature_references": feature_references(store, settings),
            "feature_tables": {t.view_name: lake.name(t.table_key) for t in FEATURE_TABLES},
        },
        "features.json",
    )


def _log_reference(
    model, held_out: pd.DataFrame, feature_columns, max_rows: int, seed: int
) -> None:
    """The baseline of drift monitoring: features and scores on the held-out window.

    Held-out rows, not training rows: scores on data the model was fitted to are
    overconfident, and would make every later window look like prediction drift.
    """
    sample = held_out.sample(n=min(max_rows, len(held_out)), random_state=seed)
    reference = sample[[EVENT_TIMESTAMP, *feature_columns]].copy()
    reference[PREDICTION] = failure_probability(model, sample[feature_columns])
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))


def _score_champion(
    champion: ModelVersionRef | None, test: pd.DataFrame, metric: str
) -> float | None:
    """The champion's score on the challenger's test window; None when it cannot be scored there."""
    if champion is None:
        return None
    champion_model = mlflow.sklearn.load_model(champion.uri)
    try:
        columns = list(champion_model.feature_names_in_)
        scores = failure_probability(champion_model, test[columns])
    except (KeyError, AttributeError) as exc:
        log.warning("champion %s cannot score the test window (%s)", champion.version, exc)
        return None
    threshold = float(
        MlflowClient()
        .get_model_version(champion.name, champion.version)
        .tags.get("decision_threshold", 0.5)
    )
    return classification_metrics(test[LABEL].to_numpy(), scores, threshold)[metric]


def load_reference(run_id: str) -> pd.DataFrame:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT)
    return pd.read_parquet(path)
