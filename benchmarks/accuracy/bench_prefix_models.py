"""NARM, STAMP and SR-GNN on a benchmark folder: accuracy with validation-based epoch selection.

The benchmark protocol of ``shared/data/README.md``: train on the first 90% of
``train_sessions.txt`` (every prefix a training case), keep the epoch with the best validation
HR@20 on the last 10%, then rank every test case's target against the whole vocabulary
(:func:`sessionrec.evaluation.protocol.evaluate`, pessimistic ties). Prints HR@20/MRR@20 in
percent, seconds per training epoch and training cases (clicks with a next click) per second,
one JSON line per run. Commands (pin the threads: on a shared 2-core machine it matters)::

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_prefix_models \
        --model narm --dataset diginetica --epochs 3 --threads 1
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_prefix_models \
        --model stamp --dataset yoochoose-1_64 --epochs 3 --threads 1
    # time per epoch on the most recent 10,000 training sessions, epoch selection on the
    # first 2,000 validation sessions (the test set is always complete)
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_prefix_models \
        --model srgnn --dataset diginetica --epochs 1 --threads 1 \
        --train-sessions 10000 --valid-sessions 2000
    # any hyperparameter: --param key=value (e.g. --param batch_size=100 --param device=cuda)
    # --refit: then train on the whole training file for the selected epochs and test that
    # too; --refit-epochs N: only that, N chosen by an earlier validation run
    # (benchmarks/accuracy/protocol_refit.py)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.accuracy.protocol_refit import add_refit_arguments, refit
from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA, read_params_file
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate
from sessionrec.models.neural.prefix import PrefixRecommender
from sessionrec.models.registry import create_model, parse_params

MODELS = ("narm", "stamp", "srgnn")


def run(args: argparse.Namespace) -> None:
    """The run of ``args``: one JSON line, and one more for the refit (``--refit``)."""
    torch.set_num_threads(args.threads)
    folder = BenchmarkFolder(SHARED_DATA / BENCHMARK_FOLDERS[args.dataset])
    full = folder.train()
    test = folder.test()
    train, valid = last_fraction_split(full, 0.1)
    if args.train_sessions:
        # The most recent sessions of the training part: a smaller, equally recent sample.
        n = train.n_sessions
        train = train.subset(np.arange(max(0, n - args.train_sessions), n))
    if args.valid_sessions:
        # The first sessions of the validation part: cheaper epoch selection on a busy CPU.
        valid = valid.subset(np.arange(min(args.valid_sessions, valid.n_sessions)))
    params = {
        **(read_params_file(args.params_file) if args.params_file else {}),
        **parse_params(args.model, args.param),
        "n_epochs": args.epochs,
        "device": args.device,
        "patience": args.patience,
    }

    def create(p: dict[str, Any]) -> PrefixRecommender:
        model = create_model(args.model, p)
        assert isinstance(model, PrefixRecommender)
        return model

    head = {"model": args.model, "dataset": args.dataset, "threads": args.threads}
    if args.refit_epochs:
        print(json.dumps(head | {"refit": refit(create, params, full, test, args.refit_epochs)}))
        return
    model = create(params)
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(train, valid)
    fit_seconds = time.perf_counter() - started
    fit_cpu_seconds = time.process_time() - cpu_started
    result = evaluate(model, test, protocol="benchmark", cutoffs=(20,))
    scores = result.metrics()
    summary = {
        **head,
        "train_sessions": train.n_sessions,
        "valid_sessions": valid.n_sessions,
        "params": model.get_params(),
        "epochs_run": len(model.epoch_losses_),
        "best_epoch": model.best_epoch_,
        "valid_hr@20_per_epoch": [round(float(v), 2) for v in model.epoch_valid_],
        "loss_per_epoch": [round(float(v), 4) for v in model.epoch_losses_],
        "seconds_per_epoch": [round(float(s), 1) for s in model.epoch_seconds_],
        "train_cases_per_second": [
            round(float(n / s))
            for n, s in zip(model.epoch_examples_, model.epoch_seconds_, strict=True)
        ],
        "truncated_prefixes": model.n_truncated_,
        "fit_seconds_with_validation": round(fit_seconds, 1),
        "fit_cpu_seconds_with_validation": round(fit_cpu_seconds, 1),
        "test_cases": result.n_cases,
        "hr@20": round(scores["hr@20"], 2),
        "mrr@20": round(scores["mrr@20"], 2),
        "predict_seconds": round(result.predict_seconds, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(summary), flush=True)
    if args.refit:  # a line of its own: the selection's figures are out if the refit dies
        print(json.dumps(head | {"refit": refit(create, params, full, test, model.best_epoch_)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--dataset", choices=sorted(BENCHMARK_FOLDERS), default="diginetica")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-sessions", type=int, default=0, help="most recent N only")
    parser.add_argument("--valid-sessions", type=int, default=0, help="first N only")
    parser.add_argument("--param", action="append", default=[], help="key=value")
    parser.add_argument(
        "--params-file",
        type=Path,
        help="JSON hyperparameters (e.g. benchmarks/params/*.json); --param overrides them",
    )
    add_refit_arguments(parser)
    args = parser.parse_args()
    if args.train_sessions and (args.refit or args.refit_epochs):
        parser.error("a refit trains on the whole training file: drop --train-sessions")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(args)


if __name__ == "__main__":
    main()
