"""Per-request latency of NARM, STAMP, SR-GNN and SASRec: one live session, top 20, one thread.

What the service pays per recommendation for the attention and graph models on Diginetica's
catalog (43,097 items): ``measure_latency`` (the library's timing, the same as
``sessionrec evaluate --latency``) calls ``model.recommend([session], k=20)`` for 500 test
prefixes drawn with a fixed seed, given as external ids one call at a time. The models are
trained one epoch on the most recent 3,000 training sessions with their default
hyperparameters, then every item but one in 500 is marked as having training clicks, so the
scoring runs as for a model of the whole file (few unseen items). The dense product's cost
depends only on the sizes; the int8 search (``quantized_serving``) also rescores every item
its bounds cannot rule out, which depends on how peaked the scores are, so the median number
of those candidates is printed too. Prints one JSON line per model: p50 / p90 / p99
milliseconds, how many of 300 served top-20 lists (first five clicks of a test session)
equal the dense product's, the median candidate count, and the top 5 of one session, which
must not change between code versions.

``--src`` runs another checkout's package (an A/B against an earlier commit, in the same
run, interleaved)::

    git worktree add /tmp/before 04979b4
    for i in 1 2 3; do for src in /tmp/before/src src; do
      OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_neural_serving --src $src
    done; done
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.common import SHARED_DATA, as_whole_file_model

MODELS = ("narm", "stamp", "srgnn", "sasrec")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="the src folder of the checkout to time")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, str(args.src.resolve()))
    import numpy as np
    import torch

    from sessionrec.evaluation.protocol import BenchmarkFolder, measure_latency
    from sessionrec.models.base import Recommender
    from sessionrec.models.registry import create_model

    torch.set_num_threads(1)
    folder = BenchmarkFolder(SHARED_DATA / "diginetica/srgnn")
    train, test = folder.train(), folder.test()
    recent = train.subset(np.arange(train.n_sessions - 3000, train.n_sessions))
    for name in args.models.split(","):
        model = create_model(name, {"n_epochs": 1, "device": "cpu"}).fit(recent)
        model = as_whole_file_model(model)
        millis = measure_latency(model, test, n_calls=args.calls, k=20)
        answers = model.recommend([test.vocab.decode(test.session(0))], k=20)
        # The served lists against the dense product's, one session per call as served.
        identical, candidates = 0, []
        for session in range(300):
            batch = model.encode_sessions([test.vocab.decode(test.session(session))[:5]])
            served = model.top_k(batch, 20)[0][0]
            identical += served.tolist() == Recommender.top_k(model, batch, 20)[0][0].tolist()
            if hasattr(model, "_quantized_table"):  # checkouts before the int8 serving lack it
                table = model._quantized_table()[0]
                for state in model._session_states(batch)[1]:
                    found = table.candidates(state.float().numpy(), 20)
                    candidates.append(model.n_items if found is None else found.size)
        p50, p90, p99 = np.percentile(millis, [50, 90, 99])
        print(
            json.dumps(
                {
                    "model": name,
                    "src": str(args.src or "this checkout"),
                    "n_items": model.n_items,
                    "calls": args.calls,
                    "p50_ms": round(float(p50), 3),
                    "p90_ms": round(float(p90), 3),
                    "p99_ms": round(float(p99), 3),
                    "identical_to_dense": f"{identical} of 300",
                    "median_candidates": float(np.median(candidates)) if candidates else None,
                    "first_answer": [str(scored.item_id) for scored in answers[0][:5]],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
