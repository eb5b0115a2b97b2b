"""Entity segments: k-means on profiles, numbered by the first profile feature so that a
segment number means the same at every refit; entities without a profile get none; and a
model blind to some features, to measure what they add."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from featurehouse.errors import DeclarationError
from featurehouse.features.segments import assign_segments, fit_segmentation
from featurehouse.training.models import without_features
from featurehouse.usecase import EVENT_TIMESTAMP, ModelInputs, Segmentation

SEGMENTATION = Segmentation(profile=("volume", "weekend"), column="segment", clusters=3)


def profiles(seed: int, order: list[int]) -> pd.DataFrame:
    """Three well-separated groups of 20 entities (low, middle, high volume), listed in
    `order`."""
    rng = np.random.default_rng(seed)
    centres = {0: (5.0, 0.2), 1: (50.0, 0.4), 2: (500.0, 0.3)}
    rows = [
        (centres[g][0] * rng.uniform(0.9, 1.1), centres[g][1] + rng.normal(0, 0.01))
        for g in order
        for _ in range(20)
    ]
    frame = pd.DataFrame(rows, columns=["volume", "weekend"])
    frame.insert(0, "entity", range(len(frame)))
    frame[EVENT_TIMESTAMP] = pd.Timestamp("2024-03-01")
    frame["group"] = [g for g in order for _ in range(20)]
    return frame


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 2, 0]])
def test_segments_are_numbered_by_volume_whatever_the_row_order(order):
    frame = profiles(seed=4, order=order)

    out = assign_segments(frame, SEGMENTATION)

    assert (out["segment"].astype(int) == out["group"]).all()


def test_the_fitted_model_answers_the_same_numbers_for_new_profiles():
    model = fit_segmentation(profiles(seed=1, order=[0, 1, 2]), SEGMENTATION)

    new = pd.DataFrame({"volume": [4.8, 510.0, 52.0], "weekend": [0.21, 0.3, 0.41]})

    assert list(model.predict(new)) == [0, 2, 1]


def test_an_entity_without_a_complete_profile_gets_no_segment():
    frame = profiles(seed=2, order=[0, 1, 2])
    frame.loc[[3, 30], "weekend"] = np.nan

    out = assign_segments(frame, SEGMENTATION)

    assert out.loc[[3, 30], "segment"].isna().all()
    assert out["segment"].notna().sum() == len(frame) - 2


def test_fewer_entities_than_segments_still_segments_them():
    frame = profiles(seed=3, order=[0]).head(2)

    out = assign_segments(frame, SEGMENTATION)

    assert sorted(out["segment"].astype(int)) == [0, 1]


def test_a_segmentation_needs_two_clusters_and_a_profile():
    with pytest.raises(DeclarationError, match="at least 2 clusters"):
        Segmentation(profile=("volume",), column="segment", clusters=1)


def test_a_model_without_features_never_reads_them():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    labels = 3 * frame["b"]

    def linear(inputs: ModelInputs) -> LinearRegression:
        return LinearRegression()

    model = without_features(linear, ("b",))(ModelInputs(("a", "b"), (), {}))
    model.fit(frame, labels)

    assert list(model[-1].feature_names_in_) == ["a"]
    shuffled = frame.assign(b=rng.permutation(frame["b"].to_numpy()))
    np.testing.assert_allclose(model.predict(shuffled), model.predict(frame))
