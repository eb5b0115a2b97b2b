"""Each use case's champion model in the service, and its pickup without a restart.

`Champion.refresh` asks the registry which version the `champion` alias names; when it
names another version than the one served (promoted, or rolled back), that version is
loaded and compiled beside the old one, then swapped in with one reference assignment.
A request reads `Champion.current` once and uses that object to the end, so requests in
flight finish on the model they started with, and none waits for a load.

No alias (or no registered model) means no champion: the service answers 503 with the
reason. A registry that cannot be reached, or a version that cannot be loaded, leaves
the served model as it is (and is retried at the next poll).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from featurehouse.config import Settings
from featurehouse.serving.predictor import CompiledModel, compile_predictor
from featurehouse.training.registry import CHAMPION
from featurehouse.usecase import UseCase

log = logging.getLogger(__name__)

# What the registries answer for an unknown model or alias (local store, Unity Catalog).
_ABSENT = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    run_id: str | None
    compiled: CompiledModel
    loaded_at: datetime


class Champion:
    """The champion of one use case: `current` (None while there is none) and `reason`."""

    def __init__(
        self,
        settings: Settings,
        use_case: UseCase,
        *,
        client: Any = None,
        on_change: Callable[[Champion], None] | None = None,
    ):
        self.use_case = use_case
        self.model_name = settings.model_name(use_case.name, use_case.model_name)
        self._client = client
        self._on_change = on_change
        self._lock = threading.Lock()  # one refresh at a time
        self.current: LoadedModel | None = None
        self.reason = f"the champion of {self.model_name} is not loaded yet"
        self.last_error: str | None = None
        self.declared = {f.name for f in use_case.features}
        self.categorical = {f.name for f in use_case.features if f.dtype == "string"}

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient()
        return self._client

    def refresh(self) -> bool:
        """Bring the served model in line with the registry's alias; True when it changed."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(self.model_name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code not in _ABSENT:
                return self._failed(f"cannot reach the model registry: {exc.message}")
            return self._none(
                f"model {self.model_name} has no '{CHAMPION}' version: train and validate it"
                " (featurehouse train, featurehouse validate)"
            )
        except Exception as exc:  # a registry that cannot be reached at all
            return self._failed(f"cannot reach the model registry: {exc}")
        served = self.current
        if served is not None and served.version == str(version.version):
            return False
        try:
            loaded = self.load(str(version.version), version.run_id)
        except Exception as exc:
            error = f"cannot load {self.model_name} version {version.version}: {exc}"
            if error != self.last_error:  # the trace once, not at every poll
                log.exception("%s", error)
            return self._failed(error)
        self.current, self.last_error = loaded, None
        log.info(
            "%s: serving %s version %s (%s predictor)",
            self.use_case.name,
            loaded.name,
            loaded.version,
            loaded.compiled.kind,
        )
        if self._on_change:
            self._on_change(self)
        return True

    def load(self, version: str, run_id: str | None) -> LoadedModel:
        """Load and compile one version (nothing is swapped)."""
        import mlflow

        model = mlflow.sklearn.load_model(f"models:/{self.model_name}/{version}")
        compiled = compile_predictor(model, self.use_case.task, self.categorical)
        unknown = [c for c in compiled.columns if c not in self.declared]
        if unknown:
            raise ValueError(
                f"it reads {unknown}, which use case {self.use_case.name} no longer declares:"
                " train a new champion"
            )
        return LoadedModel(self.model_name, version, run_id, compiled, datetime.now(UTC))

    def _none(self, reason: str) -> bool:
        changed = self.current is not None
        if changed:
            log.warning(
                "%s: %s; no longer serving version %s",
                self.use_case.name,
                reason,
                self.current.version,
            )
        self.current, self.reason, self.last_error = None, reason, None
        if changed and self._on_change:
            self._on_change(self)
        return changed

    def _failed(self, error: str) -> bool:
        if error != self.last_error:
            log.warning("%s: %s", self.use_case.name, error)
        self.last_error = error
        if self.current is None:
            self.reason = error
        return False


class ChampionPoller:
    """A daemon thread that refreshes every champion each `interval` seconds."""

    def __init__(self, champions: Sequence[Champion], interval: float):
        self.champions = list(champions)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="champion-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for champion in self.champions:
                started = time.perf_counter()
                try:
                    champion.refresh()
                except Exception:  # never let the poller die
                    log.exception("refreshing the champion of %s failed", champion.use_case.name)
                log.debug(
                    "refreshed %s in %.3f s", champion.use_case.name, time.perf_counter() - started
                )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
