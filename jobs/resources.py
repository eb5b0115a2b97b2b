"""What the jobs need besides the jobs, generated from conf/ like the jobs: per target, the
Unity Catalog schemas, volumes and registered models, and the MLflow experiments.

databricks.yml names `jobs.resources:load_resources` under `python.resources`, beside
`jobs.workflows:load_resources`. Every name comes from `featurehouse.config` for the target's
environment (`conf/<target>.yml`), the one place the jobs read them from too:

- one schema per enabled use case (`Settings.schema_of`): its data sets, feature tables and run
  records land there as `<catalog>.<schema>.<table>`;
- the volume of every `/Volumes/<catalog>/<schema>/<volume>/...` path in the settings (the raw
  landing folder of each use case, the feature job's staging folder, the Feast registry), and
  the schema that holds it;
- one registered model per use case (`Settings.model_name`), in the use case's schema,
  and one per segment table (`Settings.segmentation_model_name`);
- one MLflow experiment per use case (`Settings.experiment`).

`${var.ops_group}` (the group that operates featurehouse) may read the tables and volumes,
run the models and read the experiments. The identity that deploys (in staging and prod the CI
service principal, which prod's jobs also run as) owns everything it creates. In staging and
prod nothing that holds data is destroyed by `bundle destroy` or by a rename: a schema,
volume or model with `prevent_destroy` has to be removed by hand.

Two things a bundle cannot create are left to the one-time set-up (see `jobs.prerequisites`
and the README's "Deploying to Databricks"): the catalogs, and the workspace folder each
experiment is created in (MLflow refuses an experiment whose parent folder does not exist).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from databricks.bundles.core import Bundle, Resources
from databricks.bundles.experiments import MlflowExperiment
from databricks.bundles.registered_models import RegisteredModel
from databricks.bundles.schemas import Schema
from databricks.bundles.volumes import Volume

from featurehouse.config import Settings, load_settings
from featurehouse.discovery import load_use_cases
from featurehouse.errors import ConfigError
from featurehouse.usecase import UseCase

OPS_GROUP = "${var.ops_group}"
# Targets whose data outlives a mistaken rename or `bundle destroy`.
PROTECTED_TARGETS = frozenset({"staging", "prod"})
VOLUMES = PurePosixPath("/Volumes")

# What the operators' group may do: read every table and file, run the models, read the runs.
SCHEMA_PRIVILEGES = ["USE_SCHEMA", "SELECT"]
VOLUME_PRIVILEGES = ["READ_VOLUME"]
MODEL_PRIVILEGES = ["EXECUTE"]
EXPERIMENT_LEVEL = "CAN_READ"


@dataclass(frozen=True, order=True)
class VolumeName:
    catalog: str
    schema: str
    volume: str

    @property
    def path(self) -> str:
        return f"/Volumes/{self.catalog}/{self.schema}/{self.volume}"


def volume_of(path: Path, setting: str) -> VolumeName | None:
    """The Unity Catalog volume a `/Volumes/...` path lies in; None for any other path."""
    parts = PurePosixPath(path).parts
    if parts[:2] != VOLUMES.parts:
        return None
    if len(parts) < 5:
        raise ConfigError(
            f"{setting}: {path} is not inside a volume: a Unity Catalog volume path is"
            " /Volumes/<catalog>/<schema>/<volume>[/<folder>...]"
        )
    return VolumeName(*parts[2:5])


def volume_settings(settings: Settings) -> dict[str, Path]:
    """Every folder of the settings that a job reads or writes, by the setting that names it."""
    folders = {
        "storage.staging_dir": settings.storage.staging_dir,
        "feast.store_dir": settings.feast.store_dir,
    }
    if settings.serving.inference_log.enabled and settings.serving.inference_log.dir:
        folders["serving.inference_log.dir"] = settings.serving.inference_log.dir
    for name in settings.enabled_use_cases:
        folders[f"use_cases.{name}.raw_dir"] = settings.raw_dir(name)
    return folders


def volumes(settings: Settings) -> dict[VolumeName, list[str]]:
    """Each volume the jobs use, with the settings that point into it."""
    found: dict[VolumeName, list[str]] = {}
    for setting, folder in volume_settings(settings).items():
        volume = volume_of(folder, setting)
        if volume is not None:
            found.setdefault(volume, []).append(setting)
    return dict(sorted(found.items()))


def qualified_parts(use_case: str, full: str) -> tuple[str, str, str]:
    """(catalog, schema, model) of a registered model's full name."""
    parts = full.split(".")
    if len(parts) != 3:
        raise ConfigError(
            f"use case {use_case}: registered model {full!r} is not <catalog>.<schema>.<model>"
            " (conf/<env>.yml: catalog)"
        )
    return parts[0], parts[1], parts[2]


def schema_key(settings: Settings, catalog: str, schema: str) -> str:
    """The resource key of a schema: its name, or `<catalog>__<schema>` outside the target's catalog."""
    return schema if catalog == settings.catalog else f"{catalog}__{schema}"


def _schema_ref(key: str) -> str:
    # A reference, not the name: the CLI then creates the schema before what lives in it.
    return f"${{resources.schemas.{key}.name}}"


def _lifecycle(target: str) -> dict[str, dict[str, bool]]:
    return {"lifecycle": {"prevent_destroy": True}} if target in PROTECTED_TARGETS else {}


def _schemas(
    settings: Settings, use_cases: Mapping[str, UseCase], target: str
) -> Iterator[tuple[str, Schema]]:
    wanted: dict[tuple[str, str], str] = {}
    for name, use_case in use_cases.items():
        wanted[(str(settings.catalog), settings.schema_of(name))] = (
            f"featurehouse use case {name}: {use_case.description}"
        )
    for volume, setting_names in volumes(settings).items():
        wanted.setdefault(
            (volume.catalog, volume.schema),
            f"featurehouse files: {', '.join(setting_names)}",
        )
    for (catalog, schema), comment in sorted(wanted.items()):
        yield (
            schema_key(settings, catalog, schema),
            Schema.from_dict(
                {
                    "catalog_name": catalog,
                    "name": schema,
                    "comment": comment,
                    "grants": [{"principal": OPS_GROUP, "privileges": SCHEMA_PRIVILEGES}],
                    **_lifecycle(target),
                }
            ),
        )


def _volumes(settings: Settings, target: str) -> Iterator[tuple[str, Volume]]:
    for volume, setting_names in volumes(settings).items():
        key = f"{schema_key(settings, volume.catalog, volume.schema)}__{volume.volume}"
        yield (
            key,
            Volume.from_dict(
                {
                    "catalog_name": volume.catalog,
                    "schema_name": _schema_ref(schema_key(settings, volume.catalog, volume.schema)),
                    "name": volume.volume,
                    "volume_type": "MANAGED",
                    "comment": f"featurehouse: {', '.join(setting_names)}",
                    "grants": [{"principal": OPS_GROUP, "privileges": VOLUME_PRIVILEGES}],
                    **_lifecycle(target),
                }
            ),
        )


def _models(
    settings: Settings, use_cases: Mapping[str, UseCase], target: str
) -> Iterator[tuple[str, RegisteredModel]]:
    """Each use case's model, and the model of each of its segment tables."""
    for name, use_case in use_cases.items():
        full = settings.model_name(name, use_case.model_name)
        comment = (
            f"featurehouse use case {name}. Versions are registered by the training job (alias"
            " 'challenger') and promoted to 'champion' by its validation step."
        )
        yield name, _model(settings, name, full, comment, target)
        for table in use_case.tables:
            if table.segmentation is not None:
                full = settings.segmentation_model_name(name, table.name)
                comment = (
                    f"featurehouse use case {name}: the newest segmentation of {table.name},"
                    " registered by the training job."
                )
                yield f"{name}_{table.name}", _model(settings, name, full, comment, target)


def _model(settings: Settings, use_case: str, full: str, comment: str, target: str):
    catalog, schema, model = qualified_parts(use_case, full)
    return RegisteredModel.from_dict(
        {
            "catalog_name": catalog,
            "schema_name": _schema_ref(schema_key(settings, catalog, schema)),
            "name": model,
            "comment": comment,
            "grants": [{"principal": OPS_GROUP, "privileges": MODEL_PRIVILEGES}],
            **_lifecycle(target),
        }
    )


def _experiments(
    settings: Settings, use_cases: Mapping[str, UseCase]
) -> Iterator[tuple[str, MlflowExperiment]]:
    for name in use_cases:
        yield (
            name,
            MlflowExperiment.from_dict(
                {
                    "name": settings.experiment(name),
                    "permissions": [{"level": EXPERIMENT_LEVEL, "group_name": OPS_GROUP}],
                    "tags": [
                        {"key": "project", "value": "featurehouse"},
                        {"key": "use_case", "value": name},
                    ],
                }
            ),
        )


def experiment_folders(settings: Settings) -> list[str]:
    """The workspace folders the enabled use cases' experiments are created in."""
    return sorted(
        {
            str(PurePosixPath(settings.experiment(name)).parent)
            for name in settings.enabled_use_cases
        }
    )


def add_platform_resources(
    resources: Resources, settings: Settings, use_cases: Mapping[str, UseCase], target: str
) -> None:
    for key, schema in _schemas(settings, use_cases, target):
        resources.add_schema(key, schema)
    for key, volume in _volumes(settings, target):
        resources.add_volume(key, volume)
    for key, model in _models(settings, use_cases, target):
        resources.add_registered_model(key, model)
    for key, experiment in _experiments(settings, use_cases):
        resources.add_mlflow_experiment(key, experiment)


def load_resources(bundle: Bundle) -> Resources:
    """Schemas, volumes, registered models and experiments of the target's environment."""
    resources = Resources()
    try:
        settings = load_settings(bundle.target)
        if settings.catalog is None:
            raise ConfigError(
                f"conf/{bundle.target}.yml: catalog is not set: a Databricks target needs"
                " the Unity Catalog catalog that holds the use cases' schemas"
            )
        add_platform_resources(resources, settings, load_use_cases(settings), bundle.target)
    except ConfigError as exc:
        resources.add_diagnostic_error(str(exc))
    return resources
