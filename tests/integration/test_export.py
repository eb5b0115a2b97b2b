"""Edge export: the champion as an ONNX bundle that predicts what scikit-learn does.

The converter is checked on small fits of the shipped model factories (seconds: a
classifier wrapped with its threshold, regressors, categories seen, unseen and missing,
missing numbers). Then the export job on the small use case's champion (a regressor, from
the shared end-to-end fixture, read only), the standalone predictor of both kinds of bundle
in a fresh virtual environment without featurehouse, and the `featurehouse export` command.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import FixedThresholdClassifier
from typer.testing import CliRunner

from featurehouse import cli, jobs
from featurehouse.errors import FeaturehouseError
from featurehouse.export import (
    FEATURES_FILE,
    LABEL,
    ONNX_FILE,
    PREDICTION,
    PREDICTOR_FILE,
    SAMPLE_FILE,
    TOLERANCE,
    UNSEEN_CATEGORY,
    check,
    convert,
    edge_rows,
    export_model,
    onnx_predict,
)
from featurehouse.training.evaluate import input_columns, model_inputs
from featurehouse.training.models import boosted_trees_classifier, boosted_trees_regressor
from featurehouse.training.registry import CHAMPION, configure_mlflow, version_with_alias
from featurehouse.training.train import load_test_window
from featurehouse.usecase import ModelInputs
from tests.helpers import PROJECT_ROOT, local_settings

INPUTS = ModelInputs(
    numeric=("x", "count"), categorical=("region", "store_type"), params={"max_iter": 40}
)


def frame(seed: int, rows: int = 1500, missing_category: bool = True) -> pd.DataFrame:
    """Two categories (one with None values when `missing_category`), a number with NaNs, a
    count; a class and a positive value that depend on all of them."""
    rng = np.random.default_rng(seed)
    regions = np.array(["north", "south", "east", "west", None][: 5 if missing_category else 4])
    data = pd.DataFrame(
        {
            "region": rng.choice(regions, rows),
            "store_type": rng.choice([f"type_{i}" for i in range(12)], rows),
            "x": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows)),
            "count": rng.integers(0, 50, rows),
        }
    )
    store = data["store_type"].str.slice(5).astype(int) % 5
    region = data["region"].map({"north": 0, "south": 1, "east": 2, "west": 0.5}).fillna(3)
    x = data["x"].fillna(-1)
    data["class"] = ((store > 2) ^ (region >= 1) ^ (x > 0.3)).astype(int)
    data["value"] = np.exp(0.3 * store + region + 0.3 * x) + rng.poisson(2, rows)
    return data


def classifier(inputs: ModelInputs, data: pd.DataFrame, threshold: float = 0.3):
    """As training builds one: the candidate's pipeline, its threshold travelling inside."""
    model = FixedThresholdClassifier(
        boosted_trees_classifier(inputs), threshold=threshold, response_method="predict_proba"
    )
    return model.fit(data[inputs.columns], data["class"])


def regressor(inputs: ModelInputs, data: pd.DataFrame, **params):
    inputs = ModelInputs(inputs.numeric, inputs.categorical, {**inputs.params, **params})
    return boosted_trees_regressor(inputs).fit(data[inputs.columns], data["value"])


def categorical_splits(model) -> int:
    trees = getattr(model, "estimator_", model)[-1]._predictors
    return sum(int(t.nodes["is_categorical"][t.nodes["is_leaf"] == 0].sum()) for (t,) in trees)


NUMBERS_ONLY = ModelInputs(numeric=("x", "count"), categorical=(), params={"max_iter": 40})
MODELS = {
    "classifier": lambda data: (classifier(INPUTS, data), INPUTS),
    "classifier, None never seen": lambda data: (
        classifier(INPUTS, data[data["region"].notna()]),
        INPUTS,
    ),
    "regressor": lambda data: (regressor(INPUTS, data), INPUTS),
    "poisson regressor": lambda data: (regressor(INPUTS, data, loss="poisson"), INPUTS),
    "regressor, numbers only": lambda data: (regressor(NUMBERS_ONLY, data), NUMBERS_ONLY),
}


@pytest.mark.parametrize("kind", MODELS)
def test_the_use_case_models_convert_to_the_same_predictions(kind):
    data = frame(seed=1)
    model, inputs = MODELS[kind](data)
    odd = edge_rows(data, inputs, rows=100)
    rows = pd.concat([data[inputs.columns], odd], ignore_index=True)

    got = onnx_predict(convert(model, inputs), rows, inputs)

    if "classifier" in kind:
        expected = model.predict_proba(rows)[:, 1]
        np.testing.assert_array_equal(got[LABEL], model.predict(rows))
        assert 0 < got[LABEL].mean() < 1
    else:
        expected = model.predict(rows)
    np.testing.assert_allclose(got[PREDICTION], expected, rtol=0, atol=TOLERANCE)
    # Not a comparison of constants: the trees split on the categories, and unseen or
    # missing values change the predictions.
    assert categorical_splits(model) > 0 or not inputs.categorical
    assert not np.allclose(expected[len(data) :], np.tile(expected[:100], 4))
    if inputs.categorical:
        assert (odd["region"] == UNSEEN_CATEGORY).sum() == 100 and odd["region"].isna().sum() >= 100


class Clipper(BaseEstimator, TransformerMixin):
    """A custom step that skl2onnx knows nothing about."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.clip(X, -3, 3)


def test_a_step_without_a_converter_is_named_in_the_error():
    data = frame(seed=2, rows=300)
    pipeline = boosted_trees_classifier(INPUTS)
    pipeline.steps.insert(1, ("clip", Clipper()))
    model = FixedThresholdClassifier(pipeline, threshold=0.5).fit(
        data[INPUTS.columns], data["class"]
    )

    with pytest.raises(FeaturehouseError) as error:
        convert(model, INPUTS)

    assert str(error.value) == (
        "cannot convert the model to ONNX: pipeline step 'clip'"
        " (tests.integration.test_export.Clipper): skl2onnx has no converter for it"
    )


def test_a_multiclass_classifier_is_refused_naming_its_step():
    data = frame(seed=3, rows=300)
    model = boosted_trees_classifier(INPUTS).fit(data[INPUTS.columns], np.arange(300) % 3)

    with pytest.raises(FeaturehouseError, match=r"step 'classifier' \(.*\): 3 classes"):
        convert(model, INPUTS)


def test_a_graph_that_predicts_otherwise_is_not_exported(tmp_path):
    data = frame(seed=4, rows=300)
    model, other = regressor(INPUTS, data), regressor(INPUTS, data, learning_rate=0.3)

    with pytest.raises(FeaturehouseError, match="differ from scikit-learn's by up to"):
        check(model, convert(other, INPUTS), data, INPUTS)


# --- the export job, on the small use case's champion -----------------------------------


@pytest.fixture(scope="module")
def shop_champion(shop_project, shop_outcome):
    """(settings, use case, champion reference, fitted champion, its test window)."""
    settings, use_case = shop_project
    configure_mlflow(settings)
    name = settings.model_name(use_case.name, use_case.model_name)
    champion = version_with_alias(MlflowClient(), name, CHAMPION)
    assert champion is not None, "the small use case's pipeline left no champion"
    model = mlflow.sklearn.load_model(champion.uri)
    return settings, use_case, champion, model, load_test_window(champion.run_id)


@pytest.fixture(scope="module")
def shop_bundle(shop_champion, tmp_path_factory):
    settings, use_case, *_ = shop_champion
    bundle = tmp_path_factory.mktemp("shop") / "bundle"
    return bundle, jobs.export(settings, use_case, bundle)


def test_the_export_job_writes_a_bundle_that_predicts_as_the_champion(shop_champion, shop_bundle):
    _, use_case, champion, model, test_window = shop_champion
    bundle, result = shop_bundle
    inputs = model_inputs(use_case, {})

    assert result.out_dir == bundle and result.model_version == champion.version
    assert result.max_abs_diff <= TOLERANCE and result.rows_checked > len(test_window) > 0
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        [ONNX_FILE, FEATURES_FILE, PREDICTOR_FILE, SAMPLE_FILE]
    )
    spec = json.loads((bundle / FEATURES_FILE).read_text())
    assert spec["features"] == [
        {"name": f.name, "type": f.dtype, "onnx_type": "tensor(double)"} for f in use_case.features
    ]
    assert [f["name"] for f in spec["features"]] == input_columns(model)
    assert spec["entity_keys"] == [
        {"name": "shop", "type": "string"},
        {"name": "product", "type": "bigint"},
    ]
    assert spec["model"] == {
        "name": champion.name,
        "version": champion.version,
        "run_id": champion.run_id,
    }
    assert spec["task"] == "regression" and spec["decision_threshold"] is None
    assert spec["outputs"][PREDICTION] == "units_next_3d_forecast"

    # Independently of the job's own check: the written graph on the test window.
    graph = onnx.load(bundle / ONNX_FILE)
    assert [i.name for i in graph.graph.input] == inputs.columns
    assert [o.name for o in graph.graph.output] == [PREDICTION]
    expected = model.predict(test_window[inputs.columns])
    got = onnx_predict(graph, test_window, inputs)[PREDICTION]
    difference = np.max(np.abs(got - expected))
    print(f"shop_orders champion: max |onnx - scikit-learn| on the test window {difference:.2e}")
    assert difference <= TOLERANCE and np.ptp(expected) > 0


def test_export_before_any_champion_is_one_clear_error(tmp_path):
    from featurehouse.discovery import load_use_case

    settings = local_settings(tmp_path / "lake")

    with pytest.raises(FeaturehouseError) as error:
        jobs.export(settings, load_use_case(settings, "predictive_maintenance"), tmp_path / "out")

    assert str(error.value) == (
        "predictive_maintenance: model predictive_maintenance.machine_failure has no"
        " champion yet: run `featurehouse train --use-case predictive_maintenance` first"
    )
    assert not (tmp_path / "out").exists()


# --- the standalone predictor, in a fresh virtual environment ---------------------------


def _clean_env() -> dict[str, str]:
    """The environment without this project's virtualenv or paths."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A new virtualenv holding only onnxruntime and numpy, at this project's versions (so
    uv's cache serves them)."""
    venv = tmp_path_factory.mktemp("edge") / "venv"
    python, env = venv / "bin" / "python", _clean_env()
    pins = [f"onnxruntime=={version('onnxruntime')}", f"numpy=={version('numpy')}"]
    uv = PROJECT_ROOT / ".tools" / "bin" / "uv"
    uv = str(uv) if uv.exists() else shutil.which("uv")
    if uv:
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([uv, "venv", "--quiet", "--python", base, str(venv)], check=True, env=env)
        install = [uv, "pip", "install", "--quiet", "--python", str(python), *pins]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
        install = [str(python), "-m", "pip", "install", "--quiet", *pins]
    subprocess.run(install, check=True, env=env, timeout=540)
    return python


def run_in(python: Path, bundle: Path, *args: str, stdin: str | None = None):
    return subprocess.run(
        [str(python), *args],
        cwd=bundle,
        env=_clean_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def classifier_bundle(tmp_path_factory):
    """A classifier's bundle, written by the same function as the job's, and its model."""
    data = frame(seed=5)
    model = classifier(INPUTS, data, threshold=0.35)
    bundle = tmp_path_factory.mktemp("classifier") / "bundle"
    about = {
        "use_case": "test",
        "entity_keys": [{"name": "store_id", "type": "bigint"}],
        "outputs": {PREDICTION: "failure_probability", LABEL: "failure_flag"},
    }
    types = {"region": "string", "store_type": "string", "x": "double", "count": "bigint"}
    export_model(model, INPUTS, types, data.tail(300), bundle, about)
    return bundle, model, data.head(200).assign(store_id=np.arange(200))


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_the_standalone_predictor_runs_without_featurehouse(request, bare_python, kind, tmp_path):
    if kind == "classifier":
        bundle, model, rows = request.getfixturevalue("classifier_bundle")
        inputs = INPUTS
    else:
        _, use_case, _, model, test_window = request.getfixturevalue("shop_champion")
        bundle, _ = request.getfixturevalue("shop_bundle")
        inputs, rows = model_inputs(use_case, {}), test_window
    rows = pd.concat([rows.head(60), edge_rows(rows, inputs, rows=10)], ignore_index=True)
    spec = json.loads((bundle / FEATURES_FILE).read_text())
    keys = [k["name"] for k in spec["entity_keys"]]
    rows = rows.assign(**{k: rows[k].ffill() for k in keys})  # edge rows without keys
    (tmp_path / "rows.json").write_text(rows.to_json(orient="records"))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    probability, flag = spec["outputs"][PREDICTION], spec["outputs"][LABEL]

    # Neither featurehouse nor scikit-learn is there: only onnxruntime and numpy.
    for module in ("featurehouse", "sklearn"):
        assert run_in(bare_python, bundle, "-c", f"import {module}").returncode != 0, module
    for source in ("rows.json", "rows.csv"):
        done = run_in(bare_python, bundle, PREDICTOR_FILE, str(tmp_path / source))
        assert done.returncode == 0, done.stderr
        printed = pd.read_csv(io.StringIO(done.stdout))
        assert list(printed.columns) == [*keys, *(c for c in (probability, flag) if c)]
        assert printed[keys].astype(str).equals(rows[keys].astype(str))
        if kind == "classifier":
            expected = model.predict_proba(rows[inputs.columns])[:, 1]
            assert printed[flag].tolist() == model.predict(rows[inputs.columns]).tolist()
        else:
            expected = model.predict(rows[inputs.columns])
        np.testing.assert_allclose(printed[probability], expected, rtol=0, atol=TOLERANCE)

    sample = run_in(
        bare_python, bundle, PREDICTOR_FILE, "-", stdin=(bundle / SAMPLE_FILE).read_text()
    )
    assert sample.returncode == 0, sample.stderr
    assert len(pd.read_csv(io.StringIO(sample.stdout))) == 5


def test_the_standalone_predictor_names_a_missing_feature(classifier_bundle, bare_python, tmp_path):
    bundle, _, rows = classifier_bundle
    (tmp_path / "rows.json").write_text(rows.drop(columns="x").head(2).to_json(orient="records"))

    done = run_in(bare_python, bundle, PREDICTOR_FILE, str(tmp_path / "rows.json"))

    assert done.returncode == 1
    assert done.stderr.strip() == "error: row 1 lacks x (use null if missing)"


# --- the command ------------------------------------------------------------------------


def test_export_command_writes_the_bundle_and_reports_the_check(
    shop_champion, monkeypatch, tmp_path
):
    settings, _, champion, _, _ = shop_champion
    monkeypatch.setattr(cli, "load_settings", lambda env: settings)
    out = tmp_path / "edge"

    result = CliRunner().invoke(
        cli.app, ["export", "--use-case", "shop_orders", "--format", "onnx", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"shop_orders: model {champion.name} version {champion.version} exported to {out}"
    )
    assert "max |onnx - scikit-learn|" in result.stdout
    assert (out / ONNX_FILE).is_file()


def test_export_in_an_unknown_format_is_one_line():
    result = CliRunner().invoke(
        cli.app, ["export", "--use-case", "bike_sharing", "--format", "pmml"]
    )

    assert result.exit_code == 2
    assert result.output.strip() == "error: unknown export format 'pmml': choose one of onnx"
