"""What live learning costs: one index update, and memory after a million live sessions.

Usage (single-threaded)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_live_update \\
        [--parts cost,memory] [--model vsknn] [--sessions 1000000] [--max-sessions 250000] \\
        [--new-items 20000] [--json-out FILE]

Both parts fit the model (default hyperparameters) on Diginetica's training sessions (the
SR-GNN split in ``shared/data``), each in a fresh process so that its memory is its own.

- ``cost``: the test sessions, in order, appended with
  :meth:`~sessionrec.models.base.Recommender.updated` in batches of 1, 10, 100 and 1,000
  sessions (what the service's learner does every ``--live-interval`` with the sessions
  that finished meanwhile), and the business rules rebuilt for the grown vocabulary as
  the service does; per batch size the median and p99 seconds of one update and the
  milliseconds per session. Also the store's side, per finished session: the memory
  store's hand-over (``finish``) and the feed read.
- ``memory``: ``--sessions`` live sessions appended in batches of 10,000 with
  ``max_sessions = --max-sessions`` (the service's ``--live-max-sessions``): sessions drawn
  from the test sessions, each click replaced with probability 0.05 by one of
  ``--new-items`` products the model has never seen (a shop adding products). Reported:
  resident memory (RSS) after the fit and after every 100,000 sessions, its peak, the
  sessions in the index and the items known.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA, child_done, load_average, run_child

BATCH_SIZES = (1, 10, 100, 1000)
MEMORY_BATCH = 10_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fitted(model_name: str) -> tuple[Any, Any]:
    from sessionrec.data.formats import read_sessions_txt
    from sessionrec.models.registry import create_model

    folder = SHARED_DATA / BENCHMARK_FOLDERS["diginetica"]
    train = read_sessions_txt(folder / "train_sessions.txt")
    test = read_sessions_txt(folder / "test_sessions.txt")
    return create_model(model_name).fit(train), test


def part_cost(model_name: str) -> dict[str, Any]:
    import numpy as np

    from sessionrec.serve.rules import ItemRules

    model, test = fitted(model_name)
    rules = ItemRules(model.vocab_, popularity=model.training_counts().astype(np.float64))
    results: dict[str, Any] = {}
    model = model.updated(test.subset(np.arange(1)))  # loads the compiled kernels: not timed
    start = 1
    for size in BATCH_SIZES:
        repeats = 30 if size <= 100 else 10
        update_s, with_rules_s = [], []
        for _ in range(repeats):
            batch = test.subset(np.arange(start, start + size) % test.n_sessions)
            start += size
            began = time.perf_counter()
            grown = model.updated(batch)
            updated = time.perf_counter()
            counts = grown.training_counts().astype(np.float64)
            rules = ItemRules(grown.vocab_, popularity=counts, previous=rules)
            update_s.append(updated - began)
            with_rules_s.append(time.perf_counter() - began)
            model = grown
        results[str(size)] = {
            "updates": repeats,
            "update_median_ms": round(1000 * float(np.median(update_s)), 2),
            "update_p99_ms": round(1000 * float(np.percentile(update_s, 99)), 2),
            "with_rules_median_ms": round(1000 * float(np.median(with_rules_s)), 2),
            "with_rules_p99_ms": round(1000 * float(np.percentile(with_rules_s, 99)), 2),
            "ms_per_session": round(1000 * float(np.median(with_rules_s)) / size, 3),
        }
    results["store"] = asyncio.run(store_cost())
    results["index_sessions"] = int(model.index_.sess_age.size)
    return results


async def store_cost(sessions: int = 20_000) -> dict[str, float]:
    """Microseconds per finished session on the memory store: hand-over and feed read."""
    from sessionrec.serve.store import Event, MemoryStore

    store = MemoryStore(max_sessions=sessions, live_feed=sessions)
    for n in range(sessions):
        for item in range(4):
            await store.append(f"s{n}", Event(str(item)))
    began = time.perf_counter()
    for n in range(sessions):
        await store.finish(f"s{n}")
    handed = time.perf_counter()
    read, position = 0, 0
    while True:
        entries = await store.read_feed(position, 5_000)
        if not entries:
            break
        read += len(entries)
        position = entries[-1].sequence
    done = time.perf_counter()
    assert read == sessions
    return {
        "finish_us_per_session": round(1e6 * (handed - began) / sessions, 2),
        "read_us_per_session": round(1e6 * (done - handed) / sessions, 2),
    }


def part_memory(model_name: str, sessions: int, max_sessions: int, new_items: int) -> dict:
    import numpy as np

    from sessionrec.data.sessions import ItemVocab, SessionData
    from sessionrec.serve.rules import ItemRules

    model, test = fitted(model_name)
    rules = ItemRules(model.vocab_, popularity=model.training_counts().astype(np.float64))
    rng = np.random.default_rng(0)
    pool = np.arange(10**7, 10**7 + new_items, dtype=np.int64)  # ids the model never saw
    ids = test.vocab.ids
    trace = [
        {"sessions": 0, "rss_mb": round(rss_mb(), 1), "index_sessions": model.index_.sess_age.size}
    ]
    fitted_rss = rss_mb()
    peak = fitted_rss
    done = 0
    began = time.perf_counter()
    while done < sessions:
        size = min(MEMORY_BATCH, sessions - done)
        picked = test.subset(rng.integers(0, test.n_sessions, size))
        clicks = ids[picked.items].astype(np.int64)
        fresh = rng.random(clicks.size) < 0.05
        clicks[fresh] = rng.choice(pool, int(fresh.sum()))
        vocab = ItemVocab(np.unique(clicks))
        batch = SessionData(offsets=picked.offsets, items=vocab.encode(clicks), vocab=vocab)
        model = model.updated(batch, max_sessions)
        counts = model.training_counts().astype(np.float64)
        rules = ItemRules(model.vocab_, popularity=counts, previous=rules)
        done += size
        peak = max(peak, rss_mb())
        if done % 100_000 == 0 or done == sessions:
            trace.append(
                {
                    "sessions": done,
                    "rss_mb": round(rss_mb(), 1),
                    "index_sessions": int(model.index_.sess_age.size),
                    "items": model.n_items,
                }
            )
    return {
        "sessions": sessions,
        "max_sessions": max_sessions,
        "new_item_pool": new_items,
        "fitted_rss_mb": round(fitted_rss, 1),
        "peak_rss_mb": round(peak, 1),
        "final_rss_mb": round(rss_mb(), 1),
        "seconds": round(time.perf_counter() - began, 1),
        "evicted_sessions": int(model.evicted_sessions_),
        "trace": trace,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="cost,memory")
    parser.add_argument("--model", default="vsknn")
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--max-sessions", type=int, default=250_000)
    parser.add_argument("--new-items", type=int, default=20_000)
    parser.add_argument("--child", choices=["cost", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    for variable in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    if args.child == "cost":
        child_done(part_cost(args.model))
        return 0
    if args.child == "memory":
        child_done(part_memory(args.model, args.sessions, args.max_sessions, args.new_items))
        return 0
    results: dict[str, Any] = {"model": args.model, "load_before": load_average()}
    for part in args.parts.split(","):
        command = [sys.executable, "-m", "benchmarks.speed.bench_live_update", "--child", part]
        command += ["--model", args.model, "--sessions", str(args.sessions)]
        command += ["--max-sessions", str(args.max_sessions), "--new-items", str(args.new_items)]
        results[part] = run_child(command)
        print(json.dumps({part: results[part]}), flush=True)
    results["load_after"] = load_average()
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
