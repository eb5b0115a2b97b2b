"""Typed settings: `conf/base.yml` deep-merged with `conf/<env>.yml`, validated once.

Every name of a table, model, experiment or path comes from here. Settings are
frozen and passed explicitly; no module reads configuration by itself.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from featurehouse.errors import ConfigError

ENVIRONMENTS = ("local", "dev", "staging", "prod")
CONF_DIR_ENV_VAR = "FEATUREHOUSE_CONF_DIR"
ENV_ENV_VAR = "FEATUREHOUSE_ENV"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    master: str | None = None
    shuffle_partitions: int = Field(200, ge=1)
    conf: dict[str, str] = {}


class StorageSettings(_Strict):
    root: Path | None = None
    raw_dir: Path
    # Where the feature job stages each batch before checking and publishing it.
    staging_dir: Path


class TableNames(_Strict):
    machines: str
    telemetry: str
    errors: str
    maintenance: str
    failures: str
    quarantine: str
    machine_attributes: str
    telemetry_features: str
    error_features: str
    maintenance_features: str
    predictions: str
    drift_metrics: str
    data_quality: str
    feature_watermarks: str

    @field_validator("*")
    @classmethod
    def _schema_dot_table(cls, name: str) -> str:
        parts = name.split(".")
        if len(parts) != 2 or not all(p.isidentifier() for p in parts):
            raise ValueError(f"expected 'schema.table', got {name!r}")
        return name


class SimulationSettings(_Strict):
    machines: int = Field(ge=1)
    start: datetime
    days: int = Field(ge=1)
    seed: int


class ModelSettings(_Strict):
    learning_rate: float = Field(gt=0)
    max_iter: int = Field(ge=1)
    max_leaf_nodes: int = Field(ge=2)
    random_state: int


class TrainingSettings(_Strict):
    label_horizon_hours: int = Field(ge=1)
    entity_stride_hours: int = Field(ge=1)
    validation_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)
    model: ModelSettings
    promotion_metric: str
    min_improvement: float = Field(ge=0)
    reference_sample_rows: int = Field(ge=100)

    @field_validator("promotion_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        allowed = ("pr_auc", "roc_auc", "f1", "precision", "recall")
        if metric not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return metric


class MlflowSettings(_Strict):
    tracking_uri: str
    registry_uri: str
    experiment: str
    model_name: str


class FeastSettings(_Strict):
    repo_path: Path
    feature_service: str
    # The folder of the file registry and the SQLite online store (a volume on Databricks).
    store_dir: Path


class DriftSettings(_Strict):
    window_hours: int = Field(ge=1)
    sample_rows: int = Field(ge=100)
    psi: float = Field(gt=0)
    ks_pvalue: float = Field(gt=0, lt=1)
    ks_statistic: float = Field(gt=0, le=1)
    drift_share: float = Field(gt=0, le=1)
    retrain_on_drift: bool


class QualitySettings(_Strict):
    # Raw events outside [earliest_timestamp, now + max_future_minutes] are quarantined.
    earliest_timestamp: datetime
    max_future_minutes: int = Field(ge=0)
    # A feature table whose newest row is older than this fails its freshness check
    # (null: not checked, e.g. for simulated history).
    max_staleness_hours: int | None = Field(None, ge=1)


class LayoutSettings(_Strict):
    # OPTIMIZE (clusters the files by each table's clustering columns) after every write.
    optimize: bool
    # VACUUM after every write; files older than this that the table no longer uses are
    # deleted. Time travel (and training-set rebuilds) reach back this far.
    vacuum: bool
    vacuum_retention_hours: int = Field(ge=0)


class Settings(_Strict):
    env: str
    project: str
    project_root: Path
    spark: SparkSettings
    storage: StorageSettings
    catalog: str | None
    tables: TableNames
    simulation: SimulationSettings
    training: TrainingSettings
    mlflow: MlflowSettings
    feast: FeastSettings
    drift: DriftSettings
    quality: QualitySettings
    layout: LayoutSettings

    def table(self, key: str) -> str:
        """The full table name for a key of `tables`, with the catalog where there is one."""
        name = getattr(self.tables, key)
        return f"{self.catalog}.{name}" if self.catalog else name

    @property
    def is_local(self) -> bool:
        return self.storage.root is not None

    @property
    def feast_repo(self) -> Path:
        return self.feast.repo_path


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into `base` key by key, so overriding one nested value keeps its siblings."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def default_conf_dir() -> Path:
    """`$FEATUREHOUSE_CONF_DIR`, else `conf/` of the source checkout, else the copy inside the wheel."""
    if os.environ.get(CONF_DIR_ENV_VAR):
        return Path(os.environ[CONF_DIR_ENV_VAR])
    package_dir = Path(__file__).resolve().parent
    checkout_conf = package_dir.parent.parent / "conf"
    if checkout_conf.is_dir():
        return checkout_conf
    return package_dir / "_conf"


def load_settings(
    env: str | None = None,
    conf_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Load and validate the settings of one environment.

    `overrides` are merged last (tests use them to point storage at a temporary folder).
    Relative local paths resolve against the project root, the folder holding `conf/`.
    """
    env = env or os.environ.get(ENV_ENV_VAR, "local")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENTS)}")
    conf_dir = (conf_dir or default_conf_dir()).resolve()
    sources = [(conf_dir / "base.yml", _read_yaml(conf_dir / "base.yml"))]
    env_file = conf_dir / f"{env}.yml"
    if env_file.exists():
        sources.append((env_file, _read_yaml(env_file)))
    if overrides:
        sources.append((Path("<overrides>"), overrides))

    merged: dict[str, Any] = {}
    for _, data in sources:
        merged = deep_merge(merged, data)
    project_root = conf_dir.parent
    merged["env"] = env
    merged["project_root"] = project_root
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, sources)) from None
    return _resolve_local_paths(settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _describe_validation_error(exc: ValidationError, sources: list[tuple[Path, dict]]) -> str:
    """One line per problem, naming the key and the file that set it (or should have)."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc)
        origin = _file_setting(loc, sources)
        if error["type"] == "extra_forbidden":
            lines.append(f"{origin}: unknown key '{key}'")
        elif error["type"] == "missing":
            lines.append(f"{sources[0][0]}: missing key '{key}'")
        else:
            lines.append(f"{origin}: bad value for '{key}': {error['msg']}")
    return "invalid configuration\n  " + "\n  ".join(lines)


def _file_setting(loc: list[str], sources: list[tuple[Path, dict]]) -> Path:
    """The last file whose data contains the key path `loc` (the one whose value won)."""
    for path, data in reversed(sources):
        node: Any = data
        for part in loc:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return path
    return sources[-1][0]


def _resolve_local_paths(settings: Settings) -> Settings:
    root = settings.project_root

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (root / path).resolve()

    storage = settings.storage.model_copy(
        update={
            "root": absolute(settings.storage.root) if settings.storage.root else None,
            "raw_dir": absolute(settings.storage.raw_dir),
            "staging_dir": absolute(settings.storage.staging_dir),
        }
    )
    feast = settings.feast.model_copy(
        update={
            "repo_path": absolute(settings.feast.repo_path),
            "store_dir": absolute(settings.feast.store_dir),
        }
    )
    mlflow = settings.mlflow.model_copy(
        update={
            "tracking_uri": _absolute_sqlite_uri(settings.mlflow.tracking_uri, root),
            "registry_uri": _absolute_sqlite_uri(settings.mlflow.registry_uri, root),
        }
    )
    return settings.model_copy(update={"storage": storage, "feast": feast, "mlflow": mlflow})


def _absolute_sqlite_uri(uri: str, root: Path) -> str:
    """`sqlite:///relative.db` means relative to the project root, not to the working directory."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((root / uri[len(prefix) :]).resolve())
    return uri
