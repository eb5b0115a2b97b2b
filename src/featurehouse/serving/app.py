"""The prediction service: a FastAPI application over the online store and the champions.

- `POST /v1/use-cases/{name}/predict`, one route per use case, with request and response
  models generated from its declarations (`featurehouse.serving.schema`): entities by
  their keys in, per entity the prediction(s), status, feature age out, with the model's
  name and version.
- `GET /v1/use-cases`: the use cases served, their keys and champion.
- `GET /health`: the process answers. `GET /ready`: every champion loaded and the
  online store reachable (503 otherwise, with the reasons).
- `GET /metrics`: Prometheus metrics (`featurehouse.serving.metrics`).

The request path reads the features directly from the online store (one
`featurehouse.store.online.OnlineReader` per use case, kept open: SQLite or Redis, no
Feast objects), runs the
compiled champion (`featurehouse.serving.predictor`) and queues the inference log
(`featurehouse.serving.inference_log`); it does no other I/O. The work runs on the event
loop: it is short and CPU-bound, so a thread pool would only add a hop. Scale with
worker processes (`serving.workers`).

Errors are JSON `{"message": ..., "errors": [...]}`: an unknown use case 404, a body that
does not validate 422 (naming each field), too many entities 413, no champion or an
unreachable online store 503. An entity without online features is not an error: it is
answered with its status and no prediction.
"""

from __future__ import annotations

import gc
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic_core import to_json
from starlette.exceptions import HTTPException as StarletteHTTPException

from featurehouse.config import Settings
from featurehouse.errors import FeaturehouseError
from featurehouse.serving.champion import Champion, ChampionPoller
from featurehouse.serving.inference_log import InferenceLog, LoggedEntity, LoggedRequest
from featurehouse.serving.metrics import UNKNOWN, ServiceMetrics
from featurehouse.serving.schema import ErrorResponse, request_model, response_models
from featurehouse.serving.settings import ServingSettings, inference_log_dir, serving_settings
from featurehouse.usecase import Classification, UseCase

log = logging.getLogger(__name__)

PREFIX = "/v1/use-cases/"
PREDICT = PREFIX + "{name}/predict"
JSON = "application/json"
REQUEST_ID = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_MISSING, _EXPIRED, _OK, _NOT_FOUND = "missing", "expired", "ok", "not found"


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(to_json(payload), status_code=status, media_type=JSON, headers=headers)


def error_response(status: int, message: str, errors: list | None = None, headers=None) -> Response:
    payload: dict[str, Any] = {"message": message}
    if errors is not None:
        payload["errors"] = errors
    return json_response(payload, status, headers)


class ServiceState:
    """What the app holds: settings, use cases, champions, metrics, the inference log."""

    def __init__(
        self, settings: Settings, use_cases: Mapping[str, UseCase], serving: ServingSettings
    ):
        self.settings = settings
        self.use_cases = dict(use_cases)
        self.serving = serving
        self.metrics = ServiceMetrics()
        self.champions = {
            name: Champion(settings, uc, on_change=self._changed)
            for name, uc in self.use_cases.items()
        }
        self.inference_log = InferenceLog(
            inference_log_dir(settings, serving),
            self.use_cases,
            serving.inference_log,
            self.metrics,
        )
        self.poller = ChampionPoller(
            list(self.champions.values()), serving.poll_interval.total_seconds()
        )
        self._loaded_once: set[str] = set()
        self._readers: dict[str, Any] = {}
        self._reader_lock = threading.Lock()

    def reader(self, name: str) -> Any:
        """The use case's online reader, opened on first use (and again after a failure to
        open it, e.g. a Redis connection string not yet in the environment)."""
        reader = self._readers.get(name)
        if reader is None:
            from featurehouse.store.online import OnlineReader

            with self._reader_lock:
                reader = self._readers.get(name)
                if reader is None:
                    reader = OnlineReader(self.settings, self.use_cases[name])
                    self._readers[name] = reader
        return reader

    def _changed(self, champion: Champion) -> None:
        name = champion.use_case.name
        version = champion.current.version if champion.current else "0"
        self.metrics.model_version.labels(name, champion.model_name).set(_as_number(version))
        if name in self._loaded_once:
            self.metrics.model_swaps.labels(name).inc()
        self._loaded_once.add(name)

    def start(self) -> None:
        from featurehouse.training.registry import configure_mlflow

        configure_mlflow(self.settings)
        for champion in self.champions.values():
            self.metrics.model_version.labels(champion.use_case.name, champion.model_name).set(0)
            try:
                champion.refresh()
            except Exception:
                log.exception("loading the champion of %s failed", champion.use_case.name)
        self.warm_up()
        self.poller.start()
        self.inference_log.start()

    def warm_up(self) -> None:
        """One online read and one prediction per use case before the first request, so
        that no request pays for imports, the read plan or the first model call."""
        for name, champion in self.champions.items():
            problem = _store_problem(self, name)
            if problem:
                log.warning("%s: %s", name, problem)
            model = champion.current
            if model is not None:
                try:
                    model.compiled.predictor.predict([{}])  # every feature missing
                except Exception as exc:  # a model that refuses missing values: fine
                    log.debug("%s: warm-up prediction failed: %s", name, exc)

    def stop(self) -> None:
        self.poller.stop()
        self.inference_log.stop()
        for reader in self._readers.values():
            try:
                reader.close()
            except Exception:  # closing is best effort
                log.debug("closing an online reader failed", exc_info=True)


def _as_number(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        return 0.0


def _limit_threads(count: int) -> None:
    """One OpenMP / BLAS thread per model call (process-wide): small inputs only lose
    time to thread start-up, and the workers already use the cores."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(count)
    except Exception:  # threadpoolctl is optional
        log.debug("threadpoolctl unavailable; model threads not limited")


def create_app(
    settings: Settings,
    use_cases: Mapping[str, UseCase] | Sequence[UseCase],
    serving: ServingSettings | None = None,
) -> FastAPI:
    """The service for `use_cases` (a mapping by name, or a sequence). Models are loaded,
    and the registry poller and the inference log writer started, when the app starts
    (its lifespan), not here."""
    if not isinstance(use_cases, Mapping):
        use_cases = {uc.name: uc for uc in use_cases}
    serving = serving or serving_settings(settings)
    state = ServiceState(settings, use_cases, serving)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _limit_threads(serving.model_threads)
        state.start()
        if getattr(app.state, "freeze_gc", False):
            # A process of its own (`serve`): what is loaded now lives as long as the
            # process, so keep it out of the collector's full passes, which would
            # otherwise stall requests for milliseconds.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(
        title="featurehouse predictions",
        description="Real-time predictions of each use case's champion model, from the online store.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = state
    _add_error_handlers(app)
    _add_service_routes(app, state)
    for use_case in use_cases.values():
        _add_predict_route(app, state, use_case)

    @app.post(PREDICT, include_in_schema=False)
    async def unknown_use_case(name: str) -> Response:
        known = ", ".join(state.use_cases) or "none"
        return error_response(404, f"unknown use case {name!r}: this service answers for {known}")

    app.add_middleware(MetricsMiddleware, metrics=state.metrics, use_cases=set(state.use_cases))
    return app


class MetricsMiddleware:
    """Counts and times every prediction request (also those refused before the handler)."""

    def __init__(self, app: Any, metrics: ServiceMetrics, use_cases: set[str]):
        self.app = app
        self.metrics = metrics
        self.use_cases = use_cases

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith(PREFIX) and path.endswith("/predict")):
            await self.app(scope, receive, send)
            return
        name = path[len(PREFIX) : -len("/predict")]
        use_case = name if name in self.use_cases else UNKNOWN
        started = time.perf_counter()
        status = 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe_request(use_case, status, time.perf_counter() - started)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ()) if part != "body"]
            errors.append(
                {
                    "field": ".".join(location) or "body",
                    "message": str(error.get("msg", "invalid")),
                    "type": str(error.get("type", "invalid")),
                }
            )
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return error_response(422, f"invalid request: {summary}{more}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")


def _add_service_routes(app: FastAPI, state: ServiceState) -> None:
    @app.get("/health", tags=["service"], summary="The process is alive.")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["service"],
        summary="Every champion is loaded and the online store answers.",
        responses={503: {"model": ErrorResponse, "description": "Not ready, with the reasons."}},
    )
    async def ready() -> Response:
        checks, problems = {}, []
        for name, champion in state.champions.items():
            model = champion.current
            store = _store_problem(state, name)
            checks[name] = {
                "model_version": model.version if model else None,
                "model": None if model else champion.reason,
                "online_store": store or "ok",
            }
            if model is None:
                problems.append(f"{name}: {champion.reason}")
            if store:
                problems.append(f"{name}: {store}")
        if problems:
            return json_response(
                {"message": "not ready: " + "; ".join(problems), "use_cases": checks}, 503
            )
        return json_response({"status": "ready", "use_cases": checks})

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics (text exposition format).",
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        state.metrics.log_queue.set(state.inference_log.queued_rows)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/use-cases", tags=["service"], summary="The use cases served and their champions.")
    async def use_cases() -> dict[str, Any]:
        out = {}
        for name, uc in state.use_cases.items():
            champion = state.champions[name]
            model = champion.current
            out[name] = {
                "description": uc.description,
                "entity": uc.entity.name,
                "keys": dict(uc.entity.keys),
                "predictions": _prediction_names(uc),
                "path": PREDICT.format(name=name),
                "model": {
                    "name": model.name,
                    "version": model.version,
                    "predictor": model.compiled.kind,
                }
                if model
                else None,
                "reason": None if model else champion.reason,
            }
        return {"use_cases": out}


def _store_problem(state: ServiceState, name: str) -> str | None:
    """None when the online store answers a read for the use case; else why not."""
    use_case = state.use_cases[name]
    probe = {k: 0 if t == "bigint" else "" for k, t in use_case.entity.keys.items()}
    try:
        state.reader(name).read([probe])
    except Exception as exc:
        return f"online store unavailable: {exc}"
    return None


def _prediction_names(use_case: UseCase) -> list[str]:
    task = use_case.task
    return [task.prediction, task.flag] if isinstance(task, Classification) else [task.prediction]


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [FeaturehouseError, sqlite3.Error, OSError]
    try:
        from redis.exceptions import RedisError

        errors.append(RedisError)
    except ImportError:  # redis is optional locally
        pass
    return tuple(errors)


def _add_predict_route(app: FastAPI, state: ServiceState, use_case: UseCase) -> None:
    name = use_case.name
    serving = state.serving
    champion = state.champions[name]
    keys = list(use_case.entity.keys)
    task = use_case.task
    classifier = isinstance(task, Classification)
    predicted_names = _prediction_names(use_case)
    answer_fields = {"status", "feature_age_seconds", "features_as_of", "message", "features"}
    clash = set(predicted_names) & {*keys, *answer_fields}
    if clash:
        raise FeaturehouseError(
            f"use case {name}: prediction columns {sorted(clash)} clash with the entity's keys"
            " or the answer's own fields"
        )
    store_errors = _store_errors()
    request_type = request_model(use_case, serving.max_batch)
    _, response_type = response_models(use_case)
    inference_log, metrics = state.inference_log, state.metrics
    counters = {
        outcome: metrics.entities.labels(name, outcome)
        for outcome in ("predicted", _NOT_FOUND, "missing features", "expired refused")
    }

    async def predict(body, request: Request) -> Response:
        request_id = request.headers.get(REQUEST_ID) or ""
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        headers = {REQUEST_ID: request_id}
        entities = body.entities
        if len(entities) > serving.max_batch:
            return error_response(
                413,
                f"{len(entities)} entities in one request; at most {serving.max_batch}",
                headers=headers,
            )
        model = champion.current  # read once: a swap does not reach this request
        if model is None:
            return error_response(
                503, f"no champion for {name}: {champion.reason}", headers=headers
            )
        asked = [{k: getattr(e, k) for k in keys} for e in entities]
        try:
            rows = state.reader(name).read(asked)
        except store_errors as exc:
            log.warning("%s: online store read failed: %s", name, exc)
            return error_response(503, f"online store unavailable: {exc}", headers=headers)
        now = datetime.now(UTC)
        usable = []
        for i, row in enumerate(rows):
            views = row.views.values()
            if row.status == _OK or (
                serving.predict_expired and _MISSING not in views and _EXPIRED in views
            ):
                usable.append(i)
        values = (
            model.compiled.predictor.predict([rows[i].features for i in usable]) if usable else ()
        )
        threshold = model.compiled.threshold
        predictions: dict[int, list] = {}
        for i, value in zip(usable, values.tolist() if usable else (), strict=True):
            if classifier:
                flag = int(value >= (0.5 if threshold is None else threshold))
                predictions[i] = [value, flag]
            else:
                predictions[i] = [value]
        answers, logged = [], []
        for i, row in enumerate(rows):
            as_of = row.oldest_event_timestamp
            answer: dict[str, Any] = dict(row.keys)
            answer["status"] = row.status
            predicted = predictions.get(i)
            for column, value in zip(
                predicted_names, predicted or (None,) * len(predicted_names), strict=True
            ):
                answer[column] = value
            answer["feature_age_seconds"] = (now - as_of).total_seconds() if as_of else None
            answer["features_as_of"] = as_of
            if predicted is None:
                answer["message"] = _why_not(row.status)
                counters[_outcome(row.status)].inc()
            else:
                counters["predicted"].inc()
            if body.include_features:
                answer["features"] = row.features
            answers.append(answer)
            logged.append(LoggedEntity(i, row.keys, row.status, row.features, predicted, as_of))
        inference_log.record(
            name, LoggedRequest(request_id, now, model.name, model.version, logged)
        )
        payload = {
            "request_id": request_id,
            "use_case": name,
            "model": {"name": model.name, "version": model.version},
            "predictions": answers,
        }
        return json_response(payload, headers=headers)

    # The body's type is generated per use case: give FastAPI the class itself.
    predict.__annotations__ = {"body": request_type, "request": Request, "return": Response}
    error = {"model": ErrorResponse}
    app.add_api_route(
        PREDICT.format(name=name),
        predict,
        methods=["POST"],
        name=f"predict_{name}",
        summary=f"Predict {', '.join(predicted_names)} for {use_case.entity.name} entities.",
        description=use_case.description,
        tags=[name],
        response_model=response_type,
        responses={
            400: {**error, "description": "The body cannot be read (e.g. not UTF-8)."},
            413: {**error, "description": "More entities than the service takes at once."},
            422: {**error, "description": "A key is missing, unknown or of the wrong type."},
            503: {**error, "description": "No champion yet, or the online store is unreachable."},
        },
    )


def _why_not(status: str) -> str:
    if status == _NOT_FOUND:
        return "no online features for this entity (unknown, or never materialized)"
    if status.startswith(_MISSING):
        return f"features are missing ({status}): no prediction without them"
    return f"features past their TTL ({status}): refused by the service's settings"


def _outcome(status: str) -> str:
    if status == _NOT_FOUND:
        return _NOT_FOUND
    return "missing features" if status.startswith(_MISSING) else "expired refused"
