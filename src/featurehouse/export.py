"""Edge deployment: a use case's champion as a self-contained ONNX bundle.

`export_champion` writes one folder:

- `model.onnx`: the whole pipeline, preprocessing included. One [N, 1] input per feature,
  named as the feature: `tensor(string)` for a categorical one (missing: "None", see
  MISSING_CATEGORY), `tensor(double)` for a numeric one (missing: NaN). Output
  `prediction`, double [N, 1]: the positive class's probability for a classifier, the
  value for a regressor; a classifier also has `label`, int64 [N, 1]: its class at the
  decision threshold the model carries.
- `features.json`: the features in order with their types, the entity keys, the model's
  name and version, the output names, the threshold, and the result of the check below.
- `predict.py`, a standalone predictor needing only onnxruntime and numpy, and
  `sample.json`, a few test-window rows to try it on.

Nothing is written unless the graph predicts what scikit-learn does, within 1e-5, on the
champion's test window plus rows with unseen and missing categories and missing numbers.

skl2onnx converts the pipeline (ColumnTransformer, OrdinalEncoder, any step it knows),
except two parts of our models:
- `FixedThresholdClassifier` has no converter: its `estimator_` is converted, and the
  threshold added to the graph here.
- HistGradientBoosting's converter (skl2onnx 1.20) is unusable: it writes a categorical
  split as `x <= threshold`, losing the category set (onnx/sklearn-onnx#1051); it ignores
  the link of a Poisson or gamma regressor (values stay on the log scale); and with onnx
  1.23 it does not build at all (a boolean attribute). `_convert_trees` writes the trees
  into ai.onnx.ml's TreeEnsemble (opset 5): double thresholds, set membership for
  categories, the baseline as a first tree, then the inverse link.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.usecase import ModelInputs, UseCase

ONNX_FILE = "model.onnx"
FEATURES_FILE = "features.json"
PREDICTOR_FILE = "predict.py"
SAMPLE_FILE = "sample.json"
PREDICTION, LABEL = "prediction", "label"
TOLERANCE = 1e-5
# skl2onnx 1.20 builds graphs up to ai.onnx.ml 3; TreeEnsemble is ai.onnx.ml 5, so the
# import is raised after conversion (the other ai.onnx.ml operator, LabelEncoder, is the
# same at 5).
_BUILD_OPSET, ML_OPSET = {"": 21, "ai.onnx.ml": 3}, 5
UNSEEN_CATEGORY = "__never seen in training__"
# skl2onnx encodes a category by its text, and pandas' None (a missing string) as "None": a
# missing category is sent as "None", which then gets the code scikit-learn gives None (its
# own category if training had one, else unknown). A real category "None" would be mixed up.
MISSING_CATEGORY = "None"
SAMPLE_ROWS = 5
_LEQ, _LT, _MEMBER = 0, 1, 6  # TreeEnsemble's node modes


@dataclass(frozen=True)
class ExportResult:
    use_case: str
    model_name: str
    model_version: str
    out_dir: Path
    inputs: int
    rows_checked: int
    max_abs_diff: float


def export_champion(
    settings: Settings, use_case: UseCase, out_dir: Path | None = None
) -> ExportResult:
    """Convert the champion, check it against scikit-learn on its test window, write the bundle."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from featurehouse.training.evaluate import input_columns, model_inputs
    from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
    from featurehouse.training.train import load_test_window

    configure_mlflow(settings)
    name = settings.model_name(use_case.name, use_case.model_name)
    champion = version_with_alias(MlflowClient(), name, CHAMPION)
    if champion is None:
        raise FeaturehouseError(
            f"{use_case.name}: model {name} has no champion yet: run"
            f" `featurehouse train --use-case {use_case.name}` first"
        )
    model = mlflow.sklearn.load_model(champion.uri)
    inputs = model_inputs(use_case, {})
    if input_columns(model) != inputs.columns:
        raise FeaturehouseError(
            f"{use_case.name}: champion version {champion.version} reads {input_columns(model)},"
            f" but the use case declares {inputs.columns}: train a new champion first"
        )
    about = {
        "use_case": use_case.name,
        "model": {"name": name, "version": champion.version, "run_id": champion.run_id},
        "task": use_case.task.kind,
        "entity_keys": [{"name": k, "type": t} for k, t in use_case.entity.keys.items()],
        "outputs": {
            PREDICTION: use_case.task.prediction,
            LABEL: getattr(use_case.task, "flag", None),
        },
    }
    target = out_dir or (
        Path(settings.storage.root or ".") / "exports" / use_case.name / f"v{champion.version}"
    )
    types = {f.name: f.dtype for f in use_case.features}
    test_window = load_test_window(champion.run_id)
    checked = export_model(model, inputs, types, test_window, target, about)
    return ExportResult(
        use_case.name, name, champion.version, target, len(inputs.columns), **checked
    )


def export_model(
    model: Any,
    inputs: ModelInputs,
    types: Mapping[str, str],
    test_window: pd.DataFrame,
    out_dir: Path,
    about: Mapping[str, Any],
) -> dict[str, Any]:
    """Convert a fitted model, check it on the test window plus `edge_rows`, and write the
    bundle into `out_dir`; `about` (use case, model, task, entity keys, output names) goes
    into features.json as it is. Returns the check: rows and max abs difference."""
    from featurehouse.training.evaluate import decision_threshold

    onnx_model = convert(model, inputs)
    rows = pd.concat([test_window[inputs.columns], edge_rows(test_window, inputs)])
    checked = {"rows_checked": len(rows), "max_abs_diff": check(model, onnx_model, rows, inputs)}
    spec = {
        **about,
        "features": [
            {"name": c, "type": types[c], "onnx_type": _onnx_type(c, inputs)}
            for c in inputs.columns
        ],
        "missing_category": MISSING_CATEGORY,
        "decision_threshold": decision_threshold(model),
        "check": {**checked, "tolerance": TOLERANCE},
        "versions": {p: version(p) for p in ("scikit-learn", "skl2onnx", "onnxruntime")},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ONNX_FILE).write_bytes(onnx_model.SerializeToString())
    (out_dir / FEATURES_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    sample = test_window[inputs.columns].head(SAMPLE_ROWS).to_json(orient="records", indent=2)
    (out_dir / SAMPLE_FILE).write_text(sample + "\n")
    (out_dir / PREDICTOR_FILE).write_text(PREDICTOR)
    return checked


# --- checking ----------------------------------------------------------------------------


def onnx_feeds(frame: pd.DataFrame, inputs: ModelInputs) -> dict[str, np.ndarray]:
    """Features as the graph's inputs: categories as strings (MISSING_CATEGORY when missing),
    numbers as doubles (NaN when missing)."""
    feeds = {}
    for name in inputs.categorical:
        values = frame[name].astype(object)
        values = values.where(values.notna(), MISSING_CATEGORY).map(str)
        feeds[name] = values.to_numpy(object).reshape(-1, 1)
    for name in inputs.numeric:
        feeds[name] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)
    return feeds


def onnx_predict(onnx_model: Any, frame: pd.DataFrame, inputs: ModelInputs) -> dict[str, Any]:
    """The graph's outputs for a frame of features, flattened, by name."""
    session = _session(onnx_model)
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, onnx_feeds(frame, inputs))
    return {name: result.ravel() for name, result in zip(names, results, strict=True)}


def check(model: Any, onnx_model: Any, frame: pd.DataFrame, inputs: ModelInputs) -> float:
    """The max |scikit-learn - ONNX| of the predictions over `frame`; a FeaturehouseError
    above TOLERANCE, or when a classifier's labels differ."""
    from sklearn.base import is_classifier

    features = frame[inputs.columns]
    got = onnx_predict(onnx_model, features, inputs)
    classifier = is_classifier(model)
    expected = model.predict_proba(features)[:, 1] if classifier else model.predict(features)
    difference = float(np.max(np.abs(expected - got[PREDICTION]), initial=0.0))
    if not difference <= TOLERANCE:  # NaN fails too
        raise FeaturehouseError(
            f"the ONNX model's predictions differ from scikit-learn's by up to {difference:.3g}"
            f" (tolerance {TOLERANCE:g}) on {len(frame)} rows; nothing was exported"
        )
    if classifier and not np.array_equal(model.predict(features), got[LABEL]):
        raise FeaturehouseError("the ONNX model's labels differ from scikit-learn's")
    return difference


def edge_rows(frame: pd.DataFrame, inputs: ModelInputs, rows: int = 20) -> pd.DataFrame:
    """The first `rows` rows again with every category unseen, then missing, and with every
    number missing, then every other one."""
    base = frame[inputs.columns].head(rows).astype({c: "float64" for c in inputs.numeric})
    variants = [base.assign(**{c: UNSEEN_CATEGORY for c in inputs.categorical})]
    variants.append(base.assign(**{c: None for c in inputs.categorical}))
    variants.append(base.assign(**{c: math.nan for c in inputs.numeric}))
    variants.append(base.assign(**{c: math.nan for c in inputs.numeric[::2]}))
    return pd.concat(variants, ignore_index=True)


def _session(onnx_model: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])


def _onnx_type(column: str, inputs: ModelInputs) -> str:
    return "tensor(string)" if column in inputs.categorical else "tensor(double)"


# --- conversion ----------------------------------------------------------------------------


def convert(model: Any, inputs: ModelInputs) -> Any:
    """The fitted model as ONNX with outputs `prediction` (and `label` for a classifier).
    A step that cannot be converted is a FeaturehouseError naming it."""
    import onnx
    from skl2onnx import convert_sklearn, get_model_alias
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from sklearn.base import is_classifier
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.model_selection import FixedThresholdClassifier

    from featurehouse.training.evaluate import decision_threshold

    wrapped = isinstance(model, FixedThresholdClassifier)
    estimator = model.estimator_ if wrapped else model
    steps = dict(pipeline_steps(estimator))
    final_path, final = list(steps.items())[-1]
    for path, step in steps.items():
        try:
            get_model_alias(type(step))
        except RuntimeError:
            raise _refused(path, step, "skl2onnx has no converter for it") from None
    if is_classifier(final) and len(final.classes_) != 2:
        raise _refused(
            final_path, final, f"{len(final.classes_)} classes; only binary is supported"
        )
    trees = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
    types = [(c, StringTensorType([None, 1])) for c in inputs.categorical]
    types += [(c, DoubleTensorType([None, 1])) for c in inputs.numeric]
    try:
        onnx_model = convert_sklearn(
            estimator,
            initial_types=types,
            target_opset=_BUILD_OPSET,
            custom_parsers=dict.fromkeys(trees, _parse_trees),
            custom_shape_calculators=dict.fromkeys(trees, _trees_shape),
            custom_conversion_functions=dict.fromkeys(trees, _convert_trees),
            options={id(final): {"zipmap": False}} if is_classifier(final) else None,
        )
    except _Refused as exc:
        path = next(p for p, s in steps.items() if s is exc.step)
        raise _refused(path, exc.step, str(exc)) from None
    except Exception as exc:  # skl2onnx's errors share no base class
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise FeaturehouseError(f"cannot convert the model to ONNX: skl2onnx: {first}") from None

    if is_classifier(final):
        threshold = decision_threshold(model)
        _with_outputs(onnx_model, 0.5 if threshold is None else threshold, final.classes_)
    else:
        _with_outputs(onnx_model)
    graph = onnx_model.graph
    for opset in onnx_model.opset_import:
        if opset.domain == "ai.onnx.ml" and any(n.op_type == "TreeEnsemble" for n in graph.node):
            opset.version = ML_OPSET
    onnx.checker.check_model(onnx_model, full_check=True)
    try:
        _session(onnx_model)
    except Exception as exc:  # onnxruntime's errors share no base class either
        raise FeaturehouseError(f"cannot run the ONNX model in onnxruntime: {exc}") from None
    return onnx_model


def _with_outputs(onnx_model: Any, threshold: float | None = None, classes: Any = None) -> None:
    """Replace skl2onnx's outputs with `prediction`, double [N, 1] (the trees' value, the
    positive column of a classifier's probabilities, or a regressor's value) and, given a
    threshold, `label`, int64 [N, 1]: the class at or above it."""
    from onnx import TensorProto, helper

    graph = onnx_model.graph
    for output in graph.output:  # skl2onnx's output names ("label") become internal ones
        for node in graph.node:
            node.output[:] = [f"fh_{n}" if n == output.name else n for n in node.output]
            node.input[:] = [f"fh_{n}" if n == output.name else n for n in node.input]
    source = f"fh_{graph.output[-1].name}"
    nodes, constants = [], {"fh_shape": ([2], TensorProto.INT64, [-1, 1])}
    if graph.output[-1].name == "probabilities":
        nodes.append(helper.make_node("Gather", [source, "fh_one"], ["fh_positive"], axis=1))
        constants["fh_one"], source = ([1], TensorProto.INT64, [1]), "fh_positive"
    nodes.append(helper.make_node("Cast", [source], ["fh_double"], to=TensorProto.DOUBLE))
    nodes.append(helper.make_node("Reshape", ["fh_double", "fh_shape"], [PREDICTION]))
    outputs = [helper.make_tensor_value_info(PREDICTION, TensorProto.DOUBLE, [None, 1])]
    if threshold is not None:
        constants["fh_threshold"] = ([], TensorProto.DOUBLE, [threshold])
        constants["fh_classes"] = ([2], TensorProto.INT64, [int(c) for c in classes])
        nodes += [
            helper.make_node("GreaterOrEqual", [PREDICTION, "fh_threshold"], ["fh_above"]),
            helper.make_node("Cast", ["fh_above"], ["fh_index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["fh_classes", "fh_index"], [LABEL]),
        ]
        outputs.append(helper.make_tensor_value_info(LABEL, TensorProto.INT64, [None, 1]))
    graph.node.extend(nodes)
    graph.initializer.extend(helper.make_tensor(k, t, d, v) for k, (d, t, v) in constants.items())
    del graph.output[:]
    graph.output.extend(outputs)


def pipeline_steps(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every estimator of a (nested) pipeline with its path, e.g. "encode/categorical", not
    the Pipeline and ColumnTransformer objects that hold them; the final estimator last."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        children = model.steps
    elif isinstance(model, ColumnTransformer):
        children = [(name, step) for name, step, _ in model.transformers_]
    else:
        yield prefix or type(model).__name__, model
        return
    for name, step in children:
        if not isinstance(step, str) and step is not None:  # not "passthrough" or "drop"
            yield from pipeline_steps(step, f"{prefix}/{name}" if prefix else name)


class _Refused(Exception):
    """Our tree converter cannot write this step (`step`) faithfully."""

    def __init__(self, step: Any, reason: str):
        super().__init__(reason)
        self.step = step


def _refused(path: str, step: Any, reason: str) -> FeaturehouseError:
    kind = f"{type(step).__module__}.{type(step).__qualname__}"
    return FeaturehouseError(
        f"cannot convert the model to ONNX: pipeline step {path!r} ({kind}): {reason}"
    )


def _parse_trees(scope, model, inputs, custom_parsers=None):
    """HistGradientBoosting has one double [N, 1] output here, the prediction (a classifier's
    positive probability), not skl2onnx's label and probabilities."""
    from skl2onnx import get_model_alias
    from skl2onnx.common.data_types import DoubleTensorType

    operator = scope.declare_local_operator(get_model_alias(type(model)), model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("value", DoubleTensorType([None, 1])))
    return operator.outputs


def _trees_shape(operator) -> None:
    """Nothing to infer: `_parse_trees` declares the output's type."""


def _convert_trees(scope, operator, container) -> None:
    """Cast to double -> TreeEnsemble (the raw score, baseline included) -> inverse link."""
    from onnx import TensorProto, numpy_helper
    from sklearn._loss.link import IdentityLink, LogitLink, LogLink

    model = operator.raw_operator
    links = {IdentityLink: "Identity", LogLink: "Exp", LogitLink: "Sigmoid"}
    if type(model._loss.link) not in links:
        raise _Refused(model, f"loss {model.loss!r}: its link has no ONNX operator here")
    name = scope.get_unique_variable_name
    x, score = name("x"), name("score")
    container.add_node("Cast", operator.inputs[0].full_name, x, to=TensorProto.DOUBLE)
    attributes = {
        key: numpy_helper.from_array(value, key) if isinstance(value, np.ndarray) else value
        for key, value in tree_ensemble_attributes(model).items()
    }
    # op_version 3 to get past skl2onnx; the model imports ai.onnx.ml 5 (see _BUILD_OPSET).
    container.add_node("TreeEnsemble", x, score, op_domain="ai.onnx.ml", op_version=3, **attributes)
    container.add_node(links[type(model._loss.link)], score, operator.outputs[0].full_name)


def tree_ensemble_attributes(model: Any) -> dict[str, Any]:
    """TreeEnsemble (ai.onnx.ml 5) attributes summing the raw score of a fitted
    HistGradientBoosting model over its input columns, routing rows as it does.

    The model's baseline is the first tree (a lone leaf): sklearn starts from it and adds
    the trees in order, and onnxruntime on one thread sums in tree order, so the two raw
    scores are equal to the last bit, not only within rounding.

    With categorical features, scikit-learn encodes them again inside the model
    (`_preprocessor`: categories first, each value seen in training to a code, anything else
    to NaN); the trees' feature indices and codes refer to that encoding and are mapped back
    to input columns and values here. A numeric node sends x <= threshold left and NaN the
    learnt missing way. A categorical node sends a code of its left set left, another known
    code right, and NaN or an unknown value the missing way: as ONNX's set membership cannot
    say "not in", the node tests the set of the side missing values do not take, so that
    anything outside it, NaN included, takes the missing side.
    """
    columns, values = np.arange(model.n_features_in_), {}
    if getattr(model, "_preprocessor", None) is not None:
        is_categorical = np.asarray(model.is_categorical_, dtype=bool)
        columns = np.concatenate([np.flatnonzero(is_categorical), np.flatnonzero(~is_categorical)])
        encoder = model._preprocessor.named_transformers_["encoder"]
        for feature, known in enumerate(encoder.categories_):
            known = np.asarray(known, dtype=np.float64)
            values[feature] = known[~np.isnan(known)]
    nodes: list[list] = []  # feature, mode, split, missing goes true, then (is leaf, id) x2
    members: list[float] = []
    leaves: list[float] = []

    def write(tree: np.ndarray, left_sets: np.ndarray, index: int) -> tuple[int, int]:
        """(1 and the leaf's position) or (0 and the node's position) of node `index`."""
        node = tree[index]
        if node["is_leaf"]:
            leaves.append(float(node["value"]))
            return 1, len(leaves) - 1
        feature, missing_left = int(node["feature_idx"]), bool(node["missing_go_to_left"])
        true, false = int(node["left"]), int(node["right"])
        if not node["is_categorical"]:
            row = [feature, _LEQ, float(node["num_threshold"]), missing_left]
        else:
            bits = np.asarray(left_sets[node["bitset_idx"]], dtype="<u4").view(np.uint8)
            left = np.flatnonzero(np.unpackbits(bits, bitorder="little"))
            codes = np.arange(len(values[feature]))
            if missing_left:  # test the right set, and swap
                codes, true, false = np.setdiff1d(codes, left), false, true
            else:
                codes = np.intersect1d(codes, left)
            if codes.size:
                row = [feature, _MEMBER, 0.0, False]
                members.extend([*np.sort(values[feature][codes]), math.nan])
            else:  # an empty set: everything, NaN too, takes the false side
                row = [feature, _LT, -math.inf, False]
        nodes.append(row)
        position = len(nodes) - 1
        row += [*write(tree, left_sets, true), *write(tree, left_sets, false)]
        return 0, position

    def lone_leaf(value: float) -> int:
        """A root whose two ways lead to one leaf."""
        leaves.append(value)
        nodes.append([0, _LEQ, 0.0, False, 1, len(leaves) - 1, 1, len(leaves) - 1])
        return len(nodes) - 1

    roots = [lone_leaf(float(np.ravel(model._baseline_prediction)[0]))]
    for (predictor,) in model._predictors:
        if predictor.nodes[0]["is_leaf"]:
            roots.append(lone_leaf(float(predictor.nodes[0]["value"])))
        else:
            roots.append(write(predictor.nodes, predictor.raw_left_cat_bitsets, 0)[1])
    feature, mode, split, missing, true_leaf, true, false_leaf, false = zip(*nodes, strict=True)
    attributes = {
        "tree_roots": roots,
        "nodes_featureids": [int(columns[f]) for f in feature],
        "nodes_modes": np.asarray(mode, dtype=np.uint8),
        "nodes_splits": np.asarray(split, dtype=np.float64),
        "nodes_missing_value_tracks_true": [int(m) for m in missing],
        "nodes_trueleafs": list(true_leaf),
        "nodes_truenodeids": list(true),
        "nodes_falseleafs": list(false_leaf),
        "nodes_falsenodeids": list(false),
        "leaf_targetids": [0] * len(leaves),
        "leaf_weights": np.asarray(leaves, dtype=np.float64),
        "n_targets": 1,
        "aggregate_function": 1,  # SUM
        "post_transform": 0,  # NONE
    }
    if members:
        attributes["membership_values"] = np.asarray(members, dtype=np.float64)
    return attributes


PREDICTOR = '''\
"""Standalone predictor of a featurehouse ONNX bundle: needs only onnxruntime and numpy.

    python predict.py rows.json     a JSON list of objects: feature name -> value
    python predict.py rows.csv      a CSV whose header names the features
    python predict.py - < rows.json

prints CSV: the entity keys the rows have, then the outputs named in features.json (a
classifier's probability and label). A missing value is null or an empty cell.
In Python: `predict(rows)` -> one dict of outputs per row.
"""

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime

HERE = Path(__file__).resolve().parent
SPEC = json.loads((HERE / "features.json").read_text())
SESSION = onnxruntime.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])
OUTPUTS = [output.name for output in SESSION.get_outputs()]


def predict(rows):
    feeds = {}
    for number, row in enumerate(rows, 1):
        absent = [f["name"] for f in SPEC["features"] if f["name"] not in row]
        if absent:
            raise ValueError(f"row {number} lacks {', '.join(absent)} (use null if missing)")
    for feature in SPEC["features"]:
        values = [row[feature["name"]] for row in rows]
        if feature["onnx_type"] == "tensor(string)":
            column = [SPEC["missing_category"] if v in (None, "") else str(v) for v in values]
            feeds[feature["name"]] = np.array(column, dtype=object).reshape(-1, 1)
        else:
            column = [float("nan") if v in (None, "") else float(v) for v in values]
            feeds[feature["name"]] = np.array(column, dtype=np.float64).reshape(-1, 1)
    if not rows:
        return []
    results = [result.ravel().tolist() for result in SESSION.run(OUTPUTS, feeds)]
    names = [SPEC["outputs"][output] for output in OUTPUTS]
    return [dict(zip(names, values)) for values in zip(*results)]


def main(source):
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    rows = list(csv.DictReader(io.StringIO(text))) if source.endswith(".csv") else json.loads(text)
    keys = [k["name"] for k in SPEC["entity_keys"] if rows and all(k["name"] in r for r in rows)]
    writer = csv.writer(sys.stdout, lineterminator="\\n")
    writer.writerow([*keys, *(SPEC["outputs"][output] for output in OUTPUTS)])
    for row, result in zip(rows, predict(rows)):
        writer.writerow([*(row[key] for key in keys), *result.values()])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python predict.py ROWS.json|ROWS.csv|-")
    try:
        main(sys.argv[1])
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
'''
