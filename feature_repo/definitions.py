"""What `feast apply` registers: the objects featurehouse derives from its use cases.

Nothing is defined here by hand; see src/featurehouse/usecases/ and
src/featurehouse/store/definitions.py. Every enabled use case whose feature tables are
built contributes its entities, feature views and feature service (`feast apply` reads
every source, so a use case without data yet, say one whose raw files are absent, is
left out with a note). The environment is `$FEATUREHOUSE_ENV` (default: local) and the
configuration folder `$FEATUREHOUSE_CONF_DIR` (default: the project's conf/).
"""

import sys

from featurehouse.config import load_settings
from featurehouse.discovery import load_use_cases
from featurehouse.store.definitions import all_feast_objects, unbuilt_tables

_settings = load_settings()
_built = []
for _use_case in load_use_cases(_settings).values():
    _missing = unbuilt_tables(_settings, _use_case)
    if _missing:
        print(
            f"skipping use case {_use_case.name}: not built yet ({', '.join(_missing)})",
            file=sys.stderr,
        )
    else:
        _built.append(_use_case)
# `feast apply` collects the Feast objects it finds among this module's globals.
for _object in all_feast_objects(_settings, _built):
    globals()[f"{type(_object).__name__.lower()}_{_object.name}"] = _object
