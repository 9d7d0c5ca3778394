"""Checks the command line runs around a command: that its outputs can be written (before
any work), and that a saved model was trained on the benchmark it is evaluated on."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sessionrec._errors import ConfigError, DataError

if TYPE_CHECKING:
    from sessionrec.data.sessions import SessionData
    from sessionrec.evaluation.protocol import BenchmarkFolder
    from sessionrec.models.base import Recommender

__all__ = ["OUTPUTS", "check_model_data", "check_outputs", "recorded_fit_seconds"]

log = logging.getLogger("sessionrec")


OUTPUTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "prepare": (("output", True),),
    "train": (("output", True),),
    "evaluate": (("predictions", False), ("save_results", False)),
    "report": (("output", False),),
    "tune": (("output", False),),
    "auto": (("output", True), ("work_dir", True)),
    "demo": (("output", True),),
}
"""Every option naming something a command writes: (attribute, is it a folder)."""


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output path that cannot be written before the command does any work (a
    training run should not end in a failed save)."""
    from sessionrec._atomic import check_output

    for name, folder in OUTPUTS.get(args.command, ()):
        value = getattr(args, name, None)
        if value is not None:
            check_output(value, folder=folder)
    # what the writers refuse to replace, refused now rather than after the work
    if args.command == "prepare":
        from sessionrec.data.prepare import check_dataset_target

        check_dataset_target(args.output)
    elif args.command in ("train", "auto"):
        from sessionrec.models.persist import MANIFEST

        target = Path(args.output)
        if target.exists() and not (target / MANIFEST).is_file():
            raise ConfigError(f"{target} exists and is not a model folder; refusing to replace it")


def check_model_data(
    model: Recommender,
    train: SessionData,
    folder: BenchmarkFolder,
    model_dir: str,
    allow_other_data: bool,
) -> None:
    """Refuse a model trained on other data than the benchmark's training file (unless
    ``allow_other_data``); warn when the model records no fingerprint to compare."""
    from sessionrec.fingerprint_check import check_training_data

    check = check_training_data(
        model,
        train,
        model_name=f"model folder {model_dir}",
        data_name=str(folder.path / "train_sessions.txt"),
    )
    if check.verdict == "unknown":
        log.warning("%s", check.message)
    elif check.other_data:
        if not allow_other_data:
            raise DataError(f"{check.message}; pass --allow-other-data to evaluate it anyway")
        log.warning("%s (evaluating anyway: --allow-other-data)", check.message)


def recorded_fit_seconds(model_dir: str) -> float | None:
    """The training time the model folder's manifest records (``train`` saves it)."""
    from sessionrec.models.persist import read_manifest

    value = read_manifest(model_dir).get("metrics", {}).get("fit_seconds")
    return float(value) if isinstance(value, (int, float)) else None
