"""The real-time recommendation service (``sessionrec serve``) and its replay client.

Needs the ``serve`` extra (FastAPI, uvicorn, redis, prometheus-client, httpx, orjson):
``pip install 'sessionrec[serve]'``. Importing this package is cheap and never fails; the
heavy parts load on first use, so ``sessionrec --help`` works without the extra and
reports what is missing only when a service command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionrec._errors import ConfigError

if TYPE_CHECKING:
    from sessionrec.serve.app import create_app
    from sessionrec.serve.config import ServeConfig, VariantSpec
    from sessionrec.serve.replay import ReplayResult, replay_sessions

__all__ = ["ReplayResult", "ServeConfig", "VariantSpec", "create_app", "replay_sessions"]

_LAZY = {
    "create_app": "sessionrec.serve.app",
    "ServeConfig": "sessionrec.serve.config",
    "VariantSpec": "sessionrec.serve.config",
    "ReplayResult": "sessionrec.serve.replay",
    "replay_sessions": "sessionrec.serve.replay",
}


def require_serve_extra() -> None:
    """Raise a ConfigError naming the extra when the service's dependencies are missing."""
    missing = []
    for module in ("fastapi", "uvicorn", "prometheus_client", "httpx", "redis", "fastapi_offline"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(
            f"the service needs {', '.join(missing)}: pip install 'sessionrec[serve]'"
        )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        if _LAZY[name] != "sessionrec.serve.config":
            require_serve_extra()
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sessionrec.serve' has no attribute {name!r}")
