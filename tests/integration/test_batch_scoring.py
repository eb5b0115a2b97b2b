"""Batch scoring's model step (`with_predictions`: the champion in `mapInArrow`, compiled to
onnxruntime) against the fitted model's own `predict_proba` on the same rows."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn.model_selection import FixedThresholdClassifier

from featurehouse.scoring import with_predictions
from featurehouse.training.evaluate import model_inputs
from featurehouse.training.models import boosted_trees_classifier
from featurehouse.training.registry import model_requirements
from featurehouse.training.train import SKOPS_TRUSTED_TYPES
from featurehouse.usecases.predictive_maintenance import USE_CASE


def test_batch_scoring_predicts_what_the_model_predicts(spark, tmp_path):
    """Integer counts with nulls (bigint in Spark), missing doubles, a category the model
    never saw: every probability equals sklearn's to the last bit, the flag follows the
    threshold, and the kept columns pass through unchanged."""
    rng = np.random.default_rng(3)
    n = 2_000
    inputs = model_inputs(USE_CASE, {"max_iter": 30, "random_state": 0})
    integers = {f.name for f in USE_CASE.features if f.dtype == "bigint"}
    frame = pd.DataFrame({"machine_id": np.arange(n, dtype="int64")})
    for name in inputs.numeric:
        if name in integers:
            counts = pd.array(rng.poisson(3, n), dtype="Int64")
            counts[rng.random(n) < 0.1] = pd.NA
            frame[name] = counts
        else:
            values = rng.normal(size=n)
            values[rng.random(n) < 0.05] = np.nan
            frame[name] = values
    frame["model"] = rng.choice(["model1", "model2", "model3"], n)
    label = (frame["volt_mean_3h"].fillna(0) + (frame["model"] == "model3") > 0.8).astype(int)
    features = frame[list(inputs.columns)].astype({c: "float64" for c in inputs.numeric})
    # The decision threshold travels inside the model, as training registers it.
    model = FixedThresholdClassifier(boosted_trees_classifier(inputs), threshold=0.4)
    model.fit(features, label)
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        str(path),
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=model_requirements(),
    )
    frame.loc[:9, "model"] = "never seen"  # after fitting: unknown to the model
    features = frame[list(inputs.columns)].astype({c: "float64" for c in inputs.numeric})
    expected = model.predict_proba(features)[:, 1]

    rows = spark.createDataFrame(frame.astype({"model": object}).replace({pd.NA: None}))
    assert dict(rows.dtypes)["age"] == "bigint"
    scored = with_predictions(rows, str(path), USE_CASE, keep=["machine_id"])
    got = scored.toPandas().sort_values("machine_id").reset_index(drop=True)

    task = USE_CASE.task
    assert list(got.columns) == ["machine_id", task.prediction, task.flag]
    np.testing.assert_array_equal(got["machine_id"].to_numpy(), frame["machine_id"].to_numpy())
    np.testing.assert_array_equal(got[task.prediction].to_numpy(), expected)
    np.testing.assert_array_equal(got[task.flag].to_numpy(), (expected >= 0.4).astype(int))
    assert 0 < got[task.flag].sum() < n
