"""Model selection and the promotion gate's pure parts: the trials a candidate gets, the
floors, the champion comparison, and which version a rollback returns to."""

from __future__ import annotations

import pytest

from featurehouse.config import TuningSettings, UseCaseSettings, load_settings
from featurehouse.training.evaluate import better, parameter_sets
from featurehouse.training.registry import ChampionChange, previous_champion
from featurehouse.training.validation import champion_check, columns_check, floors_check
from featurehouse.usecase import Candidate


def settings(trials: int, *, models=None, space=None) -> UseCaseSettings:
    """A use case's settings with this tuning budget, fixed parameters and space."""
    base = load_settings("local").use_case("predictive_maintenance")
    tuning = TuningSettings(trials=trials, space=space or {})
    return base.model_copy(update={"tuning": tuning, "models": models or {}})


CANDIDATE = Candidate("trees", lambda inputs: None, {"depth": (2, 4, 8), "rate": (0.1, 0.3)})


def test_every_combination_is_tried_when_the_budget_allows_and_fixed_params_are_kept():
    sets = parameter_sets(CANDIDATE, settings(10, models={"trees": {"seed": 7}}))

    assert len(sets) == 6
    assert {(s["depth"], s["rate"]) for s in sets} == {
        (d, r) for d in (2, 4, 8) for r in (0.1, 0.3)
    }
    assert all(s["seed"] == 7 for s in sets)


def test_a_smaller_budget_samples_distinct_combinations_the_same_way_each_run():
    first = parameter_sets(CANDIDATE, settings(3))

    assert len(first) == 3
    assert len({tuple(sorted(s.items())) for s in first}) == 3
    assert parameter_sets(CANDIDATE, settings(3)) == first


def test_conf_replaces_the_declared_search_space_and_no_space_means_one_fit():
    assert parameter_sets(CANDIDATE, settings(4, space={"trees": {"depth": [3]}})) == [{"depth": 3}]
    assert parameter_sets(Candidate("plain", lambda inputs: None), settings(4)) == [{}]


@pytest.mark.parametrize(
    ("metric", "score", "best", "expected"),
    [
        ("rmse", 1.0, 2.0, True),  # lower is better
        ("rmse", 2.0, 1.0, False),
        ("pr_auc", 0.6, 0.5, True),
        ("pr_auc", 0.5, 0.5, False),  # a tie keeps the earlier trial
        ("pr_auc", float("nan"), None, False),
        ("pr_auc", 0.1, float("nan"), True),  # anything beats an undefined score
    ],
)
def test_better(metric, score, best, expected):
    assert better(metric, score, best) is expected


def test_floors_apply_in_each_metrics_direction():
    metrics = {"r2": 0.6, "rmse": 12.0}

    assert floors_check(metrics, {"r2": 0.5, "rmse": 15}).passed
    missed = floors_check(metrics, {"r2": 0.7, "rmse": 10})
    assert not missed.passed
    assert "r2 0.6000 vs floor 0.7" in missed.detail and "rmse 12.0000 vs floor 10" in missed.detail
    assert not floors_check({}, {"r2": 0.1}).passed  # a metric that is missing misses its floor
    assert floors_check(metrics, {}).detail == "no floors configured"


def test_the_champion_must_be_beaten_by_the_margin():
    assert champion_check("rmse", 9.0, None, 0.0).passed  # nothing to beat
    assert champion_check("rmse", 9.0, 10.0, 0.5).passed
    assert not champion_check("rmse", 9.8, 10.0, 0.5).passed
    assert not champion_check("pr_auc", 0.5, 0.5, 0.0).passed  # a tie keeps the champion


def test_a_model_reading_other_columns_fails_its_signature_check():
    assert columns_check("signature", ["a", "b"], ["a", "b"]).passed
    check = columns_check("signature", ["a", "c"], ["a", "b"])
    assert not check.passed and check.detail == "missing ['b'], unexpected ['c']"
    assert columns_check("signature", ["b", "a"], ["a", "b"]).detail == "other order"


def change(version, action="promote", replaced=None):
    return ChampionChange(version, "2026-01-01T00:00:00Z", "me", "why", action, replaced)


def test_rollback_goes_to_the_previous_champion_and_never_back_and_forth():
    history = [change("1"), change("2", replaced="1"), change("3", replaced="2")]

    assert previous_champion(history, "3") == "2"
    rolled = [*history, change("2", "rollback", replaced="3")]
    assert previous_champion(rolled, "2") == "1"  # not 3, which was rolled back from
    twice = [*rolled, change("1", "rollback", replaced="2")]
    assert previous_champion(twice, "1") is None
    assert previous_champion([change("1")], "1") is None
