"""What a target needs before its first `databricks bundle deploy`, from the same settings as
the bundle: the commands print it, CI and the README run it.

    python -m jobs.prerequisites prod            # what to create, and who needs which grant
    python -m jobs.prerequisites prod --folders  # the experiment folders only, one a line

A bundle cannot create two things the deployment needs:

- the Unity Catalog catalog of the target (`catalog` in conf/<target>.yml): creating one
  needs the CREATE CATALOG privilege and a decision about its storage, so an admin does it once;
- the workspace folder each MLflow experiment lives in (`mlflow.experiment_root`): MLflow
  refuses to create an experiment whose parent folder does not exist, and the bundle declares
  the experiments. `databricks workspace mkdirs` creates the folders (idempotent), before
  every deploy in CI.
"""

from __future__ import annotations

import argparse
import sys

from featurehouse.config import ENVIRONMENTS, load_settings
from featurehouse.discovery import load_use_cases
from jobs.resources import experiment_folders, volumes

TARGETS = [env for env in ENVIRONMENTS if env != "local"]


def describe(target: str) -> str:
    settings = load_settings(target)
    folders = experiment_folders(settings)
    lines = [
        f"Before the first `databricks bundle deploy -t {target}`:",
        f"  catalog       {settings.catalog} (an admin: CREATE CATALOG {settings.catalog})",
        "  grants        on it, to the identity that deploys: USE CATALOG, CREATE SCHEMA;"
        " to the operators' group (databricks.yml variables.ops_group): USE CATALOG",
        *[f"  folder        {folder} (databricks workspace mkdirs {folder})" for folder in folders],
        "The deployment then creates, from conf/:",
        *[
            f"  schema        {settings.catalog}.{settings.schema_of(n)}"
            for n in settings.enabled_use_cases
        ],
        *[f"  volume        {volume.path} (and its schema)" for volume in volumes(settings)],
        *[
            f"  model         {settings.model_name(n, uc.model_name)}"
            for n, uc in load_use_cases(settings).items()
        ],
        *[f"  experiment    {settings.experiment(n)}" for n in settings.enabled_use_cases],
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.prerequisites", description=__doc__)
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument(
        "--folders", action="store_true", help="print only the experiment folders, one a line"
    )
    args = parser.parse_args(argv)
    if args.folders:
        print("\n".join(experiment_folders(load_settings(args.target))))
    else:
        print(describe(args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
