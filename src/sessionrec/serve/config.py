"""Service settings: one frozen dataclass, filled from CLI flags (with environment defaults).

Why a plain dataclass and not a settings framework: the same object must travel from the
``sessionrec serve`` process to every uvicorn worker process it spawns. It is serialised to
JSON in one environment variable (:data:`CONFIG_ENV`) and rebuilt there, so every worker
runs with exactly the parent's settings.

Secrets never travel that way: the admin bearer token is read from the environment
variable *named* by :attr:`ServeConfig.admin_token_env` (default ``SESSIONREC_ADMIN_TOKEN``)
in each process, at the moment it is needed; the config holds only that name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionrec._errors import ConfigError

CONFIG_ENV = "SESSIONREC_SERVE_CONFIG"
"""Environment variable carrying the JSON config from ``sessionrec serve`` to its workers."""

DEFAULT_VARIANT = "default"
"""Name of the variant served from the positional ``MODEL_DIR``."""

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
"""Values of ``--log-level`` (uvicorn's names)."""

_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class VariantSpec:
    """One A/B arm: a name, a model folder and a traffic weight (relative, >= 0)."""

    name: str
    path: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not _VARIANT_NAME.match(self.name):
            raise ConfigError(
                f"variant name {self.name!r} is invalid: use 1-64 letters, digits, '_', '.', '-'"
            )
        if not self.path:
            raise ConfigError(f"variant {self.name!r} has no model folder")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"variant {self.name!r}: weight must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"variant {self.name!r}: weight must be finite and >= 0")


def parse_variant(text: str) -> VariantSpec:
    """Parse ``name=DIR[:weight]`` (the weight after the *last* colon, so DIR may hold one)."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ConfigError(f"--variant expects name=DIR[:weight], got {text!r}")
    path, weight = rest, 1.0
    head, colon, tail = rest.rpartition(":")
    if colon and head:
        try:
            weight = float(tail)
            path = head
        except ValueError:
            path, weight = rest, 1.0  # a colon inside the path, no weight
    return VariantSpec(name=name.strip(), path=path.strip(), weight=weight)


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``sessionrec serve`` can be told. Defaults are the documented ones."""

    variants: tuple[VariantSpec, ...]
    """A/B arms; the first is the positional ``MODEL_DIR`` (named ``default``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1

    store: str = "memory"
    """``memory`` (per process) or a ``redis://`` / ``rediss://`` / ``unix://`` URL (shared)."""
    session_ttl: float = 1800.0
    """Idle timeout of a session, seconds: a visitor silent that long starts afresh."""
    max_sessions: int = 100_000
    """Memory store only: least recently used sessions beyond this are dropped."""
    max_events: int = 200
    """Events kept per session (the most recent ones); older clicks are forgotten."""
    recommendation_ttl: float = 3600.0
    """How long a recommendation id can receive feedback, seconds."""
    redis_timeout: float = 0.25
    """Seconds a Redis call may take before the request is answered in degraded mode."""
    redis_retry: float = 1.0
    """After a Redis failure, seconds before it is tried again (no waiting on a dead server)."""
    redis_prefix: str = "sessionrec:"
    outage_buffer: int = 10_000
    """Redis store: most clicks a worker keeps while Redis is down, written back when it
    answers again (0: none are kept; beyond the bound they are dropped and counted)."""
    attribution_window: float = 3600.0
    """Seconds after an answer in which a cart or purchase of an item it showed, in the same
    session, counts as a conversion of that answer (last touch: see sessionrec.serve.kpis)."""
    kpi_retention: float = 7 * 86400.0
    """Seconds a session's KPI summary (for ``abtest report --store``) is kept after its last
    change."""

    trending_half_life: float | None = None
    """Seconds: rank the fallback chain by live clicks decayed with this half-life before
    the all-time best sellers (see :mod:`~sessionrec.serve.trending`); None: all-time
    popularity only."""

    new_item_share: float = 0.0
    """With a catalog: at most this share of each answer (``floor(share * k)`` places) for
    catalog items the model does not know, related to the session by their content (see
    :mod:`~sessionrec.serve.new_items`); 0 (the default): never."""

    live_updates: bool = False
    """Learn from finished sessions while serving: session-kNN variants append them to their
    neighbour index (see :mod:`~sessionrec.serve.live`)."""
    live_idle: float = 300.0
    """Seconds without a click after which a session counts as finished and is learned
    (below ``session_ttl``; a client may also end a session explicitly)."""
    live_interval: float = 2.0
    """Seconds between index updates: a finished session is recommendable this long after
    it finished, plus the update itself."""
    live_max_sessions: int = 500_000
    """Most sessions a variant's neighbour index keeps; the oldest go beyond it (bounds the
    memory of a service that learns for days)."""
    live_feed: int = 100_000
    """Finished sessions the feed keeps for the workers and replicas to read, and the most a
    worker lets wait; beyond, the oldest are dropped and counted, never blocking answers."""
    live_batch: int = 20_000
    """Most finished sessions one index update takes."""
    live_snapshot_dir: str | None = None
    """Folder for periodic snapshots of the live models (``<dir>/<variant>``, a model folder
    ``evaluate`` and ``load_model`` read); a replica that starts loads the newest one and
    reads the feed from where it was taken."""
    live_snapshot_interval: float = 600.0
    """Seconds between snapshots."""

    default_k: int = 10
    max_k: int = 500
    max_session_length: int = 200
    """Most items a stateless request may send."""
    max_id_length: int = 128
    max_body_bytes: int = 64 * 1024
    max_exclude: int = 500
    """Most item ids a request may list in ``exclude_items`` / category filters."""

    exclude_seen: bool | None = None
    """Default of the ``exclude_seen`` request option. ``None`` (the default): leave out the
    session's items unless the served model recommends repeats
    (:meth:`~sessionrec.models.base.Recommender.recommends_repeats`, a repeat layer that
    validation switched on), since excluding them would drop exactly what that model learned
    to recommend; ``True`` / ``False`` force it for every model."""
    catalog: str | None = None
    popularity: str | None = None
    """Optional popularity source: a sessions-txt file (clicks are counted) or a table."""
    include_categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    available_only: bool = False
    deny: str | None = None
    """File of item ids never to recommend, one per line."""
    unlisted: str = "exclude"
    """With a catalog: ``exclude`` (never recommend items missing from it) or ``allow``."""

    ab_salt: str = "sessionrec-ab"
    """Changing the salt reshuffles visitors between variants."""
    reload_interval: float = 10.0
    """Seconds between checks for a new model folder (0 disables the watcher)."""
    admin_token_env: str = "SESSIONREC_ADMIN_TOKEN"
    metrics_dir: str | None = None
    """Prometheus multiprocess folder (set by ``serve --workers N`` when N > 1)."""
    log_level: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Reject inconsistent settings with a message naming the option."""
        if not self.variants:
            raise ConfigError("at least one model folder is needed")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"variant names must be unique, got {names}")
        if sum(v.weight for v in self.variants) <= 0:
            raise ConfigError("at least one variant needs a positive weight")
        _positive_int("--port", self.port, maximum=65535)
        _positive_int("--workers", self.workers, maximum=64)
        for name in ("max_sessions", "max_events", "default_k", "max_k", "max_session_length"):
            _positive_int("--" + name.replace("_", "-"), getattr(self, name))
        for name in ("max_id_length", "max_body_bytes", "max_exclude"):
            _positive_int("--" + name.replace("_", "-"), getattr(self, name))
        if isinstance(self.outage_buffer, bool) or not isinstance(self.outage_buffer, int):
            raise ConfigError(f"--outage-buffer must be an integer, got {self.outage_buffer!r}")
        if self.outage_buffer < 0:
            raise ConfigError("--outage-buffer must be >= 0 (0 keeps no clicks during outages)")
        if self.default_k > self.max_k:
            raise ConfigError(f"--default-k ({self.default_k}) exceeds --max-k ({self.max_k})")
        for name in (
            "session_ttl",
            "recommendation_ttl",
            "redis_timeout",
            "redis_retry",
            "attribution_window",
            "kpi_retention",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number")
        if self.trending_half_life is not None and not (
            isinstance(self.trending_half_life, (int, float))
            and math.isfinite(self.trending_half_life)
            and self.trending_half_life > 0
        ):
            raise ConfigError("--trending-half-life must be a positive number of seconds")
        share = self.new_item_share
        if not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ConfigError(f"--new-item-share must be between 0 and 1, got {share!r}")
        if share > 0 and self.catalog is None:
            raise ConfigError("--new-item-share needs --catalog (new items come from it)")
        self.validate_live()
        if not math.isfinite(self.reload_interval) or self.reload_interval < 0:
            raise ConfigError("--reload-interval must be >= 0 (0 disables the watcher)")
        if self.log_level not in LOG_LEVELS:  # argparse checks a flag, not its variable
            raise ConfigError(
                f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.unlisted not in ("exclude", "allow"):
            raise ConfigError(f"--unlisted must be 'exclude' or 'allow', got {self.unlisted!r}")
        if self.store != "memory" and not self.store.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(f"--store must be 'memory' or a redis:// URL, got {self.store!r}")

    def validate_live(self) -> None:
        """The live-learning options (``--live-*``)."""
        for name in ("live_idle", "live_interval", "live_snapshot_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number")
        for name in ("live_max_sessions", "live_feed", "live_batch"):
            _positive_int("--" + name.replace("_", "-"), getattr(self, name))
        if not self.live_updates:
            return
        if self.live_idle >= self.session_ttl:
            raise ConfigError(
                f"--live-idle ({self.live_idle:g} s) must be below --session-ttl "
                f"({self.session_ttl:g} s): a session must be learned before it expires"
            )
        if self.workers > 1 and self.store == "memory":
            raise ConfigError(
                "--live-updates with several workers needs a shared store (--store redis://...): "
                "with the memory store each worker would learn only its own sessions"
            )

    # ------------------------------------------------------------ properties
    @property
    def default_variant(self) -> VariantSpec:
        return self.variants[0]

    def admin_token(self) -> str | None:
        """The admin bearer token from the environment; None disables the admin endpoints."""
        token = os.environ.get(self.admin_token_env, "")
        return token or None

    def check_files(self) -> None:
        """Fail early, with the option's name, on files that do not exist."""
        for spec in self.variants:
            if not Path(spec.path).is_dir():
                raise ConfigError(f"model folder {spec.path} (variant {spec.name}) does not exist")
        for option, value in (
            ("--catalog", self.catalog),
            ("--popularity", self.popularity),
            ("--deny", self.deny),
        ):
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"{option} {value}: no such file")

    # --------------------------------------------------------- serialisation
    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        try:
            raw = json.loads(text)
            raw["variants"] = tuple(VariantSpec(**v) for v in raw["variants"])
            for key in ("include_categories", "exclude_categories"):
                raw[key] = tuple(raw.get(key) or ())
            return cls(**raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid service configuration: {exc}") from None

    @classmethod
    def from_env(cls) -> ServeConfig:
        """The config a worker process was started with (``$SESSIONREC_SERVE_CONFIG``)."""
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise ConfigError(f"{CONFIG_ENV} is not set: start the service with `sessionrec serve`")
        return cls.from_json(text)

    def replace(self, **changes: Any) -> ServeConfig:
        return dataclasses.replace(self, **changes)


def _positive_int(option: str, value: Any, maximum: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigError(f"{option} must be an integer >= 1{bound}, got {value!r}")
