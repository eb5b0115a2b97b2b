"""Configuration: deep merge per environment, and one clear message for every bad file or key."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from featurehouse.config import ENVIRONMENTS, deep_merge, load_settings
from featurehouse.errors import ConfigError
from tests.helpers import PROJECT_ROOT


@pytest.fixture
def conf_dir(tmp_path) -> Path:
    target = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", target)
    return target


def edit(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    path.write_text(yaml.safe_dump(deep_merge(data, changes)))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_loads(env):
    settings = load_settings(env, conf_dir=PROJECT_ROOT / "conf")
    assert settings.env == env
    assert settings.is_local == (env == "local")


def test_deep_merge_keeps_siblings_of_an_overridden_value():
    base = {"spark": {"master": None, "shuffle_partitions": 200, "conf": {"a": "1"}}}
    merged = deep_merge(base, {"spark": {"shuffle_partitions": 4}})
    assert merged == {"spark": {"master": None, "shuffle_partitions": 4, "conf": {"a": "1"}}}
    assert base["spark"]["shuffle_partitions"] == 200  # inputs are not mutated


def test_environment_overrides_only_what_differs():
    local = load_settings("local", conf_dir=PROJECT_ROOT / "conf")
    assert local.spark.shuffle_partitions == 4  # from local.yml
    assert local.spark.conf == {}  # from base.yml
    maintenance = local.use_case("predictive_maintenance")
    assert maintenance.training.validation_fraction == 0.15  # base.yml's use_case_defaults
    assert maintenance.training.promotion_metric == "pr_auc"  # its own file
    assert maintenance.drift.window == timedelta(hours=168)  # its own file, a duration
    assert local.storage.root == PROJECT_ROOT / ".featurehouse"
    assert local.mlflow.tracking_uri == f"sqlite:///{PROJECT_ROOT}/.featurehouse/mlflow/mlflow.db"


def test_names_are_derived_per_use_case_and_carry_the_catalog_on_databricks():
    local, prod = load_settings("local"), load_settings("prod")
    uc = "predictive_maintenance"

    assert local.table(uc, "telemetry") == "predictive_maintenance.telemetry"
    assert local.table(uc, "drift_metrics") == "predictive_maintenance.drift_metrics"
    assert prod.table(uc, "telemetry") == "featurehouse_prod.predictive_maintenance.telemetry"
    assert prod.model_name(uc, "machine_failure") == (
        "featurehouse_prod.predictive_maintenance.machine_failure"
    )
    assert prod.experiment(uc) == "/Shared/featurehouse-prod/predictive_maintenance"
    assert local.feature_service(uc) == "machine_failure_v1"
    assert local.raw_dir(uc) == PROJECT_ROOT / ".featurehouse" / "raw" / uc


def test_unknown_key_names_the_file_and_the_key(conf_dir):
    edit(conf_dir / "local.yml", use_cases={"predictive_maintenance": {"training": {"gap": 12}}})
    with pytest.raises(ConfigError) as error:
        load_settings("local", conf_dir=conf_dir)
    assert (
        f"{conf_dir / 'local.yml'}: unknown key 'use_cases.predictive_maintenance.training.gap'"
        in str(error.value)
    )


def test_bad_value_names_the_file_that_set_it(conf_dir):
    edit(conf_dir / "use_cases" / "predictive_maintenance.yml", drift={"psi": -1})
    with pytest.raises(ConfigError) as error:
        load_settings("dev", conf_dir=conf_dir)
    path = conf_dir / "use_cases" / "predictive_maintenance.yml"
    assert f"{path}: bad value for 'use_cases.predictive_maintenance.drift.psi'" in str(error.value)


def test_a_bad_default_is_reported_against_base_yml(conf_dir):
    edit(conf_dir / "base.yml", use_case_defaults={"training": {"test_fraction": 0.9}})
    with pytest.raises(ConfigError) as error:
        load_settings("local", conf_dir=conf_dir)
    assert (
        f"{conf_dir / 'base.yml'}: bad value for"
        " 'use_cases.predictive_maintenance.training.test_fraction'" in str(error.value)
    )


def test_a_bad_duration_says_how_to_write_one(conf_dir):
    edit(conf_dir / "local.yml", quality={"max_future": "an hour"})
    with pytest.raises(ConfigError) as error:
        load_settings("local", conf_dir=conf_dir)
    assert f"{conf_dir / 'local.yml'}: bad value for 'quality.max_future'" in str(error.value)
    assert "e.g. 30min, 24h, 7d, 2w" in str(error.value)


def test_bad_table_name_is_refused(conf_dir):
    edit(conf_dir / "base.yml", tables={"predictions": "serving.predictions"})
    with pytest.raises(
        ConfigError, match=r"bad value for 'tables.predictions': .*expected a table name"
    ):
        load_settings("local", conf_dir=conf_dir)


def test_a_key_given_twice_in_one_file_is_an_error(conf_dir):
    path = conf_dir / "local.yml"
    path.write_text(path.read_text() + "\nspark:\n  master: local[1]\n")
    with pytest.raises(ConfigError, match=r"local.yml: not valid YAML: .*duplicate key 'spark'"):
        load_settings("local", conf_dir=conf_dir)


def test_a_use_case_file_adds_a_use_case_without_touching_base_yml(conf_dir):
    (conf_dir / "use_cases" / "tiny.yml").write_text(
        "declaration: some.module:USE_CASE\nmodels: {ridge: {alpha: 0.5}}\n"
    )

    tiny = load_settings("local", conf_dir=conf_dir).use_case("tiny")

    assert tiny.declaration == "some.module:USE_CASE"
    assert tiny.models == {"ridge": {"alpha": 0.5}}
    assert tiny.training.test_fraction == 0.2  # from the defaults


def test_an_unknown_use_case_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown use case 'maintenance': known use cases are"):
        load_settings("local").use_case("maintenance")


def test_unknown_environment_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown environment 'lcoal': choose one of local, dev"):
        load_settings("lcoal")


def test_invalid_yaml_names_the_file(conf_dir):
    (conf_dir / "local.yml").write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{conf_dir / 'local.yml'}: not valid YAML"):
        load_settings("local", conf_dir=conf_dir)


def test_missing_base_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found: .*base.yml"):
        load_settings("local", conf_dir=tmp_path)


def test_settings_are_frozen():
    settings = load_settings("local")
    with pytest.raises(ValueError):
        settings.spark.shuffle_partitions = 8
