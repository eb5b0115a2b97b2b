"""Finding the declared use cases, and checking that they fit together.

A use case's `UseCase` object is found through `declaration: "module:ATTRIBUTE"` in its
settings (`conf/use_cases/<name>.yml`), else through the `featurehouse.use_cases`
entry-point group, the ecosystem's plug-in convention: an installed package can bring its
own. The framework never imports a use case by name.
"""

from __future__ import annotations

import importlib
import traceback
from collections import Counter
from types import TracebackType

from featurehouse import usecase
from featurehouse.config import Settings, installed_use_cases
from featurehouse.errors import ConfigError, DeclarationError
from featurehouse.usecase import UseCase


def load_use_case(settings: Settings, name: str) -> UseCase:
    """The declaration of one use case (enabled or not), checked against the settings."""
    target = settings.use_case(name).declaration or installed_use_cases().get(name)
    if target is None:
        raise ConfigError(
            f"use case {name!r} has settings but no declaration: set `declaration:"
            f" module:ATTRIBUTE` in conf/use_cases/{name}.yml, or install it under the"
            " featurehouse.use_cases entry-point group"
        )
    use_case = _import(name, target)
    if not isinstance(use_case, UseCase):
        raise DeclarationError(
            f"use case {name!r}: {target} is a {type(use_case).__name__}, not a UseCase"
        )
    if use_case.name != name:
        raise DeclarationError(
            f"use case {name!r}: {target} declares a use case named {use_case.name!r}"
        )
    reserved = set(type(settings.tables).model_fields) | set(settings.tables.model_dump().values())
    clash = sorted(
        reserved & {*(d.name for d in use_case.datasets), *(t.name for t in use_case.tables)}
    )
    if clash:
        raise DeclarationError(
            f"use case {name!r}: {clash} are names of the framework's own tables; rename them"
        )
    return use_case


def load_use_cases(settings: Settings, names: list[str] | None = None) -> dict[str, UseCase]:
    """The enabled use cases (or those named), in settings order, checked for clashes: two
    use cases may not claim the same table, model, Feast entity, view or feature service."""
    for name in names or []:
        settings.use_case(name)  # an unknown name fails here, listing the known ones
    chosen = names or settings.enabled_use_cases
    use_cases = {name: load_use_case(settings, name) for name in chosen}
    check_no_clashes(settings, list(use_cases.values()))
    return use_cases


def check_no_clashes(settings: Settings, use_cases: list[UseCase]) -> None:
    claims: dict[str, list[tuple[str, str]]] = {}

    def claim(kind: str, name: str, owner: str) -> None:
        claims.setdefault(kind, []).append((name, owner))

    for uc in use_cases:
        for key in [*(d.name for d in uc.datasets), *(t.name for t in uc.tables)]:
            claim("table", settings.table(uc.name, key), uc.name)
        for key in type(settings.tables).model_fields:
            claim("table", settings.table(uc.name, key), uc.name)
        claim("model", settings.model_name(uc.name, uc.model_name), uc.name)
        claim("experiment", settings.experiment(uc.name), uc.name)
        claim("Feast feature service", settings.feature_service(uc.name), uc.name)
        for table in uc.tables:
            claim("Feast feature view", table.view_name, uc.name)
        for entity in feast_entity_names(uc):
            claim("Feast entity", entity, uc.name)
    for kind, named in claims.items():
        counts = Counter(name for name, _ in named)
        for name, count in counts.items():
            owners = sorted({owner for n, owner in named if n == name})
            if count > 1 and len(owners) > 1:
                raise DeclarationError(
                    f"use cases {' and '.join(owners)} both claim the {kind} {name!r}"
                )


def feast_entity_names(use_case: UseCase) -> list[str]:
    """Feast entities have one join key each: a composite key is one entity per key column."""
    entity = use_case.entity
    if len(entity.keys) == 1:
        return [entity.name]
    return [f"{entity.name}_{key}" for key in entity.keys]


def _import(name: str, target: str) -> object:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"use case {name!r}: cannot import {module_name!r} ({exc})") from None
    except DeclarationError as exc:
        where = _declaring_file(exc.__traceback__)
        raise DeclarationError(f"use case {name!r} ({where}): {exc}") from None
    try:
        return getattr(module, attribute or "USE_CASE")
    except AttributeError:
        raise ConfigError(f"use case {name!r}: {module_name} has no {attribute!r}") from None


def _declaring_file(trace: TracebackType | None) -> str:
    """file:line of the innermost frame outside the declaration types: the line that declared
    the faulty object."""
    where = "?"
    for frame, line in traceback.walk_tb(trace):
        filename = frame.f_code.co_filename
        # Dataclasses generate __init__ from a string: its frames say "<string>".
        if filename != usecase.__file__ and not filename.startswith("<"):
            where = f"{filename}:{line}"
    return where
