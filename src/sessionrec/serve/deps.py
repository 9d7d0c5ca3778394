"""What the handlers share, and the FastAPI dependencies that hand it to them.

One :class:`ServiceState` per app lives in ``app.state.service``; the lifespan fills in
the models and the store before the first request. Handlers reach it through
:func:`service` (``Depends(service)``, or a direct call on the hot endpoints, which skip
FastAPI's dependency machinery for speed: see :mod:`sessionrec.serve.validation`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from sessionrec.serve.config import ServeConfig
from sessionrec.serve.live import LiveLearner
from sessionrec.serve.metrics import ServiceMetrics
from sessionrec.serve.registry import ModelLoader, ModelRegistry
from sessionrec.serve.schemas import RequestModels
from sessionrec.serve.store import SessionStore
from sessionrec.serve.trending import TrendingClicks


@dataclass
class ServiceState:
    """What the handlers share; filled by the lifespan before the first request."""

    config: ServeConfig
    metrics: ServiceMetrics
    requests: RequestModels
    """The request models with the configured limits (see :mod:`~sessionrec.serve.schemas`)."""
    loader: ModelLoader | None = None
    registry: ModelRegistry | None = None
    store: SessionStore | None = None
    watcher: asyncio.Task[None] | None = None
    store_up: bool = True
    """The store state last reported to the gauge (it is set only on transitions)."""
    trending: TrendingClicks | None = None
    """Live click counts for the fallback chain (``--trending-half-life``), else None."""
    live: LiveLearner | None = None
    """Live learning from finished sessions (``--live-updates``), else None."""
    learner: asyncio.Task[None] | None = None
    demo_catalog: list[dict[str, Any]] = field(default_factory=list)
    """The demo page's catalog listing, built on first use (after the lifespan loads)."""

    def require_registry(self) -> ModelRegistry:
        assert self.registry is not None, "the app's lifespan has not run"
        return self.registry

    def require_store(self) -> SessionStore:
        assert self.store is not None, "the app's lifespan has not run"
        return self.store

    def store_failed(self, endpoint: str) -> None:
        """Count a store failure on ``endpoint``; the gauge goes down on the first one."""
        self.metrics.errors.labels(endpoint, "store").inc()
        if self.store_up:
            self.store_up = False
            self.metrics.store_up.set(0)

    def store_answered(self) -> None:
        """The store answered: the gauge goes up again if it was down."""
        if not self.store_up:
            self.store_up = True
            self.metrics.store_up.set(1)


def service(request: Request) -> ServiceState:
    """The state of the app serving ``request``."""
    state: ServiceState = request.app.state.service
    return state
