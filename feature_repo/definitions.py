"""What `feast apply` registers: the objects featurehouse derives from its feature declarations.

Nothing is defined here by hand; see src/featurehouse/features/ and
src/featurehouse/store/definitions.py. The environment is `$FEATUREHOUSE_ENV`
(default: local) and the configuration folder `$FEATUREHOUSE_CONF_DIR` (default:
the project's conf/).
"""

from featurehouse.config import load_settings
from featurehouse.store.definitions import feast_objects

_objects = feast_objects(load_settings())

machine = _objects.entity
machine_telemetry, machine_errors, machine_maintenance, machine_attributes = _objects.views
machine_failure_service = _objects.service
