"""Prometheus metrics of the service: latency, requests, fallbacks, errors, per variant.

Each app owns a private :class:`CollectorRegistry` instead of the global one, so several
apps can live in one process (tests, embedding) without "duplicated timeseries" errors.

With ``--workers N`` (N > 1) uvicorn runs N processes and a scrape reaches only one of
them. ``sessionrec serve`` then sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers
start; every worker writes its values to files there and ``/metrics`` aggregates all of
them (prometheus_client's multiprocess mode), so one scrape describes the whole service.

Metric names (all prefixed ``sessionrec_``):

- ``request_duration_seconds{endpoint,variant}``: histogram, buckets fine around the
  single-digit-millisecond targets.
- ``requests_total{endpoint,variant,status}``: every answered request.
- ``recommendations_total{variant}`` / ``fallbacks_total{variant}`` /
  ``degraded_total{variant}``: answers served, how many used the fallback chain, how many
  were computed without the session store.
- ``errors_total{endpoint,kind}``: ``validation`` (4xx input), ``client`` (other 4xx),
  ``server`` (5xx), ``store`` (session store unreachable).
- ``feedback_total{variant,status}``: feedback calls (``counted``, ``duplicate``, ...).
- ``model_reloads_total{variant,outcome}``, ``model_info{variant,model,version}``,
  ``store_up``.
- ``store_buffered_clicks``: clicks waiting in the outage buffer (Redis down; summed over
  workers), ``store_buffer_replayed_total``: clicks written back when Redis returned,
  ``store_buffer_dropped_total{reason}``: clicks lost, ``full`` (the buffer's bound,
  ``--outage-buffer``) or ``expired`` (older than the session idle timeout by then).
- ``sessions_erased_total``: sessions erased by ``DELETE /v1/sessions/{id}``.
- ``conversions_total{variant,event_type,attribution}``: cart and purchase events of this
  process, ``attributed`` to an answer of ``variant`` that showed the item, ``unattributed``
  (counted for the session's variant), or ``unknown`` (the store was unreachable);
  ``revenue_total{variant,attribution}``: what the purchases among them earned.
- ``kpi_<name>{variant}``: the pilot's numbers as the store counts them (all replicas and
  workers together; with Redis they survive restarts), read from the store at each scrape:
  ``sessions``, ``impressions``, ``clicks``, ``carts``, ``purchases``, ``revenue``,
  ``cart_sessions``, ``purchase_sessions``, ``unattributed_carts``,
  ``unattributed_purchases``, ``unattributed_revenue``, and the rates ``ctr``, ``cart_rate``
  (sessions with an attributed cart / sessions), ``conversion_rate`` (with an attributed
  purchase) and ``revenue_per_session``. Every replica reports the same shared values:
  aggregate them with ``max``, not ``sum``.
- Live learning (``--live-updates``, :mod:`sessionrec.serve.live`), per worker:
  ``live_sessions_total{variant,outcome}``: finished sessions ``learned`` (appended to the
  variant's index), ``dropped`` (the update stream outpaced the index: the oldest waiting
  sessions, or feed entries trimmed before this worker read them) or ``evicted`` (old
  sessions that left the index at its bound, ``--live-max-sessions``);
  ``live_update_seconds{variant}``: histogram of one index update (a batch of sessions);
  ``live_index_sessions{variant}`` and ``live_items{variant}``: the sessions in the index
  and the items the model knows now; ``live_feed_lag``: feed entries waiting for this worker.

No metric carries an item or a session id: labels are endpoints, variants and outcomes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from sessionrec.serve.store.base import KPI_COUNTS, KPI_RATES, VariantKpis

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.007,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Seconds; dense below 15 ms where the latency targets (p90 < 7 ms, p99 < 15 ms) sit."""


class ServiceMetrics:
    """The metric objects of one app and the text exposition of ``/metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "sessionrec_request_duration_seconds",
            "Time from request start to response end, by endpoint and variant.",
            ["endpoint", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "sessionrec_requests",
            "Answered requests by endpoint, variant and HTTP status.",
            ["endpoint", "variant", "status"],
            registry=r,
        )
        self.recommendations = Counter(
            "sessionrec_recommendations",
            "Recommendation answers served (impressions).",
            ["variant"],
            registry=r,
        )
        self.fallbacks = Counter(
            "sessionrec_fallbacks",
            "Answers completed by the popularity fallback chain.",
            ["variant"],
            registry=r,
        )
        self.degraded = Counter(
            "sessionrec_degraded",
            "Answers computed without the session store (store unreachable).",
            ["variant"],
            registry=r,
        )
        self.errors = Counter(
            "sessionrec_errors",
            "Errors by endpoint and kind (validation, client, server, store).",
            ["endpoint", "kind"],
            registry=r,
        )
        self.feedback = Counter(
            "sessionrec_feedback",
            "Feedback calls by variant and outcome.",
            ["variant", "status"],
            registry=r,
        )
        self.reloads = Counter(
            "sessionrec_model_reloads",
            "Model (re)loads by variant and outcome (loaded, rejected).",
            ["variant", "outcome"],
            registry=r,
        )
        self.model_info = Gauge(
            "sessionrec_model_info",
            "1 for the model version each variant serves.",
            ["variant", "model", "version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.store_up = Gauge(
            "sessionrec_store_up",
            "1 while the session store answers, 0 in degraded mode.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.buffered_clicks = Gauge(
            "sessionrec_store_buffered_clicks",
            "Clicks waiting in the outage buffer until Redis answers again.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.replayed_clicks = Counter(
            "sessionrec_store_buffer_replayed",
            "Buffered clicks written back to Redis after an outage.",
            registry=r,
        )
        self.dropped_clicks = Counter(
            "sessionrec_store_buffer_dropped",
            "Clicks lost during a Redis outage: the buffer was full, or they expired.",
            ["reason"],
            registry=r,
        )
        self.erasures = Counter(
            "sessionrec_sessions_erased",
            "Sessions erased on request (DELETE /v1/sessions/{id}).",
            registry=r,
        )
        self.conversions = Counter(
            "sessionrec_conversions",
            "Cart and purchase events by variant, type and attribution "
            "(attributed, unattributed, unknown: store unreachable).",
            ["variant", "event_type", "attribution"],
            registry=r,
        )
        self.revenue = Counter(
            "sessionrec_revenue",
            "Revenue of purchase events (price x quantity) by variant and attribution.",
            ["variant", "attribution"],
            registry=r,
        )
        self.kpi = {
            name: Gauge(
                f"sessionrec_kpi_{name}",
                f"The store's {name.replace('_', ' ')} per variant (shared by all replicas).",
                ["variant"],
                registry=r,
                multiprocess_mode="mostrecent",
            )
            for name in (*KPI_COUNTS, *KPI_RATES)
        }
        self.live_sessions = Counter(
            "sessionrec_live_sessions",
            "Finished sessions for live learning by variant and outcome "
            "(learned, dropped, evicted).",
            ["variant", "outcome"],
            registry=r,
        )
        self.live_update = Histogram(
            "sessionrec_live_update_seconds",
            "Seconds one live index update (a batch of finished sessions) took.",
            ["variant"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.live_index_sessions = Gauge(
            "sessionrec_live_index_sessions",
            "Sessions in the variant's neighbour index.",
            ["variant"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.live_items = Gauge(
            "sessionrec_live_items",
            "Items the variant's model knows (training items plus those learned live).",
            ["variant"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.live_feed_lag = Gauge(
            "sessionrec_live_feed_lag",
            "Finished sessions on the feed or waiting in this worker, not applied yet.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self._info_labels: dict[str, tuple[str, str, str]] = {}

    # The outage buffer's observer (sessionrec.serve.store.buffer.BufferObserver).
    def buffer_size(self, clicks: int) -> None:
        self.buffered_clicks.set(clicks)

    def buffer_dropped(self, clicks: int, reason: str) -> None:
        self.dropped_clicks.labels(reason).inc(clicks)

    def buffer_replayed(self, clicks: int) -> None:
        self.replayed_clicks.inc(clicks)

    def set_kpis(self, variant: str, kpis: VariantKpis) -> None:
        """Show the store's KPI counters of ``variant``."""
        for name, value in kpis.to_dict().items():
            self.kpi[name].labels(variant).set(value)

    def set_model(self, variant: str, model: str, version: str) -> None:
        """Point ``model_info`` of ``variant`` at a new version (the old series is removed)."""
        old = self._info_labels.get(variant)
        if old is not None and old != (variant, model, version):
            # 0 first: in multiprocess mode a removed series keeps its last value on disk
            self.model_info.labels(*old).set(0)
            with contextlib.suppress(KeyError):
                self.model_info.remove(*old)
        self.model_info.labels(variant, model, version).set(1)
        self._info_labels[variant] = (variant, model, version)

    def render(self) -> bytes:
        """The exposition text: this process, or all workers in multiprocess mode."""
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample's value in this process (tests and the info endpoint)."""
        value: Any = self.registry.get_sample_value(name, labels or {})
        return float(value) if value is not None else 0.0
