"""Learning from today's clicks while serving (``--live-updates``): finished sessions of
consenting visitors become neighbours of the session-kNN variants within seconds, and the
items they clicked, new ones included, recommendable.

How a session travels:

1. **Finished.** The store tracks the sessions still going. Every ``--live-interval``
   seconds each worker asks it to hand over those without a click for ``--live-idle``
   seconds; ``POST /v1/sessions/{id}/end`` hands one over at once. The hand-over is atomic
   in the store, so a session goes over once whichever worker or replica asks. Only
   consenting clicks are ever stored, and a session with a click sent without consent is
   withheld (never handed over). A visitor who comes back later starts a new part.
2. **On the feed.** Handed-over sessions go on the store's feed: numbered in order, bounded
   (``--live-feed``), without the session id. Every worker of every replica reads the whole
   feed from its own position, so all of them learn the same sessions in the same order
   (the Redis store shares one feed; the memory store is one process's).
3. **Applied.** A worker lets at most ``--live-feed`` sessions wait; beyond that the oldest
   are dropped and counted (``sessionrec_live_sessions_total{outcome="dropped"}``), as are
   feed entries trimmed before this worker read them: answers never wait for learning. An
   update takes at most ``--live-batch`` sessions and builds the new model in a thread
   (:meth:`~sessionrec.models.base.Recommender.updated`: the serving model is untouched)
   with its business rules, then swaps it in, as a hot reload does; requests in flight
   finish on the old one. The index keeps at most ``--live-max-sessions`` sessions (the
   oldest go). Variants whose model cannot learn live (the neural ones: fine-tune them,
   ``docs/fine-tuning.md``) keep serving as they are.
4. **Snapshotted.** With ``--live-snapshot-dir``, every ``--live-snapshot-interval`` seconds
   the live models are saved to ``<dir>/<variant>`` (an ordinary model folder, written
   atomically, that ``evaluate`` and ``load_model`` read), recording the feed position they
   include. A worker that starts loads a snapshot newer than its variant's folder and made
   from it, and reads the feed from that position, so a restarted replica catches up with
   the others as long as the feed still holds what came after the snapshot.

A model folder published to the variant (a retrain, a hot reload) replaces the live model;
learning goes on from there with the sessions that finish afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._errors import SessionrecError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.persist import MANIFEST, read_manifest
from sessionrec.models.registry import load_model
from sessionrec.models.session_knn import LIVE_FINGERPRINT
from sessionrec.models.vocab_growth import chained_fingerprint
from sessionrec.serve.registry import LoadedModel, Variant, folder_signature
from sessionrec.serve.store import FeedEntry, StoreUnavailable

if TYPE_CHECKING:
    from sessionrec.serve.deps import ServiceState

log = logging.getLogger("sessionrec.serve.live")

FEED_EVENT_TYPES = ("cart", "purchase", "view")
"""The canonical event types, sorted as the data layer stores them."""

SNAPSHOT_LEASE = "live-snapshots"
"""The store lease whose holder writes the snapshots."""

SNAPSHOT_KEY = "live"
"""The snapshot's entry in its manifest's metrics: feed position, sessions learned."""

_INTEGER = re.compile(r"-?\d{1,18}")

STORE_CHUNK = 100
"""Most sessions one store call hands over or reads: each call is short, so the answers'
store calls queue behind it only briefly."""

UPDATE_SWITCH_INTERVAL = 0.001
"""Seconds: Python's thread switch interval while an index update runs."""


def feed_sessions(entries: list[FeedEntry], id_kind: str) -> tuple[SessionData, int]:
    """The feed entries as sessions for :meth:`~sessionrec.models.base.Recommender.updated`.

    Sessions keep the feed's order (the order they finished in) and their event types; a
    model with integer item ids learns only the clicks whose id is an integer (others cannot
    be items of its vocabulary). Returns the sessions and how many clicks were left out.
    Vectorised past one pass over the clicks: it runs beside the answers (see
    :meth:`LiveLearner.apply`), so it should hold the interpreter as briefly as it can.
    """
    ids: list[str] = []
    kinds: list[str] = []
    lengths = np.zeros(len(entries), dtype=np.int64)
    for number, entry in enumerate(entries):
        lengths[number] = len(entry.events)
        for event in entry.events:
            ids.append(event.item_id)
            kinds.append(event.event_type)
    keep = np.ones(len(ids), dtype=bool)
    if id_kind == "int":
        keep = np.fromiter((_INTEGER.fullmatch(i) is not None for i in ids), bool, len(ids))
        values = np.array([int(i) for i, k in zip(ids, keep, strict=True) if k], dtype=np.int64)
    else:
        values = np.array(ids, dtype=str)
    unique, items = np.unique(values, return_inverse=True)
    session_of = np.repeat(np.arange(len(entries)), lengths)[keep]
    offsets = np.zeros(len(entries) + 1, dtype=np.int64)
    np.cumsum(np.bincount(session_of, minlength=len(entries)), out=offsets[1:])
    table = {name: code for code, name in enumerate(FEED_EVENT_TYPES)}
    view = table["view"]
    codes = np.fromiter((table.get(k, view) for k in kinds), np.int8, len(kinds))[keep]
    data = SessionData(
        offsets=offsets,
        items=items.astype(np.int32).reshape(-1),
        vocab=ItemVocab(unique),
        types=codes,
        event_types=FEED_EVENT_TYPES,
    )
    return data, int((~keep).sum())


@dataclasses.dataclass
class LiveVariant:
    """What live learning knows of one variant: the feed position its model includes."""

    applied: int
    learned: int = 0


class LiveLearner:
    """One worker's live learning: reads the feed, updates the variants, snapshots them."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.config = state.config
        self.cursor = 0
        """The sequence number of the last feed entry read."""
        self.pending: deque[FeedEntry] = deque()
        self.variants: dict[str, LiveVariant] = {}
        self.last_snapshot = time.monotonic()
        self.snapshotted: dict[str, int] = {}
        """Per variant, the feed position of its last snapshot."""

    # ----------------------------------------------------------------- start
    async def start(self) -> None:
        """Resume each variant from its snapshot where there is a usable one; read the feed
        from the oldest position a variant needs (from now on where none has a snapshot)."""
        head = await self.state.require_store().feed_head()
        for variant in self.state.require_registry().variants.values():
            position = head
            resumed = await asyncio.to_thread(self.resume, variant)
            if resumed is not None:
                position = min(resumed, head)
            self.variants[variant.name] = LiveVariant(applied=position)
        self.cursor = min((v.applied for v in self.variants.values()), default=head)
        self.observe()

    def resume(self, variant: Variant) -> int | None:
        """Swap in the variant's snapshot if it is newer than the variant's folder and was
        made from it; returns the feed position it includes (None: no usable snapshot)."""
        if self.config.live_snapshot_dir is None:
            return None
        folder = Path(self.config.live_snapshot_dir) / variant.name
        current = variant.serving()
        snap, base = folder_signature(folder), current.signature
        if snap is None or base is None:
            return None
        try:
            manifest = read_manifest(folder)
            position = int(manifest["metrics"][SNAPSHOT_KEY]["feed_sequence"])
            base_fingerprint = current.model.data_fingerprint_ or ""
            expected = chained_fingerprint(base_fingerprint, LIVE_FINGERPRINT)
            if manifest.get("data_fingerprint") != expected:
                log.info(
                    "variant %s: snapshot %s is of another model; not used", variant.name, folder
                )
                return None
            published = Path(current.path, MANIFEST).stat().st_mtime_ns
            if (folder / MANIFEST).stat().st_mtime_ns < published:
                return None  # the variant's folder was published after the snapshot
            model = load_model(folder)
        except (SessionrecError, KeyError, TypeError, ValueError, OSError) as exc:
            log.warning("variant %s: snapshot %s not usable: %s", variant.name, folder, exc)
            return None
        self.swap(variant, current, self.grown(current, model))
        self.snapshotted[variant.name] = position
        log.info(
            "variant %s: resumed from snapshot %s at feed position %d",
            variant.name,
            folder,
            position,
        )
        return position

    # ------------------------------------------------------------------ loop
    async def run(self) -> None:
        """Learn every ``--live-interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.config.live_interval)
            try:
                await self.step()
            except StoreUnavailable:
                pass  # the store is down: the sessions wait there, learning resumes after
            except Exception:
                log.exception("live learning failed; it keeps running")

    async def step(self) -> int:
        """One round: hand over idle sessions, read the feed, apply one batch, snapshot when
        due. Returns the sessions applied."""
        store = self.state.require_store()
        # In chunks: a hand-over is one atomic script, which holds Redis for its duration.
        swept = 0
        while swept < self.config.live_batch:
            handed = await store.finish_idle(self.config.live_idle, STORE_CHUNK)
            swept += handed
            if handed < STORE_CHUNK:
                break
        await self.read()
        applied = await self.apply()
        await self.snapshot_if_due()
        return applied

    async def read(self) -> None:
        """Move the feed's new entries to the waiting queue (bounded: the oldest drop)."""
        store, batch = self.state.require_store(), min(self.config.live_batch, STORE_CHUNK)
        while True:
            entries = await store.read_feed(self.cursor, batch)
            if not entries:
                break
            trimmed = entries[0].sequence - self.cursor - 1  # gone before this worker read them
            if trimmed > 0:
                self.dropped(trimmed)
            self.cursor = entries[-1].sequence
            self.pending.extend(entries)
            overflow = len(self.pending) - self.config.live_feed
            if overflow > 0:
                for _ in range(overflow):
                    self.pending.popleft()
                self.dropped(overflow)
            if len(entries) < batch:
                break
        self.state.metrics.live_feed_lag.set(len(self.pending))

    def dropped(self, sessions: int) -> None:
        for name in self.variants:
            self.state.metrics.live_sessions.labels(name, "dropped").inc(sessions)
        log.warning("live learning dropped %d finished sessions (it fell behind)", sessions)

    async def apply(self) -> int:
        """Apply the oldest waiting sessions (at most ``--live-batch``) to every variant
        that learns live."""
        count = min(len(self.pending), self.config.live_batch)
        if count == 0:
            return 0
        batch = [self.pending.popleft() for _ in range(count)]
        registry = self.state.require_registry()
        for name, live in self.variants.items():
            variant = registry.get(name)
            entries = [e for e in batch if e.sequence > live.applied]
            current = variant.current
            if not entries or current is None or not current.model.learns_live():
                live.applied = max(live.applied, batch[-1].sequence)
                continue
            started = time.perf_counter()
            # The update runs beside the event loop; a short switch interval hands the GIL
            # back to the loop every millisecond instead of every 5 (Python's default), so
            # answers wait less for the parts of the update that hold it.
            switch = sys.getswitchinterval()
            sys.setswitchinterval(min(switch, UPDATE_SWITCH_INTERVAL))
            try:
                grown, evicted = await asyncio.to_thread(self.learn, current, entries)
            except SessionrecError as exc:
                log.error("variant %s: live update refused: %s", name, exc)
                live.applied = batch[-1].sequence
                continue
            finally:
                sys.setswitchinterval(switch)
            if not self.swap(variant, current, grown):
                continue  # a model folder was published meanwhile: it serves instead
            live.applied = batch[-1].sequence
            live.learned += len(entries)
            metrics = self.state.metrics
            metrics.live_update.labels(name).observe(time.perf_counter() - started)
            metrics.live_sessions.labels(name, "learned").inc(len(entries))
            if evicted:
                metrics.live_sessions.labels(name, "evicted").inc(evicted)
        self.state.metrics.live_feed_lag.set(len(self.pending))
        self.observe()
        return count

    def learn(self, current: LoadedModel, entries: list[FeedEntry]) -> tuple[LoadedModel, int]:
        """The variant's model grown by ``entries``, with its rules (runs in a thread)."""
        model = current.model
        sessions, skipped = feed_sessions(entries, model.vocab_.kind)
        if skipped:
            log.warning("live learning skipped %d clicks whose item id is not an integer", skipped)
        before = getattr(_knn(model), "evicted_sessions_", 0)
        grown = model.updated(sessions, self.config.live_max_sessions)
        evicted = getattr(_knn(grown), "evicted_sessions_", 0) - before
        return self.grown(current, grown), evicted

    def grown(self, current: LoadedModel, model: Any) -> LoadedModel:
        """``current`` serving ``model`` (same folder, version and signature: the watcher
        must not take it for a new folder), with rules for its vocabulary."""
        loader = self.state.loader
        assert loader is not None, "the app's lifespan has not run"
        rules = loader.rules_for(model, previous=current.rules)
        return dataclasses.replace(current, model=model, rules=rules)

    def swap(self, variant: Variant, expected: LoadedModel, loaded: LoadedModel) -> bool:
        """Serve ``loaded`` unless the variant changed model meanwhile (or is reloading)."""
        if not variant.lock.acquire(blocking=False):
            return False
        try:
            if variant.current is not expected:
                return False
            variant.current = loaded
        finally:
            variant.lock.release()
        gc.freeze()  # the new tables join the frozen heap (see app.freeze_heap), no collection
        return True

    def observe(self) -> None:
        registry = self.state.require_registry()
        for name in self.variants:
            current = registry.get(name).current
            if current is None:
                continue
            model = _knn(current.model)
            if model is not None:
                self.state.metrics.live_index_sessions.labels(name).set(model.index_.sess_age.size)
            self.state.metrics.live_items.labels(name).set(current.model.n_items)

    # ------------------------------------------------------------- snapshots
    async def snapshot_if_due(self, force: bool = False) -> list[str]:
        """Save the live models that learned since their last snapshot, when one is due."""
        directory = self.config.live_snapshot_dir
        now = time.monotonic()
        if directory is None or (
            not force and now - self.last_snapshot < self.config.live_snapshot_interval
        ):
            return []
        self.last_snapshot = now
        # One writer among the workers and replicas (they hold the same models): the one
        # holding the lease, kept for two intervals so that it stays with one holder.
        lease = 2 * self.config.live_snapshot_interval
        if not await self.state.require_store().claim(SNAPSHOT_LEASE, lease):
            return []
        saved = []
        registry = self.state.require_registry()
        for name, live in self.variants.items():
            current = registry.get(name).current
            if current is None or live.learned == 0 or self.snapshotted.get(name) == live.applied:
                continue
            metrics = {
                SNAPSHOT_KEY: {"feed_sequence": live.applied, "sessions_learned": live.learned}
            }
            try:
                await asyncio.to_thread(current.model.save, Path(directory) / name, metrics)
            except (OSError, SessionrecError) as exc:
                log.error("variant %s: live snapshot failed: %s", name, exc)
                continue
            self.snapshotted[name] = live.applied
            saved.append(name)
        return saved

    def describe(self) -> dict[str, Any]:
        """``/v1/info``'s ``live`` entry."""
        registry = self.state.require_registry()
        variants = {}
        for name, live in self.variants.items():
            current = registry.get(name).current
            knn = _knn(current.model) if current is not None else None
            variants[name] = {
                "learns": bool(current is not None and current.model.learns_live()),
                "sessions_learned": live.learned,
                "feed_position": live.applied,
                "index_sessions": None if knn is None else int(knn.index_.sess_age.size),
                "items": None if current is None else current.model.n_items,
            }
        config = self.config
        return {
            "idle": config.live_idle,
            "interval": config.live_interval,
            "max_sessions": config.live_max_sessions,
            "waiting": len(self.pending),
            "snapshots": config.live_snapshot_dir is not None,
            "variants": variants,
        }


def _knn(model: Any) -> Any:
    """The session-kNN model whose index learns live (the model, or a repeat layer's base)."""
    if hasattr(model, "index_"):
        return model
    base = getattr(model, "base_", None)
    return base if base is not None and hasattr(base, "index_") else None
