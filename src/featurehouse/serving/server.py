"""Running the service under uvicorn: one process, or several workers.

One worker runs the app built here, from the settings given. Several workers each build
the app themselves from the environment (uvicorn starts them as fresh processes), so they
load the settings from conf: `FEATUREHOUSE_ENV`, `FEATUREHOUSE_CONF_DIR`, and the use
cases and serving settings this module passes in `FEATUREHOUSE_SERVE_USE_CASES` and
`FEATUREHOUSE_SERVE_SETTINGS`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from featurehouse.config import CONF_DIR_ENV_VAR, ENV_ENV_VAR, Settings, load_settings
from featurehouse.errors import FeaturehouseError
from featurehouse.serving.settings import ServingSettings, as_conf, serving_settings
from featurehouse.usecase import UseCase

log = logging.getLogger(__name__)

USE_CASES_ENV_VAR = "FEATUREHOUSE_SERVE_USE_CASES"
SETTINGS_ENV_VAR = "FEATUREHOUSE_SERVE_SETTINGS"


def serve(
    settings: Settings,
    use_cases: Mapping[str, UseCase] | Sequence[UseCase],
    serving: ServingSettings | None = None,
    *,
    conf_dir: Path | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until stopped (Ctrl-C or SIGTERM stop it gracefully: requests in flight are
    answered and the inference log is written)."""
    import uvicorn

    from featurehouse.serving.app import create_app

    serving = serving or serving_settings(settings)
    names = list(use_cases) if isinstance(use_cases, Mapping) else [uc.name for uc in use_cases]
    common = {
        "host": serving.host,
        "port": serving.port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    if serving.workers == 1:
        app = create_app(settings, use_cases, serving)
        app.state.freeze_gc = True
        uvicorn.Server(uvicorn.Config(app, **common)).run()
        return
    os.environ[ENV_ENV_VAR] = settings.env
    if conf_dir is not None:
        os.environ[CONF_DIR_ENV_VAR] = str(Path(conf_dir).resolve())
    os.environ[USE_CASES_ENV_VAR] = ",".join(names)
    os.environ[SETTINGS_ENV_VAR] = json.dumps(as_conf(serving))
    uvicorn.run(
        "featurehouse.serving.server:app_from_environment",
        factory=True,
        workers=serving.workers,
        **common,
    )


def app_from_environment():
    """The app of one worker process (see the module docstring)."""
    from featurehouse.discovery import load_use_cases
    from featurehouse.serving.app import create_app

    settings = load_settings(os.environ.get(ENV_ENV_VAR))
    names = [n for n in os.environ.get(USE_CASES_ENV_VAR, "").split(",") if n] or None
    overrides = json.loads(os.environ.get(SETTINGS_ENV_VAR) or "{}")
    serving = ServingSettings.model_validate(overrides)
    app = create_app(settings, load_use_cases(settings, names), serving)
    app.state.freeze_gc = True
    return app


def post_json(url: str, body: Mapping[str, Any], timeout: float = 60.0) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_service(settings: Settings, use_cases: Sequence[UseCase], serving: Any = None):
    """The service on a free loopback port, in a thread of this process (uvicorn), for
    as long as the block runs; yields its base URL. Its inference log is off."""
    import uvicorn

    from featurehouse.serving.app import create_app
    from featurehouse.serving.settings import serving_settings

    port = free_port()
    serving = serving or serving_settings(
        settings, {"host": "127.0.0.1", "port": port, "inference_log": {"enabled": False}}
    )
    app = create_app(settings, list(use_cases), serving)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="featurehouse-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise FeaturehouseError("the prediction service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
