"""SASRec on the benchmark protocol: epochs selected on validation only, test HR@20/MRR@20.

The training file's chronologically last 10% of sessions is the validation split (README of
the shared data); the model trains on the first 90%, keeps the epoch with the best
validation score (``selection_metric``, full ranking through :mod:`sessionrec.evaluation`)
and is then evaluated once on the test file with the benchmark protocol (every prefix of
every test session, full ranking, pessimistic ties). Prints, per epoch, the mean training
loss, wall seconds, training clicks (positions) per second and the validation score, then
the test metrics, as one JSON object at the end.

Commands (pin the thread count: on the shared 2-core machine it changes speed many times)::

    # full softmax cross-entropy
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_sasrec --dataset diginetica \
        --loss ce --epochs 5 --threads 1
    # TRON-style sampled softmax: in-batch + 1024 shared uniform negatives, logQ correction
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_sasrec --dataset diginetica \
        --loss sampled --epochs 5 --threads 1 --param n_negatives=1024 --param sample_alpha=0
    # other hyperparameters: --param key=value (e.g. hidden_size=100, dropout=0.3)
    # --refit: then train on the whole training file for the selected epochs and test that
    # too; --refit-epochs N: only that, N chosen by an earlier validation run
    # (benchmarks/accuracy/protocol_refit.py)

``--dataset yoochoose-1_64`` runs the YooChoose 1/64 split the same way.

``--dataset amazon-beauty`` (long user histories, ``amazon-beauty/Beauty.txt``): leave-one-out
with full ranking. Every user's history without its last two items trains the model; the
second-to-last item is the validation target and the last the test target (protocol
``last``: the history before the target, ranked against every item, history items
included). Epochs are not selected here (the validation cases of the fit would be every
position of the histories): the model trains ``--epochs`` epochs and the script reports
validation and test HR@10/NDCG@10::

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_sasrec --dataset amazon-beauty \
        --loss ce --epochs 10 --threads 1 --param max_len=50 --param dropout=0.5

RecBole's SASRec on the same split, for the side by side: ``benchmarks/peers/recbole_beauty.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.accuracy.protocol_refit import add_refit_arguments, refit
from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA, read_params_file
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate
from sessionrec.models.neural.sasrec import SASRec
from sessionrec.models.registry import parse_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", choices=[*sorted(BENCHMARK_FOLDERS), "amazon-beauty"], default="diginetica"
    )
    parser.add_argument("--loss", choices=("ce", "sampled"), default="ce")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--param", action="append", default=[], help="key=value")
    parser.add_argument(
        "--params-file",
        type=Path,
        help="JSON hyperparameters (e.g. benchmarks/params/*.json); --param overrides them",
    )
    add_refit_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    if args.dataset == "amazon-beauty":
        if args.refit or args.refit_epochs:
            parser.error("amazon-beauty selects no epochs: there is nothing to refit")
        leave_one_out(args)
        return

    folder = BenchmarkFolder(SHARED_DATA / BENCHMARK_FOLDERS[args.dataset])
    full_train, test = folder.train(), folder.test()
    train, valid = last_fraction_split(full_train, 0.1)
    params: dict[str, Any] = {
        "loss": args.loss,
        "n_epochs": args.epochs,
        "patience": args.patience,
        "device": "cpu",
        **(read_params_file(args.params_file) if args.params_file else {}),
        **parse_params("sasrec", args.param),
    }
    if args.refit_epochs:
        figures = refit(
            lambda p: SASRec(**p), params, full_train, test, args.refit_epochs, (10, 20)
        )
        print(json.dumps({"dataset": args.dataset, "threads": args.threads, "refit": figures}))
        return
    model = SASRec(**params)
    started = time.perf_counter()
    model.fit(train, valid)
    fit_seconds = time.perf_counter() - started
    epochs = []
    for e in range(model.epoch_losses_.size):
        seconds = float(model.epoch_seconds_[e])
        examples = int(model.epoch_examples_[e])
        epochs.append(
            {
                "epoch": e + 1,
                "loss": round(float(model.epoch_losses_[e]), 4),
                "seconds": round(seconds, 1),
                "clicks_per_second": round(examples / seconds),
                f"valid_{model.selection_metric}": round(float(model.epoch_valid_[e]), 2),
            }
        )
        print(json.dumps(epochs[-1]), flush=True)
    result = evaluate(model, test, protocol="benchmark", cutoffs=(10, 20))
    metrics = result.metrics()
    summary = {
        "dataset": args.dataset,
        "params": model.get_params(),
        "threads": args.threads,
        "train_sessions": train.n_sessions,
        "valid_sessions": valid.n_sessions,
        "truncated_sessions": model.truncated_sessions_,
        "best_epoch": model.best_epoch_,
        "seconds_per_epoch": round(float(np.mean(model.epoch_seconds_)), 1),
        "clicks_per_second": round(
            float(np.sum(model.epoch_examples_) / np.sum(model.epoch_seconds_))
        ),
        "fit_seconds": round(fit_seconds, 1),
        "test_cases": metrics["n_cases"],
        "hr@20": round(metrics["hr@20"], 2),
        "mrr@20": round(metrics["mrr@20"], 2),
        "hr@10": round(metrics["hr@10"], 2),
        "mrr@10": round(metrics["mrr@10"], 2),
        "evaluate_seconds": round(result.predict_seconds, 1),
    }
    print(json.dumps(summary), flush=True)
    if args.refit:  # a line of its own: the selection's figures are out if the refit dies
        figures = refit(
            lambda p: SASRec(**p), params, full_train, test, model.best_epoch_, (10, 20)
        )
        print(json.dumps({"dataset": args.dataset, "threads": args.threads, "refit": figures}))


def leave_one_out(args: argparse.Namespace) -> None:
    """Amazon Beauty, leave-one-out, full ranking (see the module docstring)."""
    histories = [
        line.split()[1:]
        for line in (SHARED_DATA / "amazon-beauty/Beauty.txt").read_text().splitlines()
        if line.strip()
    ]
    everything = SessionData.from_sequences(histories)
    vocab = everything.vocab
    train = SessionData.from_sequences([h[:-2] for h in histories], vocab=vocab)
    valid = SessionData.from_sequences([h[:-1] for h in histories], vocab=vocab)
    params: dict[str, Any] = {
        "loss": args.loss,
        "n_epochs": args.epochs,
        "device": "cpu",
        **(read_params_file(args.params_file) if args.params_file else {}),
        **parse_params("sasrec", args.param),
    }
    model = SASRec(**params)
    started = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "dataset": "amazon-beauty",
        "params": model.get_params(),
        "users": len(histories),
        "seconds_per_epoch": round(float(np.mean(model.epoch_seconds_)), 1),
        "clicks_per_second": round(
            float(np.sum(model.epoch_examples_) / np.sum(model.epoch_seconds_))
        ),
        "fit_seconds": round(fit_seconds, 1),
        "truncated_sessions": model.truncated_sessions_,
    }
    for split, data in (("valid", valid), ("test", everything)):
        metrics = evaluate(model, data, protocol="last", cutoffs=(10, 20)).metrics()
        out[f"{split}_hr@10"] = round(metrics["hr@10"], 2)
        out[f"{split}_ndcg@10"] = round(metrics["ndcg@10"], 2)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
