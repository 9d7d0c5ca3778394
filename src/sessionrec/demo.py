"""``sessionrec demo``: the whole loop on a synthetic shop, in a few seconds, then a live shop.

Generate a shop (a catalog of named products and a visitor click log), run the real data
pipeline on the log (cut sessions at 30 minutes of inactivity, drop repeats and rare items,
hold out the last day), train two models, evaluate them against the popularity baseline
with full ranking, and show what they recommend after running shoes -> sports shorts ->
fitness tracker.

Then save both models and the catalog to a demo folder (:func:`save_demo`) and serve them
as two A/B variants with the storefront page at ``/demo`` (:func:`serve_demo`): the same
service ``sessionrec serve`` runs, so the page shows the served models' real answers.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError
from sessionrec.data.prepare import prepare
from sessionrec.data.synthetic import generate_shop
from sessionrec.evaluation.protocol import evaluate
from sessionrec.models.base import Recommender
from sessionrec.models.registry import create_model

CUTOFFS = (5, 10, 20)
CATALOG_FILE = "catalog.csv"
MODELS_FOLDER = "models"
CATALOG_COLUMNS = ("item_id", "name", "category", "intent", "price", "available", "popularity_rank")
"""What the service reads from the demo catalog: names and prices for the page, categories
and availability for the rules, the latent popularity for fallbacks and the shop's order."""


def default_demo_dir() -> Path:
    """Where the demo keeps its models and catalog: ``$SESSIONREC_DEMO_DIR``, else the user's
    cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) + ``sessionrec/demo``."""
    override = os.environ.get("SESSIONREC_DEMO_DIR")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sessionrec" / "demo"


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: the trained models, every model's test metrics, the catalog."""

    model: Recommender
    """The main model (``model_name``)."""
    metrics: dict[str, dict[str, Any]]
    models: dict[str, Recommender] = field(default_factory=dict)
    """The served models by name: ``model_name`` then ``ab_model`` (no baseline)."""
    catalog: pl.DataFrame | None = None
    folder: Path | None = None
    """The demo folder written by :func:`save_demo`, when ``output`` was given."""


def run_demo(
    n_events: int = 200_000,
    seed: int = 0,
    model_name: str = "sr",
    output: Path | None = None,
    out: TextIO | None = None,
    ab_model: str | None = "vsknn",
) -> DemoResult:
    """Run the demo, writing a readable report to ``out``.

    Trains ``pop`` (the baseline), ``model_name`` and ``ab_model`` (the second A/B arm; None
    for none). With ``output``, saves the served models and the catalog there
    (:func:`save_demo`).
    """
    write = (out or sys.stdout).write
    started = time.perf_counter()
    shop = generate_shop(n_events=n_events, seed=seed)
    # A visitor log, as a shop would export it: the pipeline cuts the sessions itself.
    clicks = shop.clicks.drop("session_id")
    data = prepare(clicks, gap=1800.0, test_days=1.0, valid_days=None)
    summary = data.summary()
    write(
        f"synthetic shop: {shop.catalog.height} products, {n_events:,} clicks by "
        f"{clicks['user_id'].n_unique():,} visitors\n"
        f"prepared: {summary['train_full_sessions']:,} training sessions, "
        f"{summary['test_sessions']:,} test sessions (last day), "
        f"{summary['test_cases']:,} test cases, {summary['items']:,} items\n\n"
    )

    served = list(dict.fromkeys([model_name] + ([ab_model] if ab_model else [])))
    rows = []
    models: dict[str, Recommender] = {}
    for name in dict.fromkeys(["pop", *served]):
        model = create_model(name)
        fit_started = time.perf_counter()
        model.fit(data.train_full)
        fit_seconds = time.perf_counter() - fit_started
        result = evaluate(model, data.test, protocol="next", cutoffs=CUTOFFS)
        metrics = result.metrics(item_counts=data.train_full.item_counts())
        rows.append((name, metrics, fit_seconds, result.predict_seconds))
        models[name] = model

    write("next-item accuracy on the last day (full ranking, pessimistic ties):\n")
    write(f"  {'model':<10}{'HR@20':>8}{'MRR@20':>8}{'NDCG@10':>9}{'cover@20':>10}{'fit s':>8}\n")
    for name, metrics, fit_seconds, _ in rows:
        write(
            f"  {name:<10}{metrics['hr@20']:>8.2f}{metrics['mrr@20']:>8.2f}"
            f"{metrics['ndcg@10']:>9.2f}{metrics['coverage@20']:>10.3f}{fit_seconds:>8.2f}\n"
        )

    model = models[model_name]
    session = shop.demo_session()
    catalog = shop.catalog.select("item_id", "name", "category")
    names = dict(zip(catalog["item_id"].to_list(), catalog["name"].to_list(), strict=True))
    categories = dict(zip(catalog["item_id"].to_list(), catalog["category"].to_list(), strict=True))
    write(f"\nA visitor clicks: {' -> '.join(names[i] for i in session)}\n")
    (recs,) = model.recommend([session], k=10, exclude_seen=True)
    write(f"{model_name} recommends:\n")
    for rank, (item, score) in enumerate(recs, 1):
        write(f"  {rank:>2}. {names[item]:<40} {categories[item]:<20} {score:.4g}\n")
    if not recs:
        write("  (nothing: the model has no evidence for this session)\n")

    metrics_by_name = {name: metrics for name, metrics, _, _ in rows}
    folder = None
    if output is not None:
        folder = save_demo(
            output,
            {name: models[name] for name in served},
            shop.catalog,
            metrics={name: metrics_by_name[name] for name in served},
        )
        write(f"\nmodels {', '.join(served)} and the catalog saved to {folder}\n")
    write(f"\ndone in {time.perf_counter() - started:.1f}s\n")
    return DemoResult(
        model=model,
        metrics=metrics_by_name,
        models={name: models[name] for name in served},
        catalog=shop.catalog,
        folder=folder,
    )


def save_demo(
    folder: str | Path,
    models: dict[str, Recommender],
    catalog: pl.DataFrame,
    metrics: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write ``folder/models/<name>/`` for each model and ``folder/catalog.csv``, atomically.

    Each model folder and the catalog file is replaced in one rename, so a service already
    serving this folder (a second ``sessionrec demo``) hot-reloads complete models only.
    """
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"demo folder {root} exists and is not a folder")
    for name, model in models.items():
        model.save(root / MODELS_FOLDER / name, metrics=(metrics or {}).get(name))
    missing = [c for c in CATALOG_COLUMNS if c not in catalog.columns]
    if missing:
        raise ConfigError(f"the demo catalog lacks the columns {missing}")
    with atomic_file(root / CATALOG_FILE) as tmp:
        catalog.select(CATALOG_COLUMNS).write_csv(tmp)
    return root


def demo_config(
    folder: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    variants: Sequence[str] | None = None,
) -> Any:
    """The :class:`~sessionrec.serve.config.ServeConfig` serving a demo folder: the models
    ``variants`` (default: every model under ``models/``, by name) as equal-weight A/B
    variants named after them, with the catalog."""
    from sessionrec.serve.config import ServeConfig, VariantSpec

    root = Path(folder)
    catalog = root / CATALOG_FILE
    models = root / MODELS_FOLDER
    if variants is None:
        found = models.iterdir() if models.is_dir() else iter(())
        variants = sorted(p.name for p in found if p.is_dir() and not p.name.startswith("."))
    if not variants or not catalog.is_file():
        raise ConfigError(f"{root} is not a demo folder: run `sessionrec demo --no-serve` first")
    model_dirs = [models / name for name in variants]
    config = ServeConfig(
        variants=tuple(VariantSpec(p.name, str(p)) for p in model_dirs),
        host=host,
        port=port,
        catalog=str(catalog),
    )
    config.check_files()
    return config


def check_port_free(host: str, port: int) -> None:
    """Fail with the option to change before the models load, not in uvicorn's log."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): pass --port or --host"
        ) from None


def serve_demo(
    folder: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    variants: Sequence[str] | None = None,
    out: TextIO | None = None,
) -> None:
    """Serve a demo folder until interrupted, announcing the storefront's URL on ``out``."""
    from sessionrec.serve import require_serve_extra

    require_serve_extra()
    import uvicorn

    from sessionrec.serve.app import create_app

    config = demo_config(folder, host, port, variants)
    check_port_free(host, port)
    shown = f"[{host}]" if ":" in host else host
    variants = ", ".join(v.name for v in config.variants)
    write = (out or sys.stdout).write
    write(
        f"\nserving {variants} (A/B) on http://{shown}:{port}\n"
        f"open the demo shop: http://{shown}:{port}/demo   (Ctrl-C stops)\n"
    )
    (out or sys.stdout).flush()
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def category_share(recs: list[tuple[object, float]], catalog: pl.DataFrame, intent: str) -> float:
    """Share of recommended items whose catalog intent is ``intent`` (used by tests)."""
    if not recs:
        return 0.0
    lookup = dict(zip(catalog["item_id"].to_list(), catalog["intent"].to_list(), strict=True))
    return sum(lookup.get(item) == intent for item, _ in recs) / len(recs)
