"""Typed settings: `conf/base.yml`, each use case's `conf/use_cases/<name>.yml` and
`conf/<env>.yml`, deep-merged in that order and validated once.

Every name of a table, model, experiment or path comes from here. Settings are frozen
and passed explicitly; no module reads configuration by itself.

A use case's settings start from `use_case_defaults` in base.yml, then its own file,
then the environment file's `use_cases.<name>` block. Which use cases exist: those with a
file in `conf/use_cases/`, those named in an environment file or in overrides, and those
installed under the `featurehouse.use_cases` entry-point group.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from featurehouse.errors import ConfigError, DeclarationError

ENVIRONMENTS = ("local", "dev", "staging", "prod")
CONF_DIR_ENV_VAR = "FEATUREHOUSE_CONF_DIR"
ENV_ENV_VAR = "FEATUREHOUSE_ENV"
ENTRY_POINT_GROUP = "featurehouse.use_cases"
USE_CASE_DIR = "use_cases"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _duration(value: Any) -> Any:
    from featurehouse.usecase import duration

    if isinstance(value, str):
        try:
            return duration(value)
        except DeclarationError as exc:
            raise ValueError(str(exc)) from None
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    master: str | None = None
    shuffle_partitions: int = Field(200, ge=1)
    conf: dict[str, str] = {}


class StorageSettings(_Strict):
    root: Path | None = None
    # Each use case's raw files land in a folder of its name under here (unless it sets raw_dir).
    raw_dir: Path
    # Where the feature job stages each batch before checking and publishing it.
    staging_dir: Path


class TableNames(_Strict):
    """The framework's own tables, one of each in every use case's schema, so that the run
    records of two use cases never mix."""

    quarantine: str
    feature_watermarks: str
    data_quality: str
    predictions: str
    drift_metrics: str
    performance: str
    alerts: str
    # Per window, column and slice: counts, nulls, mean, std, min, quantiles, max, distinct.
    drift_profile: str = "drift_profile"
    # Every prediction the service answered (loaded from its batches by `inference-log`).
    inference_log: str = "inference_log"
    # An anomaly use case's flagged rows, merged per entity into events.
    anomaly_events: str = "anomaly_events"
    # One row per batch scoring run: its model version, rows scored and duration.
    scoring_runs: str = "scoring_runs"

    @field_validator("*")
    @classmethod
    def _identifier(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"expected a table name (lower-case letters, digits, _), got {name!r}")
        return name


class TrainingSettings(_Strict):
    validation_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)
    # The metric that selects the model and decides promotion; null: the task's default.
    promotion_metric: str | None = None
    reference_sample_rows: int = Field(ge=100)
    random_state: int = 7
    # Rows the permutation importance is measured on (a sample of the test window).
    importance_rows: int = Field(2000, ge=100)
    # An anomaly detector's threshold when the validation window holds no labelled
    # anomaly to choose it by: flag what is more unusual than this share of fitted rows.
    anomaly_threshold: float = Field(0.99, gt=0, lt=1)


class TuningSettings(_Strict):
    # Hyper-parameter combinations tried per candidate, sampled from its search space
    # (all of them when the space holds fewer).
    trials: int = Field(ge=1)
    seed: int = 7
    # Replaces a candidate's declared search space, by candidate name.
    space: dict[str, dict[str, list[Any]]] = {}


class ScoringSettings(_Strict):
    # Each entity's spine rows within this span of its newest one are scored (null: the
    # newest row only); an anomaly use case scores every row, to find events.
    window: Duration | None = None


class PerformanceSettings(_Strict):
    # Predictions are judged per model version over windows of this length.
    window: Duration = timedelta(days=7)
    # A window worse than the version's test metric by more than this is a drop.
    margin: float = Field(0.1, ge=0)
    # A drop starts a retraining, which then goes through the validation step.
    retrain_on_drop: bool = True


class ValidationSettings(_Strict):
    # The challenger must reach these on the test window (e.g. pr_auc: 0.3, rmse: 20).
    floors: dict[str, float] = {}
    # And beat the champion on the same window by at least this much.
    min_improvement: float = Field(0.0, ge=0)


class DriftSettings(_Strict):
    window: Duration
    sample_rows: int = Field(ge=100)
    psi: float = Field(gt=0)
    ks_pvalue: float = Field(gt=0, lt=1)
    ks_statistic: float = Field(gt=0, le=1)
    drift_share: float = Field(gt=0, le=1)
    retrain_on_drift: bool
    # Which statistic decides a column's verdict (all are reported): see
    # featurehouse.monitoring.drift. psi_or_ks: psi, or ks_pvalue together with ks_statistic.
    numeric_test: Literal[
        "psi_or_ks", "ks", "wasserstein", "psi", "kl_divergence", "jensenshannon"
    ] = "psi_or_ks"
    categorical_test: Literal[
        "chi2_and_tv", "chi2", "total_variation", "l_infinity", "jensenshannon"
    ] = "chi2_and_tv"
    wasserstein: float = Field(0.1, gt=0)  # normalised by the reference's std
    kl_divergence: float = Field(0.1, gt=0)
    jensenshannon: float = Field(0.1, gt=0)
    chi2_pvalue: float = Field(0.01, gt=0, lt=1)
    total_variation: float = Field(0.1, gt=0, le=1)
    l_infinity: float = Field(0.1, gt=0, le=1)
    # Columns whose values slice the windows (each value its own profile and drift rows);
    # null: the use case's declared segments.
    slices: list[str] | None = None
    # Quantile bins of the reference: `grid` for KS and Wasserstein, `bins` for PSI, KL, JS.
    grid: int = Field(100, ge=10, le=250)
    bins: int = Field(10, ge=2, le=50)


class UseCaseSettings(_Strict):
    """One use case's settings; names left null are derived from its name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    # "package.module:ATTRIBUTE" of its `UseCase`, when it is not an installed entry point.
    declaration: str | None = None
    enabled: bool = True
    # The schema (database) of its tables; default: its name.
    lakehouse_schema: str | None = Field(None, alias="schema")
    raw_dir: Path | None = None
    # A data set's file pattern under raw_dir, replacing the declared one, by data set name.
    patterns: dict[str, str] = {}
    model_name: str | None = None
    experiment: str | None = None
    feature_service: str | None = None
    simulation: dict[str, Any] = {}
    # Fixed hyper-parameters of each candidate model, by candidate name.
    models: dict[str, dict[str, Any]] = {}
    training: TrainingSettings
    tuning: TuningSettings
    validation: ValidationSettings = ValidationSettings()
    scoring: ScoringSettings = ScoringSettings()
    performance: PerformanceSettings = PerformanceSettings()
    drift: DriftSettings


class MlflowSettings(_Strict):
    tracking_uri: str
    registry_uri: str
    # Each use case's experiment is <experiment_root>/<use case>.
    experiment_root: str


class OnlineStoreSettings(_Strict):
    """Where `materialize` writes the newest features and the serving path reads them.

    sqlite: `online_store.db` in `feast.store_dir` (local only). redis: Feast's connection
    string "host:port[,db=N,password=...,ssl=true]", given in `connection_string` when it
    holds no secret, else read from the environment variable `connection_string_env` names.
    """

    type: Literal["sqlite", "redis"] = "sqlite"
    connection_string: str | None = None
    connection_string_env: str | None = None

    @model_validator(mode="after")
    def _redis_connection(self) -> OnlineStoreSettings:
        if self.connection_string and "password=" in self.connection_string.lower():
            raise ValueError(
                "a password does not belong in conf: put the whole connection string in an"
                " environment variable and name it in connection_string_env"
            )
        if self.type == "redis" and not (self.connection_string or self.connection_string_env):
            raise ValueError(
                "a redis online store needs connection_string or connection_string_env"
            )
        return self

    def redis_connection_string(self) -> str:
        """The connection string, from the environment when `connection_string_env` is set."""
        if self.connection_string_env:
            value = os.environ.get(self.connection_string_env, "").strip()
            if not value:
                raise ConfigError(
                    f"the redis online store reads its connection string from the environment"
                    f" variable {self.connection_string_env}, which is not set"
                    " (feast.online_store.connection_string_env)"
                )
            return value
        if not self.connection_string:
            raise ConfigError("feast.online_store: no redis connection string configured")
        return self.connection_string


class FeastSettings(_Strict):
    repo_path: Path
    # The folder of the file registry (and of the SQLite online store, locally).
    store_dir: Path
    online_store: OnlineStoreSettings = OnlineStoreSettings()


class QualitySettings(_Strict):
    # Raw events outside [earliest_timestamp, now + max_future] are quarantined.
    earliest_timestamp: datetime
    max_future: Duration
    # A feature table whose newest row is older than this fails its freshness check
    # (null: not checked, e.g. for simulated history).
    max_staleness: Duration | None = None


class LayoutSettings(_Strict):
    # OPTIMIZE (clusters the files by each table's clustering columns) after every write.
    optimize: bool
    # VACUUM after every write; files older than this that the table no longer uses are
    # deleted. Time travel (and training-set rebuilds) reach back this far.
    vacuum: bool
    vacuum_retention_hours: int = Field(ge=0)


class AlertSettings(_Strict):
    """Where alerts are posted, besides the alerts table and the log: a webhook URL, given
    directly or (when it holds a token) read from the environment variable named."""

    webhook_url: str | None = None
    webhook_url_env: str | None = None

    def url(self) -> str | None:
        if self.webhook_url_env and os.environ.get(self.webhook_url_env):
            return os.environ[self.webhook_url_env]
        return self.webhook_url


class InferenceLogSettings(_Strict):
    """Every answered prediction, queued in memory and written in batches off the request
    path (Parquet files), then loaded into each use case's `inference_log` Delta table.

    A crash loses what is still queued: at most `batch_rows` rows or `flush_interval` of
    traffic, whichever comes first (a graceful stop writes everything)."""

    enabled: bool = True
    # Where the batches land: <dir>/<use case>/pending/*.parquet. null locally:
    # <storage.root>/serving/inference_log; on Databricks, a Unity Catalog volume.
    dir: Path | None = None
    batch_rows: int = Field(1000, ge=1)
    flush_interval: Duration = timedelta(seconds=5)
    # Rows held in memory at most; beyond it the oldest are dropped (and counted), so
    # that a stuck disk never takes the service down.
    max_queue_rows: int = Field(100_000, ge=1)


class ServingSettings(_Strict):
    """The prediction service (`featurehouse serve`)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Worker processes (each loads the models and polls the registry on its own).
    workers: int = Field(1, ge=1)
    # More entities than this in one request is refused with 413.
    max_batch: int = Field(1000, ge=1)
    # How often the registry's `champion` alias is checked; a moved alias is picked up
    # without a restart.
    poll_interval: Duration = timedelta(seconds=30)
    # An entity whose features are older than a view's TTL is still predicted (as Feast
    # still serves them), with status "expired <views>"; false refuses it per entity.
    predict_expired: bool = True
    # OpenMP / BLAS threads for the model: one per request is fastest on small inputs.
    model_threads: int = Field(1, ge=1)
    inference_log: InferenceLogSettings = InferenceLogSettings()
    # Where the deployed service answers, e.g. http://predict.internal:8000: performance
    # monitoring reads each use case's request latency from its /metrics (null: not read).
    url: str | None = None


class Settings(_Strict):
    env: str
    project: str
    project_root: Path
    spark: SparkSettings
    storage: StorageSettings
    catalog: str | None
    tables: TableNames
    mlflow: MlflowSettings
    feast: FeastSettings
    quality: QualitySettings
    layout: LayoutSettings
    alerts: AlertSettings = AlertSettings()
    serving: ServingSettings = ServingSettings()
    use_cases: dict[str, UseCaseSettings]

    @property
    def is_local(self) -> bool:
        return self.storage.root is not None

    @property
    def enabled_use_cases(self) -> list[str]:
        return [name for name, uc in self.use_cases.items() if uc.enabled]

    def use_case(self, name: str) -> UseCaseSettings:
        try:
            return self.use_cases[name]
        except KeyError:
            known = ", ".join(self.use_cases) or "none"
            raise ConfigError(f"unknown use case {name!r}: known use cases are {known}") from None

    def schema_of(self, use_case: str) -> str:
        return self.use_case(use_case).lakehouse_schema or use_case

    def table(self, use_case: str, key: str) -> str:
        """The full name of a use case's table: `[catalog.]schema.table`.

        `key` is a data set or feature table name, or a key of `tables` (the framework's own).
        """
        return self._in_schema(use_case, getattr(self.tables, key, key))

    def model_name(self, use_case: str, declared: str) -> str:
        """The registered model: `[catalog.]schema.model`, as Unity Catalog names models."""
        return self._in_schema(use_case, self.use_case(use_case).model_name or declared)

    def segmentation_model_name(self, use_case: str, table: str) -> str:
        """The registered model of a table's segmentation, beside the use case's model."""
        return self._in_schema(use_case, f"{table}_model")

    def _in_schema(self, use_case: str, name: str) -> str:
        schema = self.schema_of(use_case)
        return f"{self.catalog}.{schema}.{name}" if self.catalog else f"{schema}.{name}"

    def experiment(self, use_case: str) -> str:
        return self.use_case(use_case).experiment or f"{self.mlflow.experiment_root}/{use_case}"

    def feature_service(self, use_case: str) -> str:
        return self.use_case(use_case).feature_service or use_case

    def raw_dir(self, use_case: str) -> Path:
        return self.use_case(use_case).raw_dir or self.storage.raw_dir / use_case


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


def installed_use_cases() -> dict[str, str]:
    """Use cases installed as entry points: name -> "module:attribute" (nothing is imported)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


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
    base_file = conf_dir / "base.yml"
    base = _read_yaml(base_file)
    defaults = base.pop("use_case_defaults", {})
    layers = [(base_file, base)]
    for path in sorted((conf_dir / USE_CASE_DIR).glob("*.yml")):
        layers.append((path, {"use_cases": {path.stem: _read_yaml(path)}}))
    env_file = conf_dir / f"{env}.yml"
    if env_file.exists():
        layers.append((env_file, _read_yaml(env_file)))
    if overrides:
        layers.append((Path("<overrides>"), overrides))

    names = set(installed_use_cases())
    for _, data in layers:
        names |= set(data.get("use_cases") or {})
    names = sorted(names)
    # Every use case starts from the defaults; a bad default is reported against base.yml.
    sources = [(base_file, {"use_cases": {name: defaults for name in names}}), *layers]
    merged: dict[str, Any] = {}
    for _, data in sources:
        merged = deep_merge(merged, data)
    merged.setdefault("use_cases", {})
    for name in names:
        merged["use_cases"][name] = {**(merged["use_cases"][name] or {}), "name": name}
    merged["env"] = env
    merged["project_root"] = conf_dir.parent
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, sources)) from None
    bad_names = [n for n in names if not _NAME.match(n)]
    if bad_names:
        raise ConfigError(f"use case names {bad_names}: use lower-case letters, digits and _")
    return _resolve_local_paths(settings)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
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
    use_cases = {
        name: uc.model_copy(update={"raw_dir": absolute(uc.raw_dir) if uc.raw_dir else None})
        for name, uc in settings.use_cases.items()
    }
    return settings.model_copy(
        update={"storage": storage, "feast": feast, "mlflow": mlflow, "use_cases": use_cases}
    )


def _absolute_sqlite_uri(uri: str, root: Path) -> str:
    """`sqlite:///relative.db` means relative to the project root, not to the working directory."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((root / uri[len(prefix) :]).resolve())
    return uri
