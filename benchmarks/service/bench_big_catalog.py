"""The service with a catalog of a million items: memory and single-session latency.

Usage (the figures of BENCHMARKS.md; one BLAS/numba/torch thread everywhere)::

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.service.bench_big_catalog \\
        [--items 1000000,10000] [--clicks 3000000] [--gru-clicks 500000] \\
        [--models vmisknn,gru4rec] [--duration 15] [--json /tmp/big.json]

What it does, for each catalog size of ``--items`` (the small one is the yardstick the big one
is quoted against, measured in the same run on the same machine):

1. Builds a synthetic click log with numpy: ``--clicks`` clicks in sessions of 2-8 clicks.
   Item popularity follows a Zipf law (exponent 1.0); a session wanders around a neighbourhood
   of item ids (so neighbours and sequences exist to learn), and every item of the catalog is
   clicked at least once, so the model's vocabulary is the whole catalog.
2. Fits ``vmisknn`` (defaults) on all the clicks and ``gru4rec`` (cross-entropy with 2048
   sampled negatives, hidden size 64, one epoch) on the first sessions up to
   ``--gru-clicks`` clicks, with the whole catalog as its vocabulary: serving cost depends on
   the size of the item table (``[n_items, 64]``), not on how long it was trained, and one
   CPU epoch over 3M clicks takes longer than the rest of the benchmark. The result is a
   latency figure, not an accuracy one (items never trained keep their random vectors).
3. Serves each model with ``sessionrec serve`` (one worker, memory store, as its own
   process, started by ``load.start_service``) and reports the service's resident
   memory (RSS of the process tree after warm-up and after the load) and single-session
   latency: one keep-alive connection sends ``POST /v1/sessions/{id}/events?k=20`` as soon
   as the previous answer came back (held-out sessions replayed click by click, the client
   of ``bench_service``), so every request is scored alone, without queueing.

Prints Markdown rows: catalog items, model, fit seconds (wall and CPU), model folder MB,
service RSS MB, requests, req/s, p50/p90/p99 ms, errors, the service's CPU per request and
the machine's load average (a shared machine: compare rows of one run, as ratios).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

THREADS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}
os.environ.update(THREADS)  # before numpy, numba or torch load

import numpy as np  # noqa: E402

from benchmarks.service import load  # noqa: E402

MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "vmisknn": {},
    "gru4rec": {
        "loss": "cross-entropy",
        "n_sample": 2048,
        "hidden_size": 64,
        "batch_size": 128,
        "n_epochs": 1,
        "device": "cpu",
    },
}
TEST_SESSIONS = 3000


# ------------------------------------------------------------------- data
def make_sessions(n_items: int, n_clicks: int, seed: int = 0) -> list[np.ndarray]:
    """Sessions of item indices ``0..n_items-1``, every item clicked at least once.

    Popularity: item ``i`` (ranked by a random permutation) is drawn with probability
    proportional to ``1 / (rank + 1)``. A session starts on a popular item and then mostly
    clicks items whose ids lie near its start (a "neighbourhood" of 200 ids), sometimes a
    popular item anywhere: structure that kNN and GRU4Rec can both pick up.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1, dtype=np.float64)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    by_rank = rng.permutation(n_items)

    def popular(size: int) -> np.ndarray:
        rank = np.minimum(np.searchsorted(cdf, rng.random(size)), n_items - 1)
        return by_rank[rank]

    lengths = rng.integers(2, 9, size=n_clicks // 5 + 1)
    lengths = lengths[np.cumsum(lengths) <= n_clicks]
    total = int(lengths.sum())
    session_of = np.repeat(np.arange(lengths.size), lengths)
    starts = popular(lengths.size)
    near = (starts[session_of] + rng.integers(-100, 101, size=total)) % n_items
    items = np.where(rng.random(total) < 0.8, near, popular(total))
    # Cover the whole catalog: the items nobody clicked replace random clicks (far fewer
    # than the clicks when ``n_clicks`` is a few times ``n_items``).
    unseen = np.setdiff1d(np.arange(n_items), items, assume_unique=False)
    if unseen.size:
        if unseen.size > total:
            raise SystemExit(f"--clicks {n_clicks} cannot cover {n_items} items")
        items[rng.choice(total, size=unseen.size, replace=False)] = rng.permutation(unseen)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [items[bounds[s] : bounds[s + 1]] for s in range(lengths.size)]


def write_split(sessions: list[np.ndarray], folder: Path) -> tuple[Path, Path]:
    """``train_sessions.txt`` and ``test_sessions.txt`` (the last sessions), ids = index + 1."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train_sessions.txt", folder / "test_sessions.txt"
    split = len(sessions) - TEST_SESSIONS
    for path, part in zip(paths, (sessions[:split], sessions[split:]), strict=True):
        with path.open("w") as out:
            for session in part:
                out.write(" ".join(map(str, (session + 1).tolist())) + "\n")
    return paths


def train_data(sessions: list[np.ndarray], n_items: int) -> Any:
    from sessionrec.data.sessions import ItemVocab, SessionData

    train = sessions[:-TEST_SESSIONS]
    lengths = np.array([s.size for s in train], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    # vocabulary in id order: internal index = id - 1
    return SessionData(offsets, np.concatenate(train), ItemVocab(np.arange(1, n_items + 1)))


# ---------------------------------------------------------------- process
def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def serve_and_measure(
    model_dir: Path, train_file: Path, test_file: Path, duration: float, k: int
) -> dict[str, Any]:
    service, port = load.start_service(model_dir, train_file, "memory", 1)
    try:
        # warm-up: numba kernels, the int8 table (built on first use), caches
        load.run_load("closed", port, test_file, connections=1, duration=3.0, k=k)
        rss_ready = load.tree_rss_mb(service.process.pid)
        result = load.measure(
            service,
            load.run_load,
            "closed",
            port,
            test_file,
            connections=1,
            duration=duration,
            k=k,
        )
        result["rss_mb"] = max(rss_ready, load.tree_rss_mb(service.process.pid))
        return result
    finally:
        service.stop()


# ------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="1000000,10000", help="catalog sizes, comma-separated")
    parser.add_argument("--clicks", type=int, default=3_000_000, help="clicks per catalog")
    parser.add_argument(
        "--gru-clicks", type=int, default=500_000, help="clicks GRU4Rec is trained on"
    )
    parser.add_argument("--models", default="vmisknn,gru4rec")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per model")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from sessionrec.models.registry import create_model

    rows: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-big-catalog-"))
    try:
        for n_items in [int(n) for n in args.items.split(",")]:
            started = time.perf_counter()
            sessions = make_sessions(n_items, args.clicks)
            data_dir = workdir / f"items-{n_items}"
            train_file, test_file = write_split(sessions, data_dir)
            train = train_data(sessions, n_items)
            del sessions
            print(
                f"{n_items} items: {train.n_sessions} sessions, {train.n_events} clicks "
                f"in {time.perf_counter() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
            for name in args.models.split(","):
                started, cpu_started = time.perf_counter(), time.process_time()
                data = train
                if name == "gru4rec":
                    n_sessions = int(np.searchsorted(train.offsets, args.gru_clicks, side="right"))
                    data = train.subset(np.arange(max(1, n_sessions - 1)))
                model = create_model(name, MODEL_PARAMS.get(name, {})).fit(data)
                fit_seconds = time.perf_counter() - started
                fit_cpu = time.process_time() - cpu_started
                model_dir = data_dir / name
                model.save(model_dir)
                del model
                print(
                    f"  {name}: fitted on {data.n_events} clicks in {fit_seconds:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
                result = serve_and_measure(model_dir, train_file, test_file, args.duration, args.k)
                row = {
                    "items": n_items,
                    "model": name,
                    "fit_s": fit_seconds,
                    "fit_cpu_s": fit_cpu,
                    "fit_clicks": data.n_events,
                    "model_mb": folder_mb(model_dir),
                    **result,
                }
                rows.append(row)
                print(_row(row), flush=True)
                if args.json:  # after every row: a long run that is cut short keeps its rows
                    args.json.write_text(json.dumps(rows, indent=2))
                shutil.rmtree(model_dir, ignore_errors=True)
        print()
        print(HEADER)
        for row in rows:
            print(_row(row))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


HEADER = (
    "| catalog items | model | fit clicks | fit s (CPU s) | model folder MB | service RSS MB "
    "| requests | req/s | p50 ms | p90 ms | p99 ms | errors | server CPU µs/req "
    "| machine load avg |\n"
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _row(row: dict[str, Any]) -> str:
    return (
        f"| {row['items']:,} | {row['model']} | {row['fit_clicks']:,} | "
        f"{row['fit_s']:.0f} ({row['fit_cpu_s']:.0f}) | {row['model_mb']:.0f} | "
        f"{row['rss_mb']:.0f} | {row['n']} | {row['achieved']:.0f} | {row['p50']:.2f} | "
        f"{row['p90']:.2f} | {row['p99']:.2f} | {row['errors']} | "
        f"{row.get('server_cpu_us', math.nan):.0f} | {row.get('loadavg', math.nan):.1f} |"
    )


if __name__ == "__main__":
    main()
