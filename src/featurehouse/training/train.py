"""The training job of a use case, in four steps:

1. build the point-in-time training set from Feast (`training.dataset`);
2. fit and evaluate (`training.evaluate`);
3. log the run to MLflow: parameters, metrics, the training-set spec, the drift reference;
4. register the model as `challenger`, and promote it to `champion` if it beats the
   champion on the same test window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from tempfile import TemporaryDirectory

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from featurehouse.config import Settings
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import feature_references, feature_store
from featurehouse.store.training_set import TrainingSetSpec
from featurehouse.training.dataset import SPEC_ARTIFACT, build_training_dataset
from featurehouse.training.evaluate import (
    Evaluation,
    fit_and_evaluate,
    predict,
    promotion_metric,
    task_metrics,
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
from featurehouse.usecase import EVENT_TIMESTAMP, Classification, UseCase

log = logging.getLogger(__name__)

# Types the skops format must be told to trust when saving and loading our pipeline:
# we wrote the model ourselves, so its tree arrays are not hostile.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
]
REFERENCE_ARTIFACT = "reference/training_reference.parquet"
THRESHOLD_TAG = "decision_threshold"


@dataclass(frozen=True)
class TrainingResult:
    use_case: str
    run_id: str
    model: ModelVersionRef
    test_metrics: dict[str, float]
    baseline_metrics: dict[str, float] | None
    promotion_metric: str
    champion_metric: float | None
    promoted: bool
    champion_version: str


def train(lake: Lakehouse, settings: Settings, use_case: UseCase) -> TrainingResult:
    training_set, spec = build_training_dataset(lake, settings, use_case)
    keys = list(use_case.keys)
    frame = (
        training_set.toPandas()
        .sort_values([EVENT_TIMESTAMP, *keys], kind="stable")
        .reset_index(drop=True)
    )
    uc_settings = settings.use_case(use_case.name)
    metric = promotion_metric(use_case, uc_settings)
    evaluation = fit_and_evaluate(use_case, frame, uc_settings)

    configure_mlflow(settings, use_case.name)
    with mlflow.start_run(run_name=f"train-{use_case.name}") as run:
        log_run(lake, settings, use_case, frame, evaluation, spec)
        challenger = register(settings, use_case, evaluation, run.info.run_id)
        champion, champion_metric, promoted = promote(
            settings, use_case, challenger, evaluation, metric
        )
    return TrainingResult(
        use_case=use_case.name,
        run_id=run.info.run_id,
        model=challenger,
        test_metrics=evaluation.test_metrics,
        baseline_metrics=evaluation.metrics.get("baseline_test"),
        promotion_metric=metric,
        champion_metric=champion_metric,
        promoted=promoted,
        champion_version=challenger.version if promoted else champion.version,
    )


def log_run(
    lake: Lakehouse,
    settings: Settings,
    use_case: UseCase,
    frame: pd.DataFrame,
    evaluation: Evaluation,
    spec: TrainingSetSpec,
) -> None:
    """Parameters, metrics per part, feature references, the spec and the drift reference."""
    uc_settings = settings.use_case(use_case.name)
    split = evaluation.split
    service = settings.feature_service(use_case.name)
    params = {
        **{f"model_{k}": v for k, v in uc_settings.model.items()},
        "use_case": use_case.name,
        "task": use_case.task.kind,
        "label": use_case.label.name,
        "label_horizon": str(use_case.label.horizon),
        "spine_every": str(use_case.spine.every),
        "split_by": use_case.split.by,
        "feature_service": service,
        "training_start": str(frame[EVENT_TIMESTAMP].min()),
        "validation_start": str(split.validation_start),
        "test_start": str(split.test_start),
        "training_end": str(frame[EVENT_TIMESTAMP].max()),
        **{f"rows_{name}": len(part) for name, part in split.parts().items()},
    }
    if evaluation.threshold is not None:
        params[THRESHOLD_TAG] = round(evaluation.threshold, 6)
    mlflow.log_params(params)
    for part, values in evaluation.metrics.items():
        mlflow.log_metrics({f"{part}_{k}": v for k, v in values.items() if v == v})
    mlflow.log_dict(
        {
            "feature_service": service,
            "feature_references": feature_references(feature_store(settings), service),
            "feature_tables": {t.view_name: lake.name(t.name) for t in use_case.tables},
        },
        "features.json",
    )
    mlflow.log_dict(spec.to_dict(), SPEC_ARTIFACT)
    held_out = pd.concat([split.validation, split.test])
    _log_reference(
        use_case, evaluation, held_out, uc_settings.training.reference_sample_rows,
        uc_settings.training.random_state,
    )  # fmt: skip


def _log_reference(
    use_case: UseCase, evaluation: Evaluation, held_out: pd.DataFrame, max_rows: int, seed: int
) -> None:
    """The baseline of drift monitoring: features and predictions on the held-out window.

    Held-out rows, not training rows: predictions on data the model was fitted to are
    overconfident, and would make every later window look like prediction drift.
    """
    columns = evaluation.inputs.columns
    sample = held_out.sample(n=min(max_rows, len(held_out)), random_state=seed)
    reference = sample[[EVENT_TIMESTAMP, *columns]].copy()
    reference[use_case.task.prediction] = predict(evaluation.model, use_case.task, sample[columns])
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))


def register(
    settings: Settings, use_case: UseCase, evaluation: Evaluation, run_id: str
) -> ModelVersionRef:
    """Log the model and register it as the use case's `challenger`."""
    columns = evaluation.inputs.columns
    # Numbers as doubles: a count that has no row at serving time arrives as a missing value,
    # which an integer column of the signature would refuse.
    numeric = list(evaluation.inputs.numeric)
    train = evaluation.split.train[columns].astype({c: "float64" for c in numeric})
    classifier = isinstance(use_case.task, Classification)
    metadata = {"feature_service": settings.feature_service(use_case.name)}
    if evaluation.threshold is not None:
        metadata[THRESHOLD_TAG] = evaluation.threshold
    info = mlflow.sklearn.log_model(
        evaluation.model,
        name="model",
        signature=infer_signature(train.head(100), evaluation.test_predictions[:100]),
        input_example=train.head(3),
        pyfunc_predict_fn="predict_proba" if classifier else "predict",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        # Given, not inferred: MLflow's inference imports the model in a subprocess (10 s).
        pip_requirements=model_requirements(),
        metadata=metadata,
    )
    # The client, not `registered_model_name`: the fluent API prints to the console.
    client = MlflowClient()
    name = settings.model_name(use_case.name, use_case.model_name)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=use_case.description)
    version = client.create_model_version(
        name, info.model_uri, run_id=run_id, model_id=info.model_id
    )
    challenger = ModelVersionRef(name, str(version.version), run_id)
    if evaluation.threshold is not None:
        client.set_model_version_tag(
            challenger.name, challenger.version, THRESHOLD_TAG, str(evaluation.threshold)
        )
    set_alias(client, challenger, CHALLENGER)
    return challenger


def model_requirements() -> list[str]:
    """What loading the logged model needs, pinned to the versions it was trained with."""
    return [f"{name}=={version(name)}" for name in ("scikit-learn", "numpy", "pandas", "skops")]


def promote(
    settings: Settings,
    use_case: UseCase,
    challenger: ModelVersionRef,
    evaluation: Evaluation,
    metric: str,
) -> tuple[ModelVersionRef | None, float | None, bool]:
    """(champion before, its score on the challenger's test window, promoted?)."""
    client = MlflowClient()
    champion = version_with_alias(client, challenger.name, CHAMPION)
    champion_metric = _score_champion(champion, use_case, evaluation, metric)
    if champion_metric is not None:
        mlflow.log_metric(f"champion_test_{metric}", champion_metric)
    cfg = settings.use_case(use_case.name).training
    promoted = should_promote(
        metric, evaluation.test_metrics[metric], champion_metric, cfg.min_improvement
    )
    if promoted:
        set_alias(client, challenger, CHAMPION)
    mlflow.set_tag("promoted_to_champion", str(promoted).lower())
    return champion, champion_metric, promoted


def _score_champion(
    champion: ModelVersionRef | None, use_case: UseCase, evaluation: Evaluation, metric: str
) -> float | None:
    """The champion's score on the challenger's test window; None when it cannot be scored there."""
    if champion is None:
        return None
    model = mlflow.sklearn.load_model(champion.uri)
    test = evaluation.split.test
    try:
        predictions = predict(model, use_case.task, test[list(model.feature_names_in_)])
    except (KeyError, AttributeError) as exc:
        log.warning("champion %s cannot score the test window (%s)", champion.version, exc)
        return None
    threshold = decision_threshold(champion)
    labels = test[use_case.label.name].to_numpy()
    return task_metrics(use_case.task, labels, predictions, threshold)[metric]


def decision_threshold(version: ModelVersionRef) -> float | None:
    """A classifier version's decision threshold (None for a regressor)."""
    tags = MlflowClient().get_model_version(version.name, version.version).tags
    return float(tags[THRESHOLD_TAG]) if THRESHOLD_TAG in tags else None


def load_reference(run_id: str) -> pd.DataFrame:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT)
    return pd.read_parquet(path)
