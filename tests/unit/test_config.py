"""Configuration: deep merge per environment, and one clear message for every bad file or key."""

from __future__ import annotations

import shutil
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
    assert local.training.label_horizon_hours == 24  # from base.yml
    assert local.storage.root == PROJECT_ROOT / ".featurehouse"
    assert local.mlflow.tracking_uri == f"sqlite:///{PROJECT_ROOT}/.featurehouse/mlflow/mlflow.db"


def test_table_names_carry_the_catalog_on_databricks():
    assert load_settings("local").table("telemetry") == "bronze.telemetry"
    assert load_settings("prod").table("telemetry") == "featurehouse_prod.bronze.telemetry"


def test_unknown_key_names_the_file_and_the_key(conf_dir):
    edit(conf_dir / "local.yml", training={"label_horizon_hourz": 12})
    with pytest.raises(ConfigError) as error:
        load_settings("local", conf_dir=conf_dir)
    assert f"{conf_dir / 'local.yml'}: unknown key 'training.label_horizon_hourz'" in str(
        error.value
    )


def test_bad_value_names_the_file_that_set_it(conf_dir):
    edit(conf_dir / "dev.yml", drift={"psi": -1})
    with pytest.raises(ConfigError) as error:
        load_settings("dev", conf_dir=conf_dir)
    assert f"{conf_dir / 'dev.yml'}: bad value for 'drift.psi'" in str(error.value)


def test_bad_table_name_is_refused(conf_dir):
    edit(conf_dir / "base.yml", tables={"telemetry": "telemetry"})
    with pytest.raises(ConfigError, match=r"bad value for 'tables.telemetry': .*schema.table"):
        load_settings("local", conf_dir=conf_dir)


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
