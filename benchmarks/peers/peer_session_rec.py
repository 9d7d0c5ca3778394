"""Run session-rec's V-SKNN or STAN on a benchmark split, for the side-by-side comparison.

session-rec (https://github.com/rn5l/session-rec, Ludewig, Latifi, Mauro & Jannach) is the
reference framework of the session-kNN papers. Its code is never copied or vendored here:
this script imports it from a local checkout and runs its own ``evaluation.evaluate_sessions``
loop with its ``accuracy.HitRate`` / ``accuracy.MRR`` metrics, on the same
``train_sessions.txt`` / ``test_sessions.txt`` our benchmark reads. It runs in a separate
virtual environment and does not import sessionrec.

Setup (outside the project)::

    git clone https://github.com/rn5l/session-rec /tmp/session-rec    # commit 5dcd583
    python3.11 -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install "numpy<2" "pandas<2.2" pympler pyyaml

Run (single-threaded)::

    OMP_NUM_THREADS=1 /tmp/peer-venv/bin/python -m benchmarks.peers.peer_session_rec \\
        --session-rec /tmp/session-rec --benchmark ../shared/data/diginetica/srgnn \\
        --model vsknn --params '{"k": 100, "sample_size": 500}'

It prints one JSON object: HR@20 / MRR@20 in percent, fit and evaluation seconds (wall
clock and CPU time of the process: the CPU time is the fairer figure on a shared machine).

How the split is handed to session-rec: the files have no timestamps, so every click gets
``Time = session number + position * 1e-6`` (training sessions first, then test sessions).
session-rec orders candidate sessions by their last ``Time``, which is then exactly the file
order our models use, and STAN's neighbour age ``t_now - t_n`` counts sessions: our
``lambda_snh`` (in sessions) is passed as ``lambda_snh / 86400`` (session-rec multiplies it
by the seconds of a day). Parameter names are ours (see sessionrec.models.knn) and are
translated below.

Known differences that remain (session-rec's behaviour, kept as is):

- its ``linear`` session weighting counts positions from the first click (items after the
  tenth click weigh 0) where ours counts back from the last click;
- it ranks with ``pandas.sort_values`` on scores where every item without evidence scores 0,
  so ties are broken arbitrarily rather than pessimistically (``--pessimistic`` ranks its
  ``predict_next`` scores with our protocol's rule instead, for a like-for-like accuracy
  comparison; timings should be taken without it, from session-rec's own loop);
- its ``MRR``/``HitRate`` count a target within the first 20 of that sorted list.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# session-rec's evaluation loop calls time.clock(), which Python 3.8 removed.
if not hasattr(time, "clock"):
    time.clock = time.process_time  # type: ignore[attr-defined]


def read_sessions(path: Path) -> list[list[int]]:
    with path.open() as handle:
        return [[int(x) for x in line.split()] for line in handle if line.strip()]


def frame(sessions: list[list[int]], first_id: int) -> Any:
    import pandas as pd

    rows = [
        (first_id + s, item, first_id + s + pos * 1e-6)
        for s, session in enumerate(sessions)
        for pos, item in enumerate(session)
    ]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def build(model: str, params: dict[str, Any]) -> Any:
    """The session-rec object for one of our model names and hyperparameters."""
    if model == "vsknn":
        from algorithms.knn.vsknn import VMContextKNN

        return VMContextKNN(
            k=params.get("k", 100),
            sample_size=params.get("sample_size", 500),
            sampling="recent",
            similarity=params.get("similarity", "vec"),
            weighting=params.get("weighting", "linear"),
            weighting_score=params.get("weighting_score", "same"),
            idf_weighting=params.get("idf_weighting", 0.0) or False,
        )
    if model == "stan":
        from algorithms.knn.stan import STAN

        return STAN(
            k=params.get("k", 100),
            sample_size=params.get("sample_size", 5000),
            sampling="recent",
            lambda_spw=params.get("lambda_spw", 1.02),
            lambda_snh=params.get("lambda_snh", 5000.0) / 86400.0,
            lambda_inh=params.get("lambda_inh", 2.05),
        )
    raise SystemExit(f"unknown model {model!r}: choose vsknn or stan")


def pessimistic_metrics(
    model: Any, test_sessions: list[list[int]], train: Any, first_id: int
) -> tuple[float, float]:
    """HR@20 and MRR@20 of session-rec's ``predict_next`` scores ranked like our protocol.

    Same cases as the benchmark protocol; a target scoring ``s`` ranks after every item
    scoring ``>= s`` (pessimistic ties); an unknown target is a miss.
    """
    import numpy as np

    items = train["ItemId"].unique()
    hits, reciprocal, cases = 0, 0.0, 0
    for number, session in enumerate(test_sessions):
        sid = first_id + number
        for i in range(len(session) - 1):
            scores = model.predict_next(sid, session[i], items, timestamp=sid + i * 1e-6)
            values = np.nan_to_num(scores.to_numpy())  # as session-rec's own loop does
            target = scores.index.get_indexer([session[i + 1]])[0]
            cases += 1
            if target < 0:
                continue
            rank = int(np.count_nonzero(values >= values[target]))
            if rank <= 20:
                hits += 1
                reciprocal += 1.0 / rank
    return hits / cases, reciprocal / cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session-rec", type=Path, required=True, help="session-rec checkout")
    parser.add_argument("--benchmark", type=Path, required=True, help="benchmark folder")
    parser.add_argument("--model", required=True, choices=["vsknn", "stan"])
    parser.add_argument("--params", default="{}", help="JSON object of our hyperparameters")
    parser.add_argument(
        "--every", type=int, default=1, help="evaluate every N-th test session only (quick runs)"
    )
    parser.add_argument(
        "--pessimistic",
        action="store_true",
        help="rank with our protocol (pessimistic ties) instead of session-rec's evaluation",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.session_rec.resolve()))
    from evaluation.evaluation import evaluate_sessions
    from evaluation.metrics.accuracy import MRR, HitRate

    train_sessions = read_sessions(args.benchmark / "train_sessions.txt")
    test_sessions = read_sessions(args.benchmark / "test_sessions.txt")[:: args.every]
    train = frame(train_sessions, 0)
    test = frame(test_sessions, len(train_sessions))
    params = json.loads(args.params)
    model = build(args.model, params)

    started, started_cpu = time.perf_counter(), time.process_time()
    model.fit(train)
    fit_seconds = time.perf_counter() - started
    fit_cpu = time.process_time() - started_cpu
    started, started_cpu = time.perf_counter(), time.process_time()
    if args.pessimistic:
        hr_value, mrr_value = pessimistic_metrics(model, test_sessions, train, len(train_sessions))
    else:
        hr, mrr = HitRate(20), MRR(20)
        evaluate_sessions(model, [hr, mrr], test, train)
        hr_value, mrr_value = hr.result()[1], mrr.result()[1]
    eval_seconds = time.perf_counter() - started
    eval_cpu = time.process_time() - started_cpu
    print(
        json.dumps(
            {
                "peer": "session-rec",
                "model": args.model,
                "params": params,
                "every": args.every,
                "n_cases": int(sum(len(s) - 1 for s in test_sessions)),
                "ranking": "pessimistic" if args.pessimistic else "session-rec",
                "hr@20": 100 * hr_value,
                "mrr@20": 100 * mrr_value,
                "fit_seconds": fit_seconds,
                "eval_seconds": eval_seconds,
                "fit_cpu_seconds": fit_cpu,
                "eval_cpu_seconds": eval_cpu,
            }
        )
    )


if __name__ == "__main__":
    main()
