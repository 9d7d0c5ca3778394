"""What explanations cost per request: ``recommend(k)`` alone vs. plus ``explain`` of its k items.

Usage (one thread, as in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python \
        -m benchmarks.speed.bench_explain [--data ../shared/data] [--dataset diginetica] \
        [--models sr,itemknn,vsknn,vstan,vmisknn] [--sessions 500] [--k 20] [--ablation]

Fits each model on the training file of a public benchmark split, then for the first
``--sessions`` test-session prefixes (the last ``min(len, 10)`` clicks kept, as a live session
would look) times ``recommend`` and ``explain`` one session at a time, the service's pattern.
``--ablation`` adds, for each model, the base class's model-agnostic default (leave-one-out
ablation) on the same items: what the exact overrides save. Prints a Markdown table of
median and p95 milliseconds; the explain column is the added cost of ``explain=true``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA
from sessionrec.evaluation.protocol import BenchmarkFolder
from sessionrec.models.base import Recommender
from sessionrec.models.registry import create_model


def prefixes(folder: BenchmarkFolder, n: int) -> list[list[int]]:
    """The first ``n`` test prefixes (every session cut before its last click, at most 10)."""
    test = folder.test()
    out = []
    for s in range(test.n_sessions):
        items = test.vocab.decode(test.session(s))
        if len(items) >= 2:
            out.append(items[:-1][-10:])
        if len(out) == n:
            break
    return out


def timed(call: object, *args: object, **kwargs: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = call(*args, **kwargs)  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--dataset", default="diginetica", choices=sorted(BENCHMARK_FOLDERS))
    parser.add_argument("--models", default="sr,itemknn,vsknn,vstan,vmisknn")
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--ablation", action="store_true")
    args = parser.parse_args()

    folder = BenchmarkFolder(args.data / BENCHMARK_FOLDERS[args.dataset])
    train = folder.train()
    sessions = prefixes(folder, args.sessions)
    print(f"{args.dataset}: {train.n_sessions} training sessions, {len(sessions)} live sessions")
    print("| model | explainer | recommend ms p50 / p95 | explain ms p50 / p95 | explain / rec |")
    print("|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        model = create_model(name).fit(train)
        explainers = [("exact", model.explain)]
        if args.ablation:

            def ablation(session: list[int], items: list[int], m: Recommender = model) -> object:
                encoded = m.encode_sessions([session]).session(0).astype(np.int64)
                targets = m.vocab_.encode(items).astype(np.int64)
                return Recommender._explain(m, encoded, targets, 3)

            explainers.append(("ablation", ablation))
        for label, explain in explainers:
            rec_ms, exp_ms = [], []
            for warm in (True, False):  # the first pass compiles Numba kernels and warms caches
                for session in sessions[:20] if warm else sessions:
                    took, recs = timed(model.recommend, [session], args.k)
                    items = [r.item_id for r in recs[0]]  # type: ignore[index]
                    spent, _ = timed(explain, session, items)
                    if not warm:
                        rec_ms.append(took)
                        exp_ms.append(spent)
            r50, r95 = np.percentile(rec_ms, [50, 95])
            e50, e95 = np.percentile(exp_ms, [50, 95])
            print(
                f"| {name} | {label} | {r50:.3f} / {r95:.3f} | {e50:.3f} / {e95:.3f} | "
                f"{e50 / r50:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
