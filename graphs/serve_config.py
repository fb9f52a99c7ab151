"""The serve config: where it lives, how it is read, and what in it is checked before Ray starts.
`curator serve`, `curator rules publish`, `curator batch` and the benchmarks all read it here.

Serve's own schema checks the cluster numbers; the application's `args:` are
curator.core.settings.CuratorAppArgs and the ingress's `user_config` is CuratorConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from curator.core.settings import CuratorAppArgs, CuratorConfig

DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parent / "serve_config.yaml"
GPU_SERVE_CONFIG = Path(__file__).resolve().parent / "serve_config.gpu.yaml"

# The online application's builder, and its ingress deployment's name (graphs.online).
ONLINE_IMPORT_PATH = "graphs.online:build_app"
INGRESS_DEPLOYMENT = "Curator"


def read_serve_config(path: Path) -> dict[str, Any]:
    """The YAML at `path`; an empty file reads as an empty config. ValueError unless it is a
    mapping."""
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise ValueError("a serve config is a mapping with `applications`")
    return config


def check_serve_schema(config: dict[str, Any]) -> Any:
    """Serve's schema of the config (ServeDeploySchema); pydantic's ValidationError (a
    ValueError) when Serve would refuse it."""
    from ray.serve.schema import ServeDeploySchema  # Ray's import is slow; only checks need it

    return ServeDeploySchema.model_validate(config)


def check_app_args(config: dict[str, Any]) -> None:
    """Serve's schema, and every application's `args:` as build_app would take them."""
    for application in check_serve_schema(config).applications:
        CuratorAppArgs.model_validate(application.args or {})


def check_user_config(config: dict[str, Any]) -> None:
    """Serve's schema, and the ingress's user_config as reconfigure() would take it."""
    check_serve_schema(config)
    for application in config["applications"]:
        ingress = ingress_entry(application)
        if "user_config" in ingress:
            CuratorConfig.model_validate(ingress["user_config"])


def online_application(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """The application built by graphs.online (the first, if several are)."""
    online = [app for app in config.get("applications") or []
              if app.get("import_path") == ONLINE_IMPORT_PATH]
    if not online:
        raise ValueError(f"{path}: no application with import_path {ONLINE_IMPORT_PATH}")
    return online[0]


def ingress_entry(application: dict[str, Any]) -> dict[str, Any]:
    """The ingress's entry under the application's `deployments:`; empty when it has none."""
    deployments = application.get("deployments") or []
    return next((d for d in deployments if d.get("name") == INGRESS_DEPLOYMENT), {})
