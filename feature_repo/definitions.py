"""What `feast apply` registers: the objects featurehouse derives from its feature declarations.

Nothing is defined here by hand; see src/featurehouse/features/ and
src/featurehouse/store/definitions.py. The environment is `$FEATUREHOUSE_ENV`
(default: local), read with the `conf/` folder next to this repo.
"""

from pathlib import Path

from featurehouse.config import load_settings
from featurehouse.store.definitions import feast_objects

_conf_dir = Path(__file__).resolve().parent.parent / "conf"
_objects = feast_objects(load_settings(conf_dir=_conf_dir if _conf_dir.is_dir() else None))

machine = _objects.entity
machine_telemetry, machine_errors, machine_maintenance, machine_attributes = _objects.views
machine_failure_service = _objects.service
