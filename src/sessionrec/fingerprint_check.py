"""Was a model trained on this benchmark's training data? Compare the data fingerprints.

Fitting records ``train.fingerprint()`` (a hash of the clicks and the vocabulary, see
:meth:`~sessionrec.data.sessions.SessionData.fingerprint`) as the model's
``data_fingerprint_``; the model folder's manifest keeps it. A benchmark's training data is
its ``train_sessions.txt`` read as evaluation reads it, so its fingerprint is computed the
same way here, and a model evaluated, replayed or served against a benchmark it was not
trained on can be refused or flagged instead of printing meaningless numbers.

Composite models (the repeat layer, ensembles) carry their own fingerprint and their
members carry theirs: an ensemble's member refitted on all the training sessions, or the
base under a repeat layer, may be the only record of the full training data (a member left
without weight keeps the fingerprint of the part it was first fitted on). A model matches
when any of these fingerprints is the benchmark's. A model saved before fingerprints were
recorded has none: that is :data:`UNKNOWN`, to be warned about, not refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sessionrec.data.sessions import SessionData
    from sessionrec.models.base import Recommender

__all__ = [
    "TRAIN_FILE",
    "DataCheck",
    "check_training_data",
    "data_mismatch",
    "recorded_fingerprints",
    "training_fingerprint",
]

TRAIN_FILE = "train_sessions.txt"

Verdict = Literal["same", "other", "unknown"]
SAME: Verdict = "same"
OTHER: Verdict = "other"
UNKNOWN: Verdict = "unknown"


@dataclass(frozen=True)
class DataCheck:
    """The verdict of :func:`check_training_data` and the sentence that explains it
    (empty when the data is the same)."""

    verdict: Verdict
    message: str
    model_fingerprint: str | None
    data_fingerprint: str

    @property
    def other_data(self) -> bool:
        return self.verdict == OTHER


def recorded_fingerprints(model: Recommender) -> list[str]:
    """Every training-data fingerprint ``model`` records: its own first, then its members'
    (recursively), without repeats; empty for a model saved before they existed."""
    found: list[str] = []

    def visit(node: Recommender) -> None:
        value = str(getattr(node, "data_fingerprint_", "") or "")
        if value and value not in found:
            found.append(value)
        for member in node._get_members().values():
            visit(member)

    visit(model)
    return found


def training_fingerprint(train: SessionData | str | os.PathLike[str]) -> tuple[str, str]:
    """``(fingerprint, what)`` of training data: a :class:`SessionData`, a sessions-txt
    file or a benchmark folder holding ``train_sessions.txt``; ``what`` names it."""
    from sessionrec.data.formats import read_sessions_txt
    from sessionrec.data.sessions import SessionData

    if isinstance(train, SessionData):
        return train.fingerprint(), "the given training data"
    path = Path(train)
    if path.is_dir():
        path = path / TRAIN_FILE
    return read_sessions_txt(path).fingerprint(), str(path)


def check_training_data(
    model: Recommender,
    train: SessionData | str | os.PathLike[str],
    *,
    model_name: str | None = None,
    data_name: str | None = None,
) -> DataCheck:
    """Whether ``model`` was trained on ``train`` (see :func:`training_fingerprint` for what
    ``train`` may be); ``model_name`` (e.g. its folder) and ``data_name`` (e.g. the file
    ``train`` was read from) name them in the message."""
    fingerprint, what = training_fingerprint(train)
    what = data_name or what
    name = model_name or f"model {model.name!r}"
    recorded = recorded_fingerprints(model)
    if not recorded:
        message = (
            f"{name} records no training-data fingerprint (saved before sessionrec recorded "
            f"them): cannot check that it was trained on {what}"
        )
        return DataCheck(UNKNOWN, message, None, fingerprint)
    if fingerprint in recorded:
        return DataCheck(SAME, "", fingerprint, fingerprint)
    message = (
        f"{name} was trained on other data (fingerprint {recorded[0]}) than {what} "
        f"(fingerprint {fingerprint}): its numbers on this benchmark would mean nothing"
    )
    return DataCheck(OTHER, message, recorded[0], fingerprint)


def data_mismatch(
    model: Recommender,
    train: SessionData | str | os.PathLike[str],
    *,
    model_name: str | None = None,
    data_name: str | None = None,
) -> str | None:
    """The message when ``model`` was trained on other data than ``train``, else ``None``
    (also ``None`` for a model without a recorded fingerprint: nothing to compare)."""
    check = check_training_data(model, train, model_name=model_name, data_name=data_name)
    return check.message if check.other_data else None
