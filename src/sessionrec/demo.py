"""``sessionrec demo``: the whole loop on a synthetic shop, in a few seconds.

Generate a shop (a catalog of named products and a visitor click log), run the real data
pipeline on the log (cut sessions at 30 minutes of inactivity, drop repeats and rare items,
hold out the last day), train a model, evaluate it against the popularity baseline with full
ranking, and show what it recommends after running shoes -> sports shorts -> fitness tracker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from sessionrec.data.prepare import prepare
from sessionrec.data.synthetic import generate_shop
from sessionrec.evaluation.protocol import evaluate
from sessionrec.models.base import Recommender
from sessionrec.models.registry import create_model

CUTOFFS = (5, 10, 20)


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: the trained model and every model's test metrics."""

    model: Recommender
    metrics: dict[str, dict[str, Any]]


def run_demo(
    n_events: int = 200_000,
    seed: int = 0,
    model_name: str = "sr",
    output: Path | None = None,
    out: TextIO | None = None,
) -> DemoResult:
    """Run the demo, writing a readable report to ``out``."""
    import sys

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

    rows = []
    models: dict[str, Recommender] = {}
    for name in dict.fromkeys(["pop", model_name]):
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

    if output is not None:
        path = model.save(output, metrics={k: v for k, v in rows[-1][1].items()})
        write(f"\nmodel saved to {path}\n")
    write(f"\ndone in {time.perf_counter() - started:.1f}s\n")
    return DemoResult(model=model, metrics={name: metrics for name, metrics, _, _ in rows})


def category_share(recs: list[tuple[object, float]], catalog: pl.DataFrame, intent: str) -> float:
    """Share of recommended items whose catalog intent is ``intent`` (used by tests)."""
    if not recs:
        return 0.0
    lookup = dict(zip(catalog["item_id"].to_list(), catalog["intent"].to_list(), strict=True))
    return sum(lookup.get(item) == intent for item, _ in recs) / len(recs)
