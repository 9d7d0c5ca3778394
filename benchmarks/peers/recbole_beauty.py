"""SASRec beside RecBole 1.2.1 on Amazon Beauty: long user histories, leave-one-out.

RecBole runs from its own virtual environment outside the repository (it needs numpy<2,
pandas<3 and setuptools<81); nothing of it is copied here. This script writes RecBole's
input and runs RecBole; our side is ``benchmarks/accuracy/bench_sasrec.py --dataset amazon-beauty``,
which splits the same file the same way. Two subcommands:

- ``convert`` (any Python 3, standard library only): ``amazon-beauty/Beauty.txt`` (one user
  per line, items in order) to a RecBole atomic file ``beauty.inter`` with ``user_id``,
  ``item_id`` and ``timestamp`` = the item's position in the user's history (the file has
  no times; the position keeps the order, which is all leave-one-out needs).
- ``recbole`` (RecBole's environment): RecBole's SASRec with its default hyperparameters
  (2 layers, 2 heads, hidden 64, FFN 256 GELU, dropout 0.5 / 0.5, CE over every item, Adam
  0.001, batch 2048, 50 most recent items), RecBole's leave-one-out split (``LS:
  valid_and_test``, ordered by the position, grouped by user: per user the last item is the
  test target, the one before it the validation target, the rest trains, every prefix a
  training case), full ranking, HR@10 and NDCG@10. It trains a fixed number of epochs
  without validation in between (``eval_step: 0``) and tests the last epoch, as our side
  does, then reports validation and test of that epoch.

Commands (from the repository root; RecBole's venv at ``$RB``, see recbole_side_by_side.py)::

    python3 -m benchmarks.peers.recbole_beauty convert --out /tmp/recbole/data
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $RB/bin/python -m benchmarks.peers.recbole_beauty \
        recbole --epochs 10 --data /tmp/recbole/data --work /tmp/recbole/work
    # ours, with RecBole's settings where ours has the same knob
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_sasrec --dataset amazon-beauty \
        --loss ce --epochs 10 --threads 1 --param hidden_size=64 --param n_heads=2 \
        --param n_blocks=2 --param dropout=0.5 --param batch_size=2048 \
        --param learning_rate=0.001 --param max_len=50

Results: BENCHMARKS.md (row P4) and benchmarks/notes/neural-cpu.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import SHARED_DATA, load_average
from benchmarks.peers.recbole_runner import (
    add_recbole_commands,
    enter_recbole,
    epoch_summary,
    time_recbole_epochs,
)

SOURCE = SHARED_DATA / "amazon-beauty/Beauty.txt"
DATASET = "beauty"


def convert(args: argparse.Namespace) -> None:
    out = Path(args.out) / DATASET
    out.mkdir(parents=True, exist_ok=True)
    users = events = 0
    with (out / f"{DATASET}.inter").open("w") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in args.source.read_text().splitlines():
            fields = line.split()
            if not fields:
                continue
            user, items = fields[0], fields[1:]
            for position, item in enumerate(items):
                handle.write(f"{user}\t{item}\t{position}\n")
            users += 1
            events += len(items)
    print(json.dumps({"users": users, "events": events, "file": str(out / f"{DATASET}.inter")}))


def recbole_config(args: argparse.Namespace) -> dict[str, Any]:
    """Only what the data and the comparison need; every model setting is RecBole's default."""
    return {
        "data_path": str(Path(args.data).resolve()),
        "checkpoint_dir": str(Path(args.work).resolve() / "saved"),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "train_neg_sample_args": None,  # the CE loss (RecBole's default) takes no negatives
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": args.epochs,
        "eval_step": 0,  # no validation between epochs: the last epoch is tested
        "use_gpu": False,
        "show_progress": False,
        "seed": args.seed,
        "reproducibility": True,
    }


def run_recbole(args: argparse.Namespace) -> None:
    enter_recbole(args.threads, args.work)
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    config = Config(model="SASRec", dataset=DATASET, config_dict=recbole_config(args))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    epochs = time_recbole_epochs()
    before = load_average()
    trainer.fit(train_data, valid_data=None, saved=True, show_progress=False)
    valid = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
    test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    print(
        json.dumps(
            {
                "side": "recbole",
                "recbole": recbole.__version__,
                "torch": torch.__version__,
                "model": "SASRec",
                "dataset": DATASET,
                "users": int(dataset.user_num - 1),  # RecBole counts a padding user
                "items": int(dataset.item_num - 1),
                "epochs": epochs,
                **epoch_summary(epochs),
                "valid_hr@10": round(100 * float(valid["hit@10"]), 2),
                "valid_ndcg@10": round(100 * float(valid["ndcg@10"]), 2),
                "test_hr@10": round(100 * float(test["hit@10"]), 2),
                "test_ndcg@10": round(100 * float(test["ndcg@10"]), 2),
                "threads": torch.get_num_threads(),
                "loadavg_before": before,
                "loadavg_after": load_average(),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    conv, rb = add_recbole_commands(
        commands,
        convert_help="Beauty.txt -> RecBole atomic file",
        recbole_help="RecBole's SASRec, in its own environment",
    )
    conv.add_argument("--source", type=Path, default=SOURCE, help="Beauty.txt")
    rb.add_argument("--epochs", type=int, default=10)
    rb.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    {"convert": convert, "recbole": run_recbole}[args.command](args)


if __name__ == "__main__":
    main()
