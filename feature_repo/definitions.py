"""What `feast apply` registers: the objects featurehouse derives from its use cases.

Nothing is defined here by hand; see src/featurehouse/usecases/ and
src/featurehouse/store/definitions.py. Every enabled use case contributes its
entities, feature views and feature service. The environment is `$FEATUREHOUSE_ENV`
(default: local) and the configuration folder `$FEATUREHOUSE_CONF_DIR` (default:
the project's conf/).
"""

from featurehouse.config import load_settings
from featurehouse.discovery import load_use_cases
from featurehouse.store.definitions import all_feast_objects

_settings = load_settings()
# `feast apply` collects the Feast objects it finds among this module's globals.
for _object in all_feast_objects(_settings, load_use_cases(_settings).values()):
    globals()[f"{type(_object).__name__.lower()}_{_object.name}"] = _object
del _object
