"""The training job of a use case, in four steps:

1. build the point-in-time training set from Feast (`training.dataset`);
2. select, fit and evaluate (`training.evaluate`): candidates tuned on the validation
   window, the winner refitted and evaluated once on the test window beside a baseline;
3. log the run to MLflow: the trials as nested runs, parameters, metrics, plots,
   permutation importance, the training-set spec, the test window and the drift reference;
4. register the model as the use case's `challenger`, and each segment table's newest
   segmentation as a model of its own (`training.segmentation`).

Promotion is its own gated step: `featurehouse.training.validation`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.inspection import permutation_importance

from featurehouse.config import Settings
from featurehouse.io import Lakehouse
from featurehouse.store.feast_store import feature_references, feature_store
from featurehouse.store.training_set import TrainingSetSpec
from featurehouse.training import plots
from featurehouse.training.dataset import SPEC_ARTIFACT, build_training_dataset
from featurehouse.training.evaluate import (
    Evaluation,
    fit_and_evaluate,
    labels_of,
    predict,
    promotion_metric,
)
from featurehouse.training.registry import (
    CHALLENGER,
    ModelVersionRef,
    configure_mlflow,
    model_requirements,
    register_version,
    set_alias,
)
from featurehouse.training.segmentation import SegmentationResult, register_segmentations
from featurehouse.usecase import EVENT_TIMESTAMP, Anomaly, Classification, UseCase

log = logging.getLogger(__name__)

# Types the skops format must be told to trust when saving and loading our pipeline:
# we wrote the model ourselves, so its tree arrays are not hostile.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.HalfPoissonLoss",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogLink",
    "sklearn._loss.link.Interval",
    # The anomaly detectors: our wrapper, Isolation Forest's trees and their dtypes.
    "featurehouse.training.anomaly.AnomalyDetector",
    # A forecast computed by the feature job, as a model.
    "featurehouse.training.models.ColumnForecast",
    "sklearn.tree._tree.Tree",
    "numpy.dtype",
]
REFERENCE_ARTIFACT = "reference/training_reference.parquet"
CANDIDATES_ARTIFACT = "evaluation/candidates.json"
TEST_WINDOW_ARTIFACT = "evaluation/test_window.parquet"
THRESHOLD_TAG = "decision_threshold"
LABEL_USE_UNSUPERVISED = "threshold and evaluation only; the detector is fitted without it"
LABEL_USE_NONE = "no label declared: threshold at the configured share of fitted rows"


@dataclass(frozen=True)
class TrainingResult:
    use_case: str
    run_id: str
    model: ModelVersionRef
    candidate: str
    params: dict
    trials: int
    test_metrics: dict[str, float]
    baseline: str
    baseline_metrics: dict[str, float]
    promotion_metric: str
    candidate_metrics: dict[str, dict[str, float]]  # each candidate's, on the test window
    segmentations: list[SegmentationResult]  # the segment tables' newest, registered


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
    evaluation = fit_and_evaluate(use_case, frame, uc_settings, metric)

    configure_mlflow(settings, use_case.name)
    with mlflow.start_run(run_name=f"train-{use_case.name}") as run:
        log_trials(evaluation, metric)
        log_run(lake, settings, use_case, frame, evaluation, spec, metric)
        log_plots(use_case, evaluation, uc_settings.training.importance_rows)
        challenger = register(settings, use_case, evaluation, run.info.run_id)
        segmentations = register_segmentations(
            lake, settings, use_case, frame[EVENT_TIMESTAMP].max(), run.info.run_id
        )
    log.info(
        "%s: trained %s (%d trials), %s %.4f on the test window (baseline %s %.4f)",
        use_case.name, evaluation.candidate, len(evaluation.trials), metric,
        evaluation.test_metrics[metric], evaluation.baseline_name,
        evaluation.baseline_metrics[metric],
    )  # fmt: skip
    return TrainingResult(
        use_case=use_case.name,
        run_id=run.info.run_id,
        model=challenger,
        candidate=evaluation.candidate,
        params=dict(evaluation.inputs.params),
        trials=len(evaluation.trials),
        test_metrics=evaluation.test_metrics,
        baseline=evaluation.baseline_name,
        baseline_metrics=evaluation.baseline_metrics,
        promotion_metric=metric,
        candidate_metrics=evaluation.candidate_metrics,
        segmentations=segmentations,
    )


def log_trials(evaluation: Evaluation, metric: str) -> None:
    """Each tuning trial as a nested run: its candidate, parameters and validation metrics."""
    for number, trial in enumerate(evaluation.trials):
        with mlflow.start_run(run_name=f"trial-{number}-{trial.candidate}", nested=True):
            mlflow.log_params({"candidate": trial.candidate, **trial.params})
            mlflow.log_metrics(
                {f"validation_{k}": v for k, v in trial.validation_metrics.items() if v == v}
            )
            mlflow.set_tag("selection_metric", metric)


def log_run(
    lake: Lakehouse,
    settings: Settings,
    use_case: UseCase,
    frame: pd.DataFrame,
    evaluation: Evaluation,
    spec: TrainingSetSpec,
    metric: str,
) -> None:
    """Parameters, metrics per part, feature references, the spec, the test window and the
    drift reference."""
    split = evaluation.split
    service = settings.feature_service(use_case.name)
    params = {
        **{f"model_{k}": v for k, v in evaluation.inputs.params.items()},
        "use_case": use_case.name,
        "task": use_case.task.kind,
        "candidate": evaluation.candidate,
        "trials": len(evaluation.trials),
        "selection_metric": metric,
        "baseline": evaluation.baseline_name,
        "label": use_case.label.name if use_case.label else "none",
        "label_horizon": str(use_case.label.horizon) if use_case.label else "none",
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
    if isinstance(use_case.task, Anomaly):
        params["label_use"] = LABEL_USE_UNSUPERVISED if use_case.label else LABEL_USE_NONE
    mlflow.log_params(params)
    for part, values in evaluation.metrics.items():
        mlflow.log_metrics({f"{part}_{k}": v for k, v in values.items() if v == v})
    for candidate, values in evaluation.candidate_metrics.items():
        mlflow.log_metrics(
            {f"candidate_{candidate}_test_{k}": v for k, v in values.items() if v == v}
        )
    mlflow.log_dict(evaluation.candidate_metrics, CANDIDATES_ARTIFACT)
    mlflow.log_dict(
        {
            "feature_service": service,
            "feature_references": feature_references(feature_store(settings), service),
            "feature_tables": {t.view_name: lake.name(t.name) for t in use_case.tables},
        },
        "features.json",
    )
    mlflow.log_dict(spec.to_dict(), SPEC_ARTIFACT)
    uc_settings = settings.use_case(use_case.name)
    columns = [*use_case.keys, EVENT_TIMESTAMP, *evaluation.inputs.columns, *use_case.label_columns]
    _log_frame(split.test[columns], TEST_WINDOW_ARTIFACT)
    held_out = pd.concat([split.validation, split.test])
    _log_reference(
        use_case, evaluation, held_out, uc_settings.training.reference_sample_rows,
        uc_settings.training.random_state,
    )  # fmt: skip


def _log_frame(frame: pd.DataFrame, artifact: str) -> None:
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact).parent))


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
    _log_frame(reference, REFERENCE_ARTIFACT)


def log_plots(use_case: UseCase, evaluation: Evaluation, importance_rows: int) -> None:
    """The task's evaluation plots and the permutation importance, as run artifacts."""
    test = evaluation.split.test
    labels = labels_of(use_case, test)
    predictions = evaluation.test_predictions
    figures = {}
    if isinstance(use_case.task, Anomaly):
        figures["anomaly_scores"] = plots.anomaly_scores_figure(
            test[EVENT_TIMESTAMP], predictions, evaluation.threshold
        )
    if isinstance(use_case.task, Classification) and len(np.unique(labels)) == 2:
        threshold = evaluation.threshold
        figures = {
            "roc_curve": plots.roc_curve_figure(labels, predictions, 0.5),
            "precision_recall": plots.precision_recall_figure(labels, predictions, threshold),
            "confusion_matrix": plots.confusion_matrix_figure(labels, predictions, threshold),
            "calibration": plots.calibration_figure(labels, predictions),
        }
    elif not isinstance(use_case.task, Classification):  # a regressor: labels are values
        residuals = labels.astype(float) - predictions
        figures = {
            "predicted_vs_actual": plots.predicted_vs_actual_figure(labels, predictions),
            "residuals_over_time": plots.residuals_over_time_figure(
                test[EVENT_TIMESTAMP], residuals
            ),
        }
        if use_case.segments:
            figures["residuals_by_segment"] = plots.residuals_by_segment_figure(
                {s: test[s] for s in use_case.segments}, residuals
            )
    importances = feature_importance(use_case, evaluation, importance_rows)
    mlflow.log_dict(
        importances.sort_values(ascending=False).to_dict(), "evaluation/importance.json"
    )
    figures["permutation_importance"] = plots.importance_figure(importances)
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}.png")
        plots.plt.close(figure)


def feature_importance(use_case: UseCase, evaluation: Evaluation, rows: int) -> pd.Series:
    """Permutation importance on a sample of the test window, by the task's ranking metric;
    without a label, by how far shuffling a feature moves the anomaly scores."""
    test = evaluation.split.test
    sample = test.sample(n=min(rows, len(test)), random_state=0)
    columns = evaluation.inputs.columns
    if use_case.label is None:
        unshuffled = predict(evaluation.model, use_case.task, sample[columns])

        def scoring(model, features, _):
            return -float(np.abs(predict(model, use_case.task, features) - unshuffled).mean())

        target = None
    else:
        classifier = isinstance(use_case.task, Classification)
        scoring = "average_precision" if classifier else "neg_root_mean_squared_error"
        target = sample[use_case.label.name]
    result = permutation_importance(
        evaluation.model, sample[columns], target, scoring=scoring, n_repeats=3, random_state=0
    )
    return pd.Series(result.importances_mean, index=columns)


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
    name = settings.model_name(use_case.name, use_case.model_name)
    challenger = register_version(name, use_case.description, info, run_id)
    client = MlflowClient()
    if evaluation.threshold is not None:
        client.set_model_version_tag(
            challenger.name, challenger.version, THRESHOLD_TAG, str(evaluation.threshold)
        )
    set_alias(client, challenger, CHALLENGER)
    return challenger


def registered_threshold(version: ModelVersionRef) -> float | None:
    """A classifier version's decision threshold from its registry tag (None for a
    regressor), for code that loads the model as pyfunc, which hides the threshold."""
    tags = MlflowClient().get_model_version(version.name, version.version).tags
    return float(tags[THRESHOLD_TAG]) if THRESHOLD_TAG in tags else None


def load_reference(run_id: str) -> pd.DataFrame:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT)
    return pd.read_parquet(path)


def load_test_window(run_id: str) -> pd.DataFrame:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TEST_WINDOW_ARTIFACT)
    return pd.read_parquet(path)
