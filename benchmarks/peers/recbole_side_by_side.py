"""SR-GNN and SASRec beside RecBole 1.2.1 on YooChoose rsc15-100k, one torch thread.

RecBole is a separate tool run beside ours: it lives in its own virtual environment outside
the repository (it needs numpy<2, pandas<3 and setuptools<81), and nothing of it is copied
here; this script only writes its input files and calls it. Three subcommands:

- ``convert`` (any Python 3, standard library only): the GRU4Rec TSV files of
  ``shared/data/yoochoose/rsc15-100k`` to RecBole *benchmark* atomic files
  (``benchmark_filename: [train, valid, test]``). RecBole does not expand benchmark files
  into prefixes itself, so every row is already one case: ``session_id`` (the user field),
  ``item_id_list`` (the clicks before the target, the most recent 50 at most), ``item_id``
  (the target) and ``timestamp`` (the target's time). ``train`` holds every prefix of every
  ``train_full`` session, ``test`` every prefix of every ``test`` session (the GRU4Rec
  next-click protocol; test clicks on items absent from ``train_full`` would be dropped
  first, as GRU4Rec does: this sample has none). ``valid`` holds every prefix of the
  ``train_valid`` sessions: the sample's own tuning split, the chronologically last 4,084
  sessions of ``train_full``. Those sessions are also in RecBole's training file, so the
  validation score only monitors training; both sides train a fixed number of epochs.
- ``recbole`` (RecBole's environment): RecBole's SASRec or SRGNN with its default
  hyperparameters, only the data fields, the benchmark files, the metrics (Recall@20,
  MRR@20: with one target per case RecBole's Recall is HR) and the epoch count set; CPU.
  RecBole's training epochs are timed by wrapping its trainer's epoch method (wall and CPU
  seconds); its own log line ``epoch N training [time: ...]`` gives the same wall time.
- ``ours`` (this repository's ``.venv``): our SR-GNN or SASRec on the same files, trained
  on the whole ``train_full`` for the same number of epochs with hyperparameters set as
  close to RecBole's defaults as our models allow, then evaluated on every prefix of every
  test session against every item (:func:`sessionrec.evaluation.protocol.evaluate`,
  ``protocol="next"``, pessimistic ties). ``benchmarks/accuracy/bench_prefix_models.py`` and
  ``benchmarks/accuracy/bench_sasrec.py`` only take the named SR-GNN-format folders and split off a
  validation part, so this split is run through the same API here.

Commands (from the repository root; RecBole's venv at ``$RB``, e.g. /tmp/recbole/venv)::

    python3 -m benchmarks.peers.recbole_side_by_side convert --out /tmp/recbole/data
    # RecBole, in its own venv (pip install torch==2.13.0, then recbole==1.2.1 'numpy<2'
    # 'pandas<3' 'setuptools<81'; ray, thop, tensorboard, ... come as its dependencies)
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $RB/bin/python -m benchmarks.peers.recbole_side_by_side \
        recbole --model SASRec --epochs 3 --data /tmp/recbole/data --work /tmp/recbole/work
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $RB/bin/python -m benchmarks.peers.recbole_side_by_side \
        recbole --model SRGNN --epochs 3 --data /tmp/recbole/data --work /tmp/recbole/work
    # ours
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m benchmarks.peers.recbole_side_by_side \
        ours --model sasrec --epochs 3 [--param loss=sampled]
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m benchmarks.peers.recbole_side_by_side \
        ours --model srgnn --epochs 3

Each run prints one JSON object: seconds per training epoch (wall and CPU), training cases
per second (cases = clicks with a previous click in their session, the same 52,484 on both
sides), test HR@20 / MRR@20 in percent, the number of test cases, and ``/proc/loadavg``
before and after the run. Results: ``benchmarks/notes/recbole-side-by-side.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SHARED_DATA, load_average
from benchmarks.peers.recbole_runner import (
    add_recbole_commands,
    enter_recbole,
    epoch_summary,
    time_recbole_epochs,
)

SOURCE = SHARED_DATA / "yoochoose/rsc15-100k"
FILES = {
    "train": "yoochoose-clicks-100k_train_full.txt",
    "valid": "yoochoose-clicks-100k_train_valid.txt",
    "test": "yoochoose-clicks-100k_test.txt",
}
DATASET = "rsc15-100k"
MAX_LEN = 50  # RecBole's MAX_ITEM_LIST_LENGTH default; our models' max_len
HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float\n"


# ----------------------------------------------------------------------------- convert
def read_sessions(path: Path) -> list[tuple[str, list[tuple[float, str]]]]:
    """Sessions of a GRU4Rec TSV file, each ``(id, [(time, item), ...])`` in time order;
    sessions ordered by their first click (ties by id)."""
    sessions: dict[str, list[tuple[float, str]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            sessions.setdefault(row["SessionId"], []).append((float(row["Time"]), row["ItemId"]))
    for clicks in sessions.values():
        clicks.sort(key=lambda click: click[0])  # stable: equal times keep the file order
    return sorted(sessions.items(), key=lambda kv: (kv[1][0][0], kv[0]))


def convert(args: argparse.Namespace) -> None:
    out = Path(args.out) / DATASET
    out.mkdir(parents=True, exist_ok=True)
    train_items = {
        item for _, clicks in read_sessions(args.source / FILES["train"]) for _, item in clicks
    }
    summary: dict[str, Any] = {"train_items": len(train_items)}
    for part, name in FILES.items():
        sessions = read_sessions(args.source / name)
        dropped = 0
        rows = 0
        truncated = 0
        with (out / f"{DATASET}.{part}.inter").open("w") as handle:
            handle.write(HEADER)
            for session, clicks in sessions:
                kept = [c for c in clicks if c[1] in train_items]  # GRU4Rec: unknown dropped
                dropped += len(clicks) - len(kept)
                for i in range(1, len(kept)):
                    prefix = [item for _, item in kept[max(0, i - MAX_LEN) : i]]
                    truncated += i > MAX_LEN
                    when, target = kept[i]
                    handle.write(f"{session}\t{' '.join(prefix)}\t{target}\t{when!r}\n")
                    rows += 1
        summary[part] = {
            "sessions": len(sessions),
            "clicks": sum(len(c) for _, c in sessions),
            "clicks_dropped_unknown_item": dropped,
            "cases": rows,
            "prefixes_cut_to_50": truncated,
        }
    print(json.dumps(summary))


# ----------------------------------------------------------------------------- RecBole
def recbole_config(args: argparse.Namespace) -> dict[str, Any]:
    """Only what the data and the comparison need; every model setting is RecBole's default."""
    return {
        "data_path": str(Path(args.data).resolve()),
        "checkpoint_dir": str(Path(args.work).resolve() / "saved"),
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["session_id", "item_id_list", "item_id", "timestamp"]},
        "alias_of_item_id": ["item_id_list"],  # prefix items and targets share one id space
        "benchmark_filename": ["train", "valid", "test"],
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "train_neg_sample_args": None,  # the CE loss (RecBole's default) takes no negatives
        "metrics": ["Recall", "MRR"],
        "topk": [20],
        "valid_metric": "MRR@20",
        "epochs": args.epochs,
        "use_gpu": False,
        "show_progress": False,
        "seed": args.seed,
        "reproducibility": True,
    }


def run_recbole(args: argparse.Namespace) -> None:
    enter_recbole(args.threads, args.work)
    import recbole
    import torch
    from recbole.quick_start import run_recbole as recbole_main

    epochs = time_recbole_epochs()
    before = load_average()
    started = time.perf_counter()
    result = recbole_main(model=args.model, dataset=DATASET, config_dict=recbole_config(args))
    total = time.perf_counter() - started
    test = result["test_result"]
    print(
        json.dumps(
            {
                "side": "recbole",
                "recbole": recbole.__version__,
                "torch": torch.__version__,
                "model": args.model,
                "epochs": epochs,
                **epoch_summary(epochs),
                "best_valid": {
                    k: round(100 * float(v), 2) for k, v in result["best_valid_result"].items()
                },
                "hr@20": round(100 * float(test["recall@20"]), 2),
                "mrr@20": round(100 * float(test["mrr@20"]), 2),
                "test_cases": sum(
                    1 for _ in (Path(args.data) / DATASET / f"{DATASET}.test.inter").open()
                )
                - 1,
                "run_seconds": round(total, 1),
                "threads": torch.get_num_threads(),
                "loadavg_before": before,
                "loadavg_after": load_average(),
            }
        ),
        flush=True,
    )


# ----------------------------------------------------------------------------- ours
def our_params(model: str, epochs: int, seed: int) -> dict[str, Any]:
    """RecBole's defaults where our models have the same knob (see the results file)."""
    common = {"batch_size": 2048, "learning_rate": 0.001, "max_len": MAX_LEN, "n_epochs": epochs}
    common |= {"patience": 0, "valid_fraction": 0.0, "seed": seed, "device": "cpu"}
    if model == "srgnn":  # RecBole: embedding_size 64, step 1, Adam, no weight decay or decay
        return {**common, "hidden_size": 64, "n_steps": 1, "lr_decay": 1.0, "l2": 0.0}
    # RecBole: hidden_size 64, 2 layers, 2 heads, dropout 0.5 (hidden and attention), CE
    return {**common, "hidden_size": 64, "n_blocks": 2, "n_heads": 2, "dropout": 0.5, "loss": "ce"}


def run_ours(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from sessionrec.data.events import read_events
    from sessionrec.data.sessions import SessionData
    from sessionrec.evaluation.protocol import evaluate
    from sessionrec.models.registry import create_model, parse_params

    torch.set_num_threads(args.threads)
    train = SessionData.from_frame(read_events(args.source / FILES["train"], preset="gru4rec"))
    test = SessionData.from_frame(read_events(args.source / FILES["test"], preset="gru4rec"))
    params = {
        **our_params(args.model, args.epochs, args.seed),
        **parse_params(args.model, args.param),
    }
    model: Any = create_model(args.model, params)
    before = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(train)
    fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    after_fit = load_average()
    result = evaluate(model, test, protocol="next", cutoffs=(20,))
    metrics = result.metrics()
    seconds = np.asarray(model.epoch_seconds_, dtype=float)
    examples = np.asarray(model.epoch_examples_, dtype=float)
    print(
        json.dumps(
            {
                "side": "ours",
                "torch": torch.__version__,
                "model": args.model,
                "params": model.get_params(),
                "epochs": [
                    {
                        "epoch": e + 1,
                        "seconds": round(float(seconds[e]), 2),
                        "cases_per_second": round(float(examples[e] / seconds[e])),
                        "loss": round(float(model.epoch_losses_[e]), 4),
                        "cases": int(examples[e]),
                    }
                    for e in range(seconds.size)
                ],
                "seconds_per_epoch": round(float(seconds.mean()), 2),
                "fit_cpu_seconds_per_epoch": round(fit_cpu / seconds.size, 2),
                "fit_seconds": round(fit_wall, 2),
                "cases_per_second": round(float(examples.sum() / seconds.sum())),
                "hr@20": round(float(metrics["hr@20"]), 2),
                "mrr@20": round(float(metrics["mrr@20"]), 2),
                "test_cases": int(result.n_cases),
                "threads": torch.get_num_threads(),
                "loadavg_before": before,
                "loadavg_after_fit": after_fit,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    conv, rb = add_recbole_commands(
        commands,
        convert_help="GRU4Rec TSV -> RecBole benchmark files",
        recbole_help="RecBole, in its own environment",
    )
    rb.add_argument("--model", choices=("SASRec", "SRGNN"), required=True)
    ours = commands.add_parser("ours", help="our model, in this repository's .venv")
    ours.add_argument("--model", choices=("srgnn", "sasrec"), required=True)
    ours.add_argument("--seed", type=int, default=42)
    ours.add_argument("--param", action="append", default=[], help="key=value override")
    for sub in (conv, rb, ours):
        sub.add_argument("--source", type=Path, default=SOURCE, help="rsc15-100k folder")
    for sub in (rb, ours):
        sub.add_argument("--epochs", type=int, default=3)
        sub.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    {"convert": convert, "recbole": run_recbole, "ours": run_ours}[args.command](args)


if __name__ == "__main__":
    main()
