"""What the RecBole side-by-side scripts share: their ``convert`` and ``recbole``
subcommands, the process set-up of a RecBole run, and the timing of RecBole's epochs.

Imported from RecBole's own virtual environment: the standard library only at import time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import load_average


def time_recbole_epochs() -> list[dict[str, Any]]:
    """Time every RecBole training epoch (wall and CPU seconds), by wrapping its trainer.

    Returns the list the epochs' records are appended to; each is also printed to stderr.
    """
    from recbole.trainer import Trainer

    epochs: list[dict[str, Any]] = []
    train_epoch = Trainer._train_epoch

    def timed_epoch(self: Any, train_data: Any, epoch_idx: int, *rest: Any, **kw: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        loss = train_epoch(self, train_data, epoch_idx, *rest, **kw)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cases = len(train_data._dataset)
        epochs.append(
            {
                "epoch": epoch_idx + 1,
                "seconds": round(wall, 1),
                "cpu_seconds": round(cpu, 1),
                "cases_per_second": round(cases / wall),
                "loss": round(float(loss), 4),
                "cases": cases,
                "loadavg": load_average(),
            }
        )
        print(json.dumps(epochs[-1]), file=sys.stderr, flush=True)
        return loss

    Trainer._train_epoch = timed_epoch  # type: ignore[method-assign]
    return epochs


def epoch_summary(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean wall and CPU seconds per epoch and training cases per second of timed epochs."""
    walls = [e["seconds"] for e in epochs]
    return {
        "seconds_per_epoch": round(sum(walls) / len(walls), 1),
        "cpu_seconds_per_epoch": round(sum(e["cpu_seconds"] for e in epochs) / len(epochs), 1),
        "cases_per_second": round(sum(e["cases"] for e in epochs) / sum(walls)),
    }


def add_recbole_commands(
    commands: Any, *, convert_help: str, recbole_help: str
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``convert`` and ``recbole`` subcommands with the arguments both scripts share."""
    conv = commands.add_parser("convert", help=convert_help)
    conv.add_argument("--out", required=True, help="RecBole data_path (a folder is made in it)")
    rb = commands.add_parser("recbole", help=recbole_help)
    rb.add_argument("--data", required=True, help="the folder given to convert --out")
    rb.add_argument("--work", required=True, help="RecBole's working folder (logs, checkpoints)")
    rb.add_argument("--seed", type=int, default=2020)  # RecBole's default seed
    return conv, rb


def enter_recbole(threads: int, work: str) -> None:
    """The process set-up of a RecBole run: torch threads, its working folder, checkpoints."""
    # RecBole 1.2.1 reloads its own checkpoint (config object included) with a bare
    # torch.load, which torch >= 2.6 refuses by default (weights_only=True): allow it, in
    # RecBole's environment only.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch

    torch.set_num_threads(threads)
    folder = Path(work)
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # RecBole writes ./log and ./log_tensorboard under the working directory
