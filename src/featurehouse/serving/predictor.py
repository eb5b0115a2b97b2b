"""A champion model as a fast function of feature rows, with sklearn's numbers.

Calling a fitted scikit-learn pipeline on one row costs far more than the work: pandas
builds a frame, the ColumnTransformer validates and slices it, and HistGradientBoosting
walks its trees with one call (and one OpenMP region) per tree. `compile_predictor`
looks at the fitted model and, for the pipelines featurehouse's factories build (a
`ColumnTransformer` of `OrdinalEncoder`s and passthrough columns, then a
`HistGradientBoosting*` estimator, possibly inside a `FixedThresholdClassifier`), runs
an equivalent instead:

- categories are looked up in a dict (the fitted encoder's codes; unknown -> NaN, as
  `OrdinalEncoder(unknown_value=nan)`), numbers go straight into a float64 matrix: the
  estimator's own input;
- the trees run in onnxruntime as one `TreeEnsemble` node (ai.onnx.ml 5, double splits),
  built by `featurehouse.export.tree_ensemble_attributes`, which routes missing values,
  categorical sets and unknown categories as sklearn does;
- the estimator's own link (`_loss`) is applied, in numpy.

Any other model goes through sklearn itself (`SklearnPredictor`). A compiled predictor is
checked against the model on probe rows built from the trees' own thresholds and
categories (each side of every split, missing values, unknown categories) before it is
used; on a difference beyond `TOLERANCE` (relative) it is not used.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from featurehouse.training.evaluate import decision_threshold, input_columns
from featurehouse.usecase import Classification, Task

log = logging.getLogger(__name__)

# The largest relative difference from sklearn a compiled predictor may show. Summed in
# sklearn's order (see `tree_ensemble_attributes`) it shows none; the margin is for an
# onnxruntime that would sum in another order (a few ulps).
TOLERANCE = 1e-12
UNSEEN = "\x00unseen category"


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class SklearnPredictor:
    """The model's own `predict_proba` / `predict` on a pandas frame (any sklearn model).
    Numbers are float64 and a missing category is None, as batch scoring hands them."""

    kind = "sklearn"

    def __init__(self, model: Any, task: Task, columns: Sequence[str], categorical: set[str]):
        self.model = model
        self.classifier = isinstance(task, Classification)
        self.columns = list(columns)
        self.categorical = categorical

    def frame(self, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        data = {}
        for name in self.columns:
            values = [row.get(name) for row in rows]
            if name in self.categorical:
                data[name] = pd.Series(values, dtype=object)
            else:
                data[name] = np.array([_number(v) for v in values], dtype=np.float64)
        return pd.DataFrame(data, columns=self.columns)

    def frame_of_batch(self, batch: pa.RecordBatch) -> pd.DataFrame:
        frame = batch.select(self.columns).to_pandas()
        numeric = [c for c in self.columns if c not in self.categorical]
        frame[numeric] = frame[numeric].astype(np.float64)
        return frame

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self._predict(self.frame(rows))

    def predict_batch(self, batch: pa.RecordBatch) -> np.ndarray:
        return self._predict(self.frame_of_batch(batch))

    def _predict(self, features: pd.DataFrame) -> np.ndarray:
        if self.classifier:
            return np.asarray(self.model.predict_proba(features)[:, 1], dtype=np.float64)
        return np.asarray(self.model.predict(features), dtype=np.float64)


@dataclass(frozen=True)
class InputColumn:
    """One column of the estimator's input: a number, or a category's code."""

    source: str
    codes: dict[Any, float] | None  # category -> code; None for a number


class OnnxTreePredictor:
    """A HistGradientBoosting pipeline: encoding by dict, trees in onnxruntime."""

    kind = "onnx-trees"

    def __init__(self, task: Task, columns: list[InputColumn], estimator: Any):
        import onnxruntime as ort
        from onnx import TensorProto, helper

        from featurehouse.export import tree_ensemble_attributes

        self.classifier = isinstance(task, Classification)
        self.input_columns = columns
        self.estimator = estimator
        self.loss = estimator._loss
        attrs = tree_ensemble_attributes(estimator)
        for name, value in list(attrs.items()):
            if isinstance(value, np.ndarray):
                kind = TensorProto.DOUBLE if value.dtype == np.float64 else TensorProto.UINT8
                attrs[name] = helper.make_tensor(name, kind, [len(value)], value.tolist())
        node = helper.make_node("TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", **attrs)
        width = len(columns)
        graph = helper.make_graph(
            [node],
            "trees",
            [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, width])],
            [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, 1])],
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
        )
        names = [c.source for c in columns]
        self.all_numeric = all(c.codes is None for c in columns)
        self.values = operator.itemgetter(*names) if len(names) > 1 else lambda r: (r[names[0]],)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if self.all_numeric:
            try:  # numpy reads None as NaN
                return np.array([self.values(row) for row in rows], dtype=np.float64).reshape(
                    len(rows), len(self.input_columns)
                )
            except KeyError:  # a row without some feature: the general path below
                pass
        out = np.empty((len(rows), len(self.input_columns)), dtype=np.float64)
        for j, column in enumerate(self.input_columns):
            name, codes = column.source, column.codes
            if codes is None:
                out[:, j] = [_number(row.get(name)) for row in rows]
            else:
                out[:, j] = [codes.get(row.get(name), math.nan) for row in rows]
        return out

    def matrix_of_batch(self, batch: pa.RecordBatch) -> np.ndarray:
        out = np.empty((batch.num_rows, len(self.input_columns)), dtype=np.float64)
        for j, column in enumerate(self.input_columns):
            values = batch.column(column.source)
            if column.codes is None:  # a null number is NaN
                out[:, j] = values.to_numpy(zero_copy_only=False)
            else:
                out[:, j] = [column.codes.get(v, math.nan) for v in values.to_pylist()]
        return out

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self._predict(self.matrix(rows))

    def predict_batch(self, batch: pa.RecordBatch) -> np.ndarray:
        return self._predict(self.matrix_of_batch(batch))

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        raw = self.session.run(None, {"X": matrix})[0]
        if self.classifier:
            return np.asarray(self.loss.predict_proba(raw)[:, 1], dtype=np.float64)
        return np.asarray(self.loss.link.inverse(raw.ravel()), dtype=np.float64)


def _unwrap(model: Any) -> Any:
    from sklearn.model_selection import FixedThresholdClassifier

    return model.estimator_ if isinstance(model, FixedThresholdClassifier) else model


def _category_codes(encoder: Any, position: int) -> dict[Any, float]:
    """Category -> its code (the index in the fitted categories). None seen in training is
    a category of its own, as OrdinalEncoder has it; NaN is the missing value."""
    return {
        category: float(index)
        for index, category in enumerate(encoder.categories_[position])
        if not _is_nan(category)
    }


def _input_columns(transformer: Any) -> list[InputColumn] | None:
    """The ColumnTransformer's output columns; None when it does anything but encode
    categories ordinally and pass numbers through."""
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    if getattr(transformer, "sparse_output_", False):
        return None
    out: list[InputColumn] = []
    for _, step, columns in transformer.transformers_:
        if isinstance(step, str) and step == "drop":
            continue
        if not all(isinstance(c, str) for c in columns):
            return None
        # A fitted "passthrough" is an identity FunctionTransformer.
        identity = isinstance(step, FunctionTransformer) and step.func is None
        if (isinstance(step, str) and step == "passthrough") or identity:
            out += [InputColumn(c, None) for c in columns]
        elif isinstance(step, OrdinalEncoder):
            unknown_ok = step.handle_unknown == "error" or _is_nan(step.unknown_value)
            if not unknown_ok or not _is_nan(step.encoded_missing_value):
                return None
            out += [InputColumn(c, _category_codes(step, i)) for i, c in enumerate(columns)]
        else:
            return None
    return out


def _parse(model: Any) -> tuple[list[InputColumn], Any] | None:
    """The estimator's input columns and the estimator, for a pipeline this module runs
    itself; None for any other model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    pipeline = _unwrap(model)
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    (_, transformer), (_, estimator) = pipeline.steps
    trees = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
    if not isinstance(transformer, ColumnTransformer) or not isinstance(estimator, trees):
        return None
    if estimator.n_trees_per_iteration_ != 1 or hasattr(estimator, "feature_names_in_"):
        return None
    if isinstance(estimator, HistGradientBoostingClassifier) and list(estimator.classes_) != [0, 1]:
        return None
    columns = _input_columns(transformer)
    if columns is None or len(columns) != estimator.n_features_in_:
        return None
    return columns, estimator


def probe_rows(
    columns: list[InputColumn], estimator: Any, count: int = 256, seed: int = 0
) -> list[dict]:
    """Rows that take every kind of branch: numbers at, just below and just above the
    trees' thresholds, missing values, known, unknown and missing categories."""
    # The trees' feature index -> the estimator's input column (categories first when
    # the estimator encodes its categorical columns itself).
    order = np.arange(len(columns))
    if getattr(estimator, "_preprocessor", None) is not None:
        mask = np.asarray(estimator.is_categorical_, dtype=bool)
        order = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    thresholds: dict[int, list[float]] = {}
    for (predictor,) in estimator._predictors:
        nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
        for feature, threshold in zip(nodes["feature_idx"], nodes["num_threshold"], strict=True):
            if np.isfinite(threshold):
                thresholds.setdefault(int(order[feature]), []).append(float(threshold))
    choices: dict[str, list[Any]] = {}
    for j, column in enumerate(columns):
        if column.codes is not None:
            choices[column.source] = [*column.codes, None, UNSEEN]
            continue
        used = np.asarray(thresholds.get(j, [0.0]))
        values = np.concatenate([used, np.nextafter(used, -np.inf), np.nextafter(used, np.inf)])
        choices[column.source] = [*values.tolist(), None, 0.0, -1.0, 1e9]
    rng = np.random.default_rng(seed)
    return [
        {name: options[rng.integers(len(options))] for name, options in choices.items()}
        for _ in range(count)
    ]


@dataclass(frozen=True)
class CompiledModel:
    """The champion ready to serve: the predictor, what it reads, a classifier's threshold,
    and how far the compiled predictor was from sklearn on the probe rows."""

    predictor: Any
    columns: list[str]
    threshold: float | None
    max_difference: float | None  # None: not compiled (sklearn itself)

    @property
    def kind(self) -> str:
        return self.predictor.kind


def compile_predictor(model: Any, task: Task, categorical: set[str]) -> CompiledModel:
    """The fastest exact way to run `model`: compiled and checked when possible, else sklearn."""
    columns = input_columns(model)
    threshold = decision_threshold(model)
    fallback = SklearnPredictor(model, task, columns, categorical)
    try:
        parsed = _parse(model)
        if parsed is None:
            return CompiledModel(fallback, columns, threshold, None)
        compiled = OnnxTreePredictor(task, *parsed)
        rows = probe_rows(*parsed)
        ours, theirs = compiled.predict(rows), fallback.predict(rows)
    except Exception as exc:  # an unexpected shape, or onnxruntime refusing the graph
        log.warning("serving %s through sklearn: cannot compile it: %s", type(model).__name__, exc)
        return CompiledModel(fallback, columns, threshold, None)
    difference = float(np.max(np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))))
    if not difference <= TOLERANCE:  # NaN fails too
        log.warning(
            "compiled model differs from sklearn by %s: serving through sklearn", difference
        )
        return CompiledModel(fallback, columns, threshold, None)
    return CompiledModel(compiled, columns, threshold, difference)


_COMPILED: dict[str, CompiledModel] = {}


def predict_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    token: str,
    model: Any,
    task: Task,
    categorical: set[str],
    keep: Sequence[str],
) -> Iterator[pa.RecordBatch]:
    """For Spark's `mapInArrow`: each batch's `keep` columns and the model's prediction
    (`task.prediction`). The model is compiled once per `token` in this Python worker."""
    if token not in _COMPILED:
        _COMPILED.clear()
        _COMPILED[token] = compile_predictor(model, task, categorical)
    predictor = _COMPILED[token].predictor
    names = [*keep, task.prediction]
    for batch in batches:
        if batch.num_rows:
            values = pa.array(predictor.predict_batch(batch), pa.float64())
            yield pa.RecordBatch.from_arrays(
                [*(batch.column(c) for c in keep), values], names=names
            )
