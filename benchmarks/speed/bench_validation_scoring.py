"""Time of one validation pass (score and rank every validation case) of NARM and SASRec.

The epoch-selection cost of the neural models on the CPU: the 11,282 next-click cases of the
first 3,000 sessions of Diginetica's validation split (the last 10% of
``train_sessions.txt``; all of it has 69,526 cases) scored against all 43,097 items and
ranked. The models are trained one epoch on the most recent 3,000 training
sessions, then every item but one in 500 is marked as having training clicks, so the
scoring runs as for a model of the whole file (no empty sessions, few unseen items). Prints
one JSON line per model: the median of ``--repeats`` passes and the metric value, which
must not change between code versions.

``--src`` runs another checkout's package (an A/B against an earlier commit, in the same
run, interleaved)::

    git worktree add /tmp/before f1fd25a
    for i in 1 2 3; do for src in /tmp/before/src src; do
      OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_validation_scoring --src $src
    done; done
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

from benchmarks.common import SHARED_DATA, as_whole_file_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="the src folder of the checkout to time")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, str(args.src.resolve()))
    import numpy as np
    import torch

    from sessionrec.data.split import last_fraction_split
    from sessionrec.evaluation.protocol import BenchmarkFolder
    from sessionrec.models.neural.common import ValidationCases
    from sessionrec.models.registry import create_model

    torch.set_num_threads(1)
    train, valid = last_fraction_split(
        BenchmarkFolder(SHARED_DATA / "diginetica/srgnn").train(), 0.1
    )
    train = train.subset(np.arange(train.n_sessions - 3000, train.n_sessions))
    valid = valid.subset(np.arange(3000))
    cases = ValidationCases(valid)
    for name in ("narm", "sasrec"):
        model = as_whole_file_model(create_model(name, {"n_epochs": 1, "device": "cpu"}).fit(train))
        validate = (
            partial(model._validation_score, cases)
            if name == "sasrec"
            else model._validator(valid)[0]
        )
        seconds, value = [], 0.0
        for _ in range(args.repeats):
            started = time.perf_counter()
            value = validate()
            seconds.append(time.perf_counter() - started)
        print(
            json.dumps(
                {
                    "model": name,
                    "src": str(args.src or "this checkout"),
                    "cases": cases.n,
                    "median_seconds": round(statistics.median(seconds), 2),
                    "metric": round(value, 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
