"""The real-time prediction service: `create_app(settings, use_cases)` builds the FastAPI
application, `serve(...)` runs it under uvicorn (`featurehouse serve`, or
`python -m featurehouse.serving`). See `featurehouse.serving.app`.

Nothing heavy is imported here, so that `featurehouse.config` may import the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app", "serve"]


def create_app(settings: Any, use_cases: Any, serving: Any = None) -> FastAPI:
    from featurehouse.serving.app import create_app as build

    return build(settings, use_cases, serving)


def serve(settings: Any, use_cases: Any, serving: Any = None, **kwargs: Any) -> None:
    from featurehouse.serving.server import serve as run

    run(settings, use_cases, serving, **kwargs)
