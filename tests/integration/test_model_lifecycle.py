"""The model's life in the registry, on the small use case: the validation step refuses a
worse challenger, promotes a better one, and rollback restores the previous champion,
recording who, when and why."""

from __future__ import annotations

import json
import shutil

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from featurehouse import jobs
from featurehouse.training.registry import CHAMPION, configure_mlflow
from tests.helpers import local_settings

NAME = "shop_orders"


def with_model(settings, root, **model):
    """The small use case's settings on the lakehouse at `root`, with other hyper-parameters
    (and one trial)."""
    own = settings.use_cases[NAME].model_dump(by_alias=True, exclude={"name"})
    own["raw_dir"] = str(own["raw_dir"])
    own["models"] = {"boosted_trees": {"random_state": 1, **model}}
    own["tuning"] = {"trials": 1, "space": {"boosted_trees": {"learning_rate": [0.1]}}}
    return local_settings(root, use_cases={NAME: own})


def champion(settings) -> str:
    configure_mlflow(settings)
    name = settings.model_name(NAME, "shop_units")
    return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)


@pytest.fixture(scope="module")
def registry(shop_project, shop_outcome, tmp_path_factory):
    """A copy of the small use case's lakehouse whose registry has no champion yet, and a
    weak first champion (two boosting rounds) that the next models are measured against."""
    settings, use_case = shop_project
    root = tmp_path_factory.mktemp("lifecycle") / "lake"
    shutil.copytree(settings.storage.root, root)
    weak = with_model(settings, root, max_iter=2)
    configure_mlflow(weak)
    MlflowClient().delete_registered_model_alias(weak.model_name(NAME, "shop_units"), CHAMPION)
    jobs.train(weak, use_case)
    first = jobs.validate(weak, use_case)
    assert first.promoted, first.verdict
    return weak, use_case, first.model.version


@pytest.fixture(scope="module")
def worse(registry):
    settings, use_case, _ = registry
    weaker = with_model(settings, settings.storage.root, max_iter=1)
    trained = jobs.train(weaker, use_case)
    return weaker, trained, jobs.validate(weaker, use_case)


def test_a_worse_challenger_is_refused_and_the_champion_stays(registry, worse):
    settings, _, first = registry
    _, trained, validation = worse

    assert not validation.promoted and not validation.passed
    failed = {c.name for c in validation.checks if not c.passed}
    assert failed == {"beats_champion"}
    assert validation.champion_version == first == champion(settings)
    tags = MlflowClient().get_model_version(trained.model.name, trained.model.version).tags
    assert tags["validation_status"] == "failed"
    assert tags["validation_beats_champion"] == "fail" and tags["validation_signature"] == "pass"
    logged = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/validation.json")
    assert logged["status"] == "failed" and len(logged["checks"]) == 5


def test_promoting_a_worse_version_by_hand_goes_through_the_same_gate(registry, worse):
    settings, use_case, first = registry
    weaker, trained, _ = worse

    result = jobs.promote(weaker, use_case, trained.model.version, reason="try it by hand")

    assert not result.promoted
    assert champion(settings) == first


def test_a_better_challenger_is_promoted_and_rollback_restores_the_previous_one(registry, worse):
    settings, use_case, first = registry
    strong = with_model(settings, settings.storage.root, max_iter=60)

    trained = jobs.train(strong, use_case)
    validation = jobs.validate(strong, use_case)

    assert validation.promoted, validation.verdict
    assert champion(settings) == trained.model.version != first

    change = jobs.rollback(strong, use_case, reason="a bad week in production")

    assert champion(settings) == first
    assert (change.action, change.replaced, change.reason) == (
        "rollback",
        trained.model.version,
        "a bad week in production",
    )
    name = settings.model_name(NAME, "shop_units")
    tags = MlflowClient().get_model_version(name, first).tags
    assert tags["champion_action"] == "rollback" and tags["champion_by"] == change.by
    history = jobs.model_history(strong, use_case)
    # The pipeline's own champion came first, before this registry lost its alias.
    assert [c.action for c in history.changes][-3:] == ["promote", "promote", "rollback"]
    assert [c.version for c in history.changes][-3:] == [first, trained.model.version, first]
    assert {row.version for row in history.versions} >= {first, trained.model.version}
    recorded = json.loads(MlflowClient().get_registered_model(name).tags["champion_history"])
    assert recorded[-1]["reason"] == "a bad week in production"

    jobs.rollback(strong, use_case, reason="back to the pipeline's champion")
    with pytest.raises(Exception, match="nothing to roll back to"):
        jobs.rollback(strong, use_case, reason="again")
