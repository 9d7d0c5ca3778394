"""``sessionrec serve`` and ``sessionrec replay``.

The main CLI (:mod:`sessionrec.cli`) calls :func:`add_parsers` with its subparsers; this
module imports nothing heavy at import time, so the rest of the CLI works without the
``serve`` extra. It never imports the main CLI back: run it as ``sessionrec serve ...`` or
``python -m sessionrec serve ...``.

Every ``serve`` option also reads an environment variable (``SESSIONREC_`` + the option
name in capitals, e.g. ``SESSIONREC_STORE=redis://...``, ``SESSIONREC_WORKERS=2``), the
usual way to configure a container; a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sessionrec._errors import ConfigError, SessionrecError
from sessionrec.serve.config import LOG_LEVELS, ServeConfig

log = logging.getLogger("sessionrec.serve")

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
"""Pinned to 1 in service processes: parallelism comes from worker processes, and BLAS or
numba thread pools in every worker fight over the same cores (two workers on two cores
served 16 req/s with default threads, ~700 with one thread each)."""


def _env(name: str, default: Any, kind: Callable[[str], Any] = str) -> Any:
    """The option's default from ``$SESSIONREC_<NAME>``; a ConfigError naming it if invalid.

    It runs while the parser is built, so the main CLI builds its parser inside its error
    handling: a bad variable is one line on stderr, not a traceback.
    """
    variable = "SESSIONREC_" + name.upper().replace("-", "_")
    value = os.environ.get(variable)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"environment {variable}={value!r} is invalid") from None


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _exclude_seen_default(args: argparse.Namespace) -> bool | None:
    """``--exclude-seen``: True, ``--no-exclude-seen``: False, neither: None (the served
    model decides: see :attr:`sessionrec.serve.config.ServeConfig.exclude_seen`)."""
    if args.exclude_seen and args.no_exclude_seen:  # both from the environment
        raise ConfigError("--exclude-seen and --no-exclude-seen contradict each other")
    if args.exclude_seen:
        return True
    return False if args.no_exclude_seen else None


def add_parsers(subparsers: Any) -> None:
    """Add ``serve`` and ``replay`` to the main CLI's subparsers."""
    p = subparsers.add_parser(
        "serve",
        help="real-time recommendation service (HTTP, FastAPI on uvicorn)",
        description="Serve MODEL_DIR (and A/B variants) over HTTP. Options also read "
        "SESSIONREC_<OPTION> environment variables; the admin token is read from "
        "$SESSIONREC_ADMIN_TOKEN.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="model folder of the default variant")
    p.add_argument("--host", default=_env("host", "127.0.0.1"), help="address to listen on")
    p.add_argument("--port", type=int, default=_env("port", 8000, int), help="port to listen on")
    p.add_argument(
        "--workers", type=int, default=_env("workers", 1, int), help="processes (one per core)"
    )
    p.add_argument(
        "--store",
        default=_env("store", "memory"),
        help="'memory' (per process) or a redis:// URL shared by replicas",
    )
    p.add_argument("--catalog", default=_env("catalog", None), help="CSV/TSV/Parquet/JSONL")
    p.add_argument(
        "--popularity",
        default=_env("popularity", None),
        help="clicks for fallbacks instead of each model folder's stored training counts: "
        "train_sessions.txt or a table with item_id,count",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR[:WEIGHT]",
        help="an extra A/B variant (repeatable)",
    )
    p.add_argument(
        "--default-weight",
        type=float,
        default=_env("default_weight", 1.0, float),
        help="traffic weight of MODEL_DIR (variant 'default')",
    )
    p.add_argument(
        "--ab-salt",
        default=_env("ab_salt", "sessionrec-ab"),
        help="salt of the visitor -> variant hash (a new salt reshuffles visitors)",
    )
    p.add_argument(
        "--session-ttl",
        type=float,
        default=_env("session_ttl", 1800.0, float),
        help="seconds of inactivity after which a visitor's session starts afresh",
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        default=_env("max_sessions", 100_000, int),
        help="memory store: sessions kept per process (least recently used dropped)",
    )
    p.add_argument(
        "--max-events",
        type=int,
        default=_env("max_events", 200, int),
        help="most recent clicks kept per session",
    )
    p.add_argument(
        "--recommendation-ttl",
        type=float,
        default=_env("recommendation_ttl", 3600.0, float),
        help="seconds an answer's record is kept for feedback",
    )
    p.add_argument(
        "--attribution-window",
        type=float,
        default=_env("attribution_window", 3600.0, float),
        metavar="SECONDS",
        help="a cart or purchase of a recommended item within this many seconds of the answer "
        "that showed it (same session) counts as a conversion of that answer",
    )
    p.add_argument(
        "--kpi-retention",
        type=float,
        default=_env("kpi_retention", 7 * 86400.0, float),
        metavar="SECONDS",
        help="seconds a session's KPI summary (abtest report --store) is kept after its last "
        "change",
    )
    p.add_argument(
        "--outage-buffer",
        type=int,
        default=_env("outage_buffer", 10_000, int),
        help="clicks a worker keeps while Redis is down, written back when it returns",
    )
    p.add_argument(
        "--trending-half-life",
        type=float,
        default=_env("trending_half_life", None, float),
        metavar="SECONDS",
        help="fallbacks rank items by live clicks decayed with this half-life before the "
        "all-time best sellers (default: all-time popularity only)",
    )
    add_live_options(p)
    p.add_argument(
        "--new-item-share",
        type=float,
        default=_env("new_item_share", 0.0, float),
        metavar="SHARE",
        help="with --catalog: at most this share of each answer for catalog items the model "
        "has never seen, related to the session by category, attributes and name (0: never)",
    )
    p.add_argument(
        "--default-k",
        type=int,
        default=_env("default_k", 10, int),
        help="recommendations per request when the request gives no k",
    )
    p.add_argument(
        "--max-k", type=int, default=_env("max_k", 500, int), help="largest k a request may ask"
    )
    p.add_argument(
        "--max-session-length",
        type=int,
        default=_env("max_session_length", 200, int),
        help="most items a stateless request may send",
    )
    p.add_argument(
        "--max-id-length",
        type=int,
        default=_env("max_id_length", 128, int),
        help="longest item, session or visitor id accepted (characters)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env("max_body_bytes", 65536, int),
        help="largest request body accepted (bytes)",
    )
    p.add_argument(
        "--include-category",
        action="append",
        default=[],
        metavar="NAME",
        help="only recommend these categories (repeatable; needs --catalog)",
    )
    p.add_argument(
        "--exclude-category",
        action="append",
        default=[],
        metavar="NAME",
        help="never recommend these categories (repeatable; needs --catalog)",
    )
    p.add_argument(
        "--available-only",
        action="store_true",
        default=_env("available_only", False, _flag),
        help="never recommend unavailable items (needs --catalog)",
    )
    p.add_argument("--deny", default=_env("deny", None), help="file of item ids never shown")
    p.add_argument(
        "--unlisted",
        choices=["exclude", "allow"],
        default=_env("unlisted", "exclude"),
        help="items missing from the catalog: exclude (never shown) or allow",
    )
    seen = p.add_mutually_exclusive_group()
    seen.add_argument(
        "--exclude-seen",
        action="store_true",
        default=_env("exclude_seen", False, _flag),
        help="remove the session's own items from every response whose request does not say "
        "otherwise, even for a model that recommends repeats (without --exclude-seen or "
        "--no-exclude-seen: removed unless the model recommends repeats)",
    )
    seen.add_argument(
        "--no-exclude-seen",
        action="store_true",
        default=_env("no_exclude_seen", False, _flag),
        help="keep the session's own items among the recommendations of every request that "
        "does not ask to exclude them (exclude_seen), whatever the model (without either "
        "flag: removed unless the model recommends repeats)",
    )
    p.add_argument(
        "--reload-interval",
        type=float,
        default=_env("reload_interval", 10.0, float),
        help="seconds between checks for a new model folder (0: off)",
    )
    p.add_argument(
        "--redis-timeout",
        type=float,
        default=_env("redis_timeout", 0.25, float),
        help="seconds a Redis call may take before the request is answered without it",
    )
    p.add_argument(
        "--redis-retry",
        type=float,
        default=_env("redis_retry", 1.0, float),
        help="seconds after a Redis failure before Redis is tried again",
    )
    p.add_argument(
        "--redis-prefix",
        default=_env("redis_prefix", "sessionrec:"),
        help="prefix of every Redis key (several services can share one Redis)",
    )
    p.add_argument(
        "--admin-token-env",
        default="SESSIONREC_ADMIN_TOKEN",
        help="environment variable holding the admin bearer token",
    )
    p.add_argument(
        "--log-level",
        default=_env("log_level", "info"),
        choices=LOG_LEVELS,
        help="log level of the service",
    )
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser(
        "replay",
        help="replay test sessions against a live service: HR@K/MRR@K and latency",
    )
    p.add_argument("test_file", metavar="TEST_FILE", help="sessions-txt test file")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the service's base URL")
    p.add_argument("-k", type=int, default=20, help="cut-off K of HR@K and MRR@K")
    p.add_argument("--concurrency", type=int, default=8, help="sessions replayed at once")
    p.add_argument("--variant", help="force this A/B variant")
    p.add_argument("--limit", type=int, help="replay only the first N sessions")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument(
        "--allow-other-data",
        action="store_true",
        help="replay even if the served model was trained on other data than the "
        "train_sessions.txt beside TEST_FILE (warns instead of refusing)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_replay)


def add_live_options(p: argparse.ArgumentParser) -> None:
    """``--live-*``: learning from finished sessions while serving (sessionrec.serve.live)."""
    p.add_argument(
        "--live-updates",
        action="store_true",
        default=_env("live_updates", False, _flag),
        help="session-kNN variants learn from finished sessions of consenting visitors while "
        "serving: they become neighbours and their new items recommendable within seconds",
    )
    for option, default, kind, metavar, text in (
        ("live-idle", 300.0, float, "SECONDS", "a session without a click this long is finished"),
        ("live-interval", 2.0, float, "SECONDS", "seconds between index updates"),
        ("live-max-sessions", 500_000, int, "N", "most sessions a neighbour index keeps"),
        ("live-feed", 100_000, int, "N", "finished sessions the feed keeps (then dropped)"),
        ("live-batch", 20_000, int, "N", "most finished sessions one index update takes"),
        ("live-snapshot-interval", 600.0, float, "SECONDS", "seconds between snapshots"),
    ):
        p.add_argument(
            "--" + option,
            type=kind,
            default=_env(option, default, kind),
            metavar=metavar,
            help=f"{text} (default {default:,})",
        )
    p.add_argument(
        "--live-snapshot-dir",
        default=_env("live_snapshot_dir", None),
        metavar="DIR",
        help="save the live models to DIR/<variant> every --live-snapshot-interval (model "
        "folders for evaluate and load_model; a restarted replica resumes from them)",
    )


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """The :class:`ServeConfig` of parsed ``serve`` arguments."""
    from sessionrec.serve.config import DEFAULT_VARIANT, VariantSpec, parse_variant

    variants = [VariantSpec(DEFAULT_VARIANT, args.model_dir, args.default_weight)]
    variants += [parse_variant(text) for text in args.variant]
    return ServeConfig(
        variants=tuple(variants),
        host=args.host,
        port=args.port,
        workers=args.workers,
        store=args.store,
        session_ttl=args.session_ttl,
        max_sessions=args.max_sessions,
        max_events=args.max_events,
        recommendation_ttl=args.recommendation_ttl,
        outage_buffer=args.outage_buffer,
        trending_half_life=args.trending_half_life,
        live_updates=args.live_updates,
        live_idle=args.live_idle,
        live_interval=args.live_interval,
        live_max_sessions=args.live_max_sessions,
        live_feed=args.live_feed,
        live_batch=args.live_batch,
        live_snapshot_dir=args.live_snapshot_dir,
        live_snapshot_interval=args.live_snapshot_interval,
        new_item_share=args.new_item_share,
        attribution_window=args.attribution_window,
        kpi_retention=args.kpi_retention,
        redis_timeout=args.redis_timeout,
        redis_retry=args.redis_retry,
        redis_prefix=args.redis_prefix,
        default_k=args.default_k,
        max_k=args.max_k,
        max_session_length=args.max_session_length,
        max_id_length=args.max_id_length,
        max_body_bytes=args.max_body_bytes,
        exclude_seen=_exclude_seen_default(args),
        catalog=args.catalog,
        popularity=args.popularity,
        include_categories=tuple(args.include_category),
        exclude_categories=tuple(args.exclude_category),
        available_only=args.available_only,
        deny=args.deny,
        unlisted=args.unlisted,
        ab_salt=args.ab_salt,
        reload_interval=args.reload_interval,
        admin_token_env=args.admin_token_env,
        log_level=args.log_level,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    for name in THREAD_VARIABLES:  # before numpy loads in this process or any worker
        os.environ.setdefault(name, "1")
    from sessionrec.serve import require_serve_extra

    require_serve_extra()
    import uvicorn

    from sessionrec.demo import check_port_free
    from sessionrec.models.persist import read_manifest
    from sessionrec.serve.config import CONFIG_ENV

    config = config_from_args(args)
    config.check_files()
    check_port_free(config.host, config.port)  # before the models load, as `demo` does
    for spec in config.variants:  # the cheap checks first
        read_manifest(spec.path)
    check_models(config)
    metrics_dir = None
    if config.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="sessionrec-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        config = config.replace(metrics_dir=metrics_dir)
    os.environ[CONFIG_ENV] = config.to_json()
    if config.workers > 1 and config.store == "memory":
        log.warning(
            "%d workers with the memory store: each worker has its own sessions and counters; "
            "use --store redis://... to share them",
            config.workers,
        )
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    http = "httptools" if _importable("httptools") else "h11"
    log.info(
        "serving on http://%s:%d with %d worker(s) (%s, %s)",
        config.host,
        config.port,
        config.workers,
        loop,
        http,
    )
    try:
        options: dict[str, Any] = {
            "factory": True,
            "host": config.host,
            "port": config.port,
            "workers": config.workers,
            "loop": loop,
            "http": http,
            "access_log": False,
            "log_level": config.log_level,
            "backlog": 4096,
            "timeout_graceful_shutdown": 10,
        }
        # A worker imports numpy/numba and loads its models before it can answer the
        # supervisor's pings; on a busy machine that takes longer than uvicorn's default
        # 5 s, and the supervisor would kill and respawn it forever.
        options.update(_healthcheck_option(uvicorn.run, WORKER_HEALTHCHECK_SECONDS))
        uvicorn.run("sessionrec.serve.app:app_from_env", **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def check_models(config: ServeConfig) -> None:
    """Load every variant as a worker will, and drop it: a broken folder is one line here.

    A worker that fails while it starts is reported by uvicorn as a traceback and exit code
    3 (and a multi-worker supervisor may respawn it); here the same :class:`ModelError`
    reaches the CLI's one-line error instead. It costs one extra load at start-up. The
    loader also reads the catalog, popularity and deny list, so their errors surface here.
    """
    from sessionrec.serve.registry import ModelLoader

    loader = ModelLoader(config)
    for spec in config.variants:
        loaded = loader.load(spec.name, spec.path)
        warn_other_training_data(loaded.model, spec.name, config.popularity)


def warn_other_training_data(model: Any, variant: str, popularity: str | None) -> None:
    """Say loudly when ``--popularity`` is a benchmark's ``train_sessions.txt`` and the
    variant's model was trained on other data (its fallbacks and its answers then come from
    two different shops or periods)."""
    from sessionrec.fingerprint_check import TRAIN_FILE, data_mismatch

    if popularity is None or Path(popularity).name != TRAIN_FILE:
        return
    mismatch = data_mismatch(model, popularity, model_name=f"variant {variant}")
    if mismatch is not None:
        log.warning("serving with --popularity %s: %s", popularity, mismatch)


WORKER_HEALTHCHECK_SECONDS = 120


def _healthcheck_option(run: Callable[..., Any], seconds: int) -> dict[str, int]:
    """``timeout_worker_healthcheck`` where this uvicorn has it (added in 0.3x)."""
    import inspect

    if "timeout_worker_healthcheck" in inspect.signature(run).parameters:
        return {"timeout_worker_healthcheck": seconds}
    return {}


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def cmd_replay(args: argparse.Namespace) -> int:
    import json

    from sessionrec.serve import require_serve_extra

    require_serve_extra()
    from sessionrec.data.reliability import SMALL_TEST_NOTE, small_test_warning
    from sessionrec.serve.replay import replay_file

    if args.k < 1:
        raise ConfigError(f"-k must be >= 1, got {args.k}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    result = replay_file(
        args.test_file,
        args.url,
        k=args.k,
        concurrency=args.concurrency,
        timeout=args.timeout,
        variant=args.variant,
        limit=args.limit,
        allow_other_data=args.allow_other_data,
    )
    payload = {"url": result.url, **result.metrics()}
    warning = small_test_warning(int(payload["n_cases"]))
    if warning is not None:  # as evaluate says it: the online numbers are as noisy
        log.warning("%s", warning)
        payload["warnings"] = [warning]
    if args.json:
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        for key, value in payload.items():
            if key == "warnings":
                continue
            if isinstance(value, float):
                value = round(value, 4)
            note = f"  {SMALL_TEST_NOTE}" if key == "n_cases" and warning else ""
            sys.stdout.write(f"{key:>18}  {value}{note}\n")
    if result.errors:
        raise SessionrecError(
            f"{result.errors} of {result.latencies_ms.size + result.errors} requests failed "
            f"(first: {result.first_error})"
        )
    return 0
