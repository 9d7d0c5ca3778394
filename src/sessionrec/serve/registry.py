"""Served models: versions, background hot reload with an atomic swap, A/B variants.

A *variant* is one arm of an A/B test: a name, a model folder and a traffic weight.
Visitors are assigned by a stable hash of their session id (salted, so a new experiment
can reshuffle them), so every request of one session, on any replica, goes to the same
variant without shared state.

Hot reload. A reload loads and checks the new folder in a background thread while the old
model keeps serving: :meth:`Recommender.load` verifies the manifest, versions and every
file's SHA-256, then the business-rule tables are aligned with the new vocabulary and a
smoke test scores a probe session. Only a model that passed all of this replaces the old
one, by one reference assignment (atomic under the GIL). A request reads
``variant.current`` once at its start and uses that object to the end, so in-flight
requests finish on the model they started with; the old model is freed when the last of
them drops it. A broken artifact is refused with its error recorded in
``variant.last_error`` and the old model keeps serving.

Two ways to trigger it:

- the watcher (every ``--reload-interval`` seconds) notices that a variant's folder was
  replaced (``Recommender.save`` writes a new folder and renames it into place, so the
  manifest's inode and mtime change) or that another replica published a new folder for
  the variant in the shared store;
- an admin calls ``POST /v1/admin/models/{variant}/reload``, optionally with a new path;
  the path is then published in the store so the other replicas follow.

The model version is a content hash of the manifest (model name, hyperparameters, file
checksums): the same artifact gets the same version on every replica and after a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError, ModelError, SessionrecError
from sessionrec.fingerprint_check import recorded_fingerprints
from sessionrec.models.base import Recommender
from sessionrec.models.persist import MANIFEST, read_manifest
from sessionrec.models.registry import load_model
from sessionrec.serve.catalog import (
    NO_COUNTS_WARNING,
    Catalog,
    fallback_popularity,
    read_id_list,
    read_popularity,
)
from sessionrec.serve.config import ServeConfig, VariantSpec
from sessionrec.serve.rules import Filters, ItemRules

log = logging.getLogger("sessionrec.serve.registry")

CONTROL_PREFIX = "model:"
"""Store control key of a variant's model folder: ``model:{variant}``."""


def model_version(manifest: dict[str, Any]) -> str:
    """A short content hash of an artifact: equal manifests give equal versions."""
    core = {key: manifest.get(key) for key in ("model", "params", "files", "artifact_version")}
    digest = hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def stable_fraction(session_id: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, session id): the A/B coin of a visitor."""
    digest = hashlib.blake2b(f"{salt}\x00{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def folder_signature(path: str | Path) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of the folder's manifest; changes when the folder is replaced."""
    try:
        stat = (Path(path) / MANIFEST).stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready to serve: never mutated after construction, safe to share."""

    variant: str
    path: str
    model: Recommender
    name: str
    version: str
    rules: ItemRules
    loaded_at: float
    signature: tuple[int, int, int] | None


@dataclass(eq=False)
class Variant:
    """One A/B arm and the model it serves now."""

    name: str
    weight: float
    path: str
    current: LoadedModel | None = None
    last_error: str | None = None
    failed: tuple[str, tuple[int, int, int] | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serving(self) -> LoadedModel:
        current = self.current
        if current is None:  # pragma: no cover - the app loads every variant before serving
            raise ModelError(f"variant {self.name!r} has no model loaded")
        return current


class ModelLoader:
    """Builds :class:`LoadedModel` objects; holds the inputs shared by every variant."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.catalog = Catalog.read(config.catalog) if config.catalog else None
        self.popularity: tuple[list[str], np.ndarray] | None = (
            read_popularity(config.popularity) if config.popularity else None
        )
        self.deny = read_id_list(config.deny) if config.deny else []
        self.base_filters = Filters(
            include_categories=frozenset(config.include_categories),
            exclude_categories=frozenset(config.exclude_categories),
            available_only=config.available_only,
        )
        if (self.base_filters.include_categories or self.base_filters.exclude_categories) and (
            self.catalog is None
        ):
            raise ConfigError("--include-category/--exclude-category need --catalog")
        if config.available_only and self.catalog is None:
            raise ConfigError("--available-only needs --catalog")

    @property
    def rules_active(self) -> bool:
        """True when server-side rules may remove items (replay parity then does not hold)."""
        return bool(
            self.deny
            or not self.base_filters.empty
            or (self.catalog is not None and self.config.unlisted == "exclude")
        )

    def load(self, variant: str, path: str) -> LoadedModel:
        """Load, align and smoke-test a model folder; raises ModelError if it is unusable."""
        signature = folder_signature(path)
        try:
            manifest = read_manifest(path)
            model = load_model(path)
        except SessionrecError:
            raise
        except Exception as exc:  # damage that load_model does not wrap (a bad zip, ...)
            raise ModelError(f"{path}: cannot load model: {type(exc).__name__}: {exc}") from exc
        rules = self.rules_for(model)
        if not rules.has_popularity and model.training_counts() is None:
            log.warning("variant %s: " + NO_COUNTS_WARNING, variant, path)
        elif not rules.has_popularity:
            log.warning(
                "variant %s: no popularity source (pass --popularity FILE): fallback lists "
                "for empty sessions and unknown items will be empty",
                variant,
            )
        self._smoke_test(model, rules, path)
        loaded = LoadedModel(
            variant=variant,
            path=str(path),
            model=model,
            name=str(manifest["model"]),
            version=model_version(manifest),
            rules=rules,
            loaded_at=time.time(),
            signature=signature,
        )
        log.info(
            "variant %s: loaded %s version %s (%d items) from %s",
            variant,
            loaded.name,
            loaded.version,
            model.n_items,
            path,
        )
        return loaded

    def rules_for(self, model: Recommender, previous: ItemRules | None = None) -> ItemRules:
        """The business rules over ``model``'s vocabulary (again whenever it grows; with the
        ``previous`` rules of the vocabulary it grew from, their id tables are extended)."""
        return ItemRules(
            model.vocab_,
            catalog=self.catalog,
            popularity=fallback_popularity(model, self.popularity),
            base=self.base_filters,
            deny=self.deny,
            unlisted=self.config.unlisted,
            previous=previous,
        )

    @staticmethod
    def _smoke_test(model: Recommender, rules: ItemRules, path: str) -> None:
        """Score a probe session end to end; a model that cannot is refused before serving."""
        if model.n_items == 0:
            raise ModelError(f"{path}: the model has an empty vocabulary")
        probe = [str(model.vocab_.decode([0])[0])]
        try:
            for session in ([], probe):
                ranked = rules.recommend(model, session, 5, exclude_seen=False, fallback=False)
                if any(not np.isfinite(s) for s in ranked.scores):
                    raise ModelError("non-finite score in the answer")
        except SessionrecError as exc:
            raise ModelError(f"{path}: model failed its smoke test: {exc}") from exc
        except Exception as exc:  # an artifact that crashes the model is a broken artifact
            raise ModelError(
                f"{path}: model failed its smoke test: {type(exc).__name__}: {exc}"
            ) from exc


ReloadHook = Callable[[str, str, LoadedModel | None, str | None], None]
"""Called after every (re)load: (variant, outcome 'loaded'|'rejected', model, error)."""


class ModelRegistry:
    """The variants, their traffic split and their reloads."""

    def __init__(
        self,
        specs: tuple[VariantSpec, ...],
        loader: ModelLoader,
        salt: str = "sessionrec-ab",
        on_reload: ReloadHook | None = None,
    ) -> None:
        self.loader = loader
        self.salt = salt
        self.variants: dict[str, Variant] = {
            spec.name: Variant(spec.name, float(spec.weight), str(spec.path)) for spec in specs
        }
        self.on_reload = on_reload
        total = sum(v.weight for v in self.variants.values())
        bounds, acc = [], 0.0
        for variant in self.variants.values():
            acc += variant.weight / total
            bounds.append((acc, variant))
        self._bounds = [(b, v) for b, v in bounds if v.weight > 0]
        self.default = next(iter(self.variants.values()))

    def load_all(self) -> None:
        """Load every variant; at start-up a broken folder is an error (nothing to fall back on)."""
        for variant in self.variants.values():
            self.reload(variant.name)

    def get(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            raise ConfigError(
                f"unknown variant {name!r}; variants: {', '.join(self.variants)}"
            ) from None

    def choose(self, session_id: str | None) -> Variant:
        """The variant of a session (by stable hash); a random one without a session id."""
        if len(self._bounds) == 1:
            return self._bounds[0][1]
        if session_id is None:
            u = float(np.random.default_rng().random())
        else:
            u = stable_fraction(session_id, self.salt)
        for bound, variant in self._bounds:
            if u < bound:
                return variant
        return self._bounds[-1][1]

    def reload(self, name: str, path: str | None = None) -> LoadedModel:
        """Load ``path`` (default: the variant's folder) and swap it in, or raise ModelError.

        Runs in the caller's thread (the app calls it through ``asyncio.to_thread``); one
        reload per variant at a time. On failure the serving model is untouched.
        """
        variant = self.get(name)
        target = str(path or variant.path)
        with variant.lock:
            try:
                loaded = self.loader.load(name, target)
            except SessionrecError as exc:
                variant.last_error = str(exc)
                variant.failed = (target, folder_signature(target))
                log.error("variant %s: refused %s: %s (old model keeps serving)", name, target, exc)
                if self.on_reload is not None:
                    self.on_reload(name, "rejected", None, str(exc))
                if isinstance(exc, ModelError):
                    raise
                raise ModelError(str(exc)) from exc
            variant.current = loaded  # the atomic swap
            variant.path = target
            variant.last_error = None
            variant.failed = None
        if self.on_reload is not None:
            self.on_reload(name, "loaded", loaded, None)
        return loaded

    def poll(self, control: dict[str, str] | None) -> list[str]:
        """Reload every variant whose folder changed or whose published path moved.

        ``control`` is the store's shared values (None when the store is unreachable).
        Returns the names of the variants reloaded. A folder that failed is not retried
        until it changes again, so a broken artifact is not reloaded in a loop.
        """
        reloaded = []
        for variant in self.variants.values():
            target = variant.path
            if control is not None:
                target = control.get(CONTROL_PREFIX + variant.name, target)
            signature = folder_signature(target)
            current = variant.current
            if current is not None and target == current.path and signature == current.signature:
                continue
            if signature is None or variant.failed == (target, signature):
                continue
            try:
                self.reload(variant.name, target)
                reloaded.append(variant.name)
            except ModelError:
                pass  # logged and recorded by reload
        return reloaded

    def describe(self) -> list[dict[str, Any]]:
        """Public description of the variants (no file paths)."""
        total = sum(v.weight for v in self.variants.values())
        out = []
        for variant in self.variants.values():
            current = variant.current
            out.append(
                {
                    "name": variant.name,
                    "weight": variant.weight,
                    "share": variant.weight / total if total else 0.0,
                    "model": current.name if current else None,
                    "model_version": current.version if current else None,
                    "n_items": current.model.n_items if current else None,
                    # what replay compares with the test split's training file
                    "data_fingerprints": recorded_fingerprints(current.model) if current else None,
                }
            )
        return out
