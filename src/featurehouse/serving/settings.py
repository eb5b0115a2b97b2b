"""The prediction service's settings: the `serving:` block of conf
(`featurehouse.config.ServingSettings`), with overrides from the command line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from featurehouse.config import (
    InferenceLogSettings,
    ServingSettings,
    Settings,
    deep_merge,
)
from featurehouse.usecase import format_duration

__all__ = [
    "InferenceLogSettings",
    "ServingSettings",
    "as_conf",
    "inference_log_dir",
    "plain_conf",
    "serving_settings",
]


def serving_settings(
    settings: Settings, overrides: dict[str, Any] | None = None
) -> ServingSettings:
    """The environment's serving settings with `overrides` merged on top."""
    if not overrides:
        return settings.serving
    return ServingSettings.model_validate(deep_merge(as_conf(settings.serving), overrides))


def plain_conf(value: Any) -> Any:
    """Settings as conf YAML writes them: durations as "30s", paths as text."""
    if isinstance(value, dict):
        return {k: plain_conf(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_conf(v) for v in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path):
        return str(value)
    return value


def as_conf(serving: ServingSettings) -> dict[str, Any]:
    """The settings as conf would write them, so that `ServingSettings.model_validate`
    reads them back (what the service hands to its worker processes)."""
    return plain_conf(serving.model_dump())


def inference_log_dir(settings: Settings, serving: ServingSettings) -> Path | None:
    """Where the inference log's batches go; None when it is off or has nowhere to go."""
    log = serving.inference_log
    if not log.enabled:
        return None
    if log.dir is not None:
        return log.dir if log.dir.is_absolute() else (settings.project_root / log.dir).resolve()
    if settings.storage.root is not None:
        return settings.storage.root / "serving" / "inference_log"
    return None
