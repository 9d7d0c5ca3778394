"""A fitted model's vocabulary grown by newer sessions, without moving any old item.

Fine-tuning a neural model (:mod:`sessionrec.models.neural.fine_tune`) and appending live
sessions to a session-kNN index (:mod:`sessionrec.models.knn_update`) both learn from
sessions that may click items the model has never seen: those items join at the end of the
vocabulary, so every old item keeps its internal index and the learned arrays stay aligned
with it.
"""

from __future__ import annotations

import numpy as np

from sessionrec._errors import DataError
from sessionrec.data.sessions import UNKNOWN, ItemVocab, SessionData

FINGERPRINT_SEPARATOR = "+"
"""Joins the fingerprints of a fine-tuned model's training data, oldest first."""


def extended_vocab(vocab: ItemVocab, train: SessionData) -> ItemVocab:
    """``vocab`` with the items clicked in ``train`` that it lacks appended, in the order of
    ``train``'s vocabulary. Old items keep their indices; items of ``train``'s vocabulary
    without a click there are not added (a row without a click would never be trained)."""
    clicked = train.vocab.ids[np.unique(np.asarray(train.items, dtype=np.int64))]
    if vocab.kind == "int" and train.vocab.kind == "str" and len(clicked):
        raise DataError(
            "the model's item ids are integers but the new sessions' are strings: "
            "fine-tuning keeps the model's item ids"
        )
    new = clicked[vocab.encode(clicked) == UNKNOWN]
    if new.size == 0:
        return vocab  # nothing to add (a vocabulary is never modified: safe to share)
    if vocab.kind == "str":
        new = new.astype(str)  # integer ids of the new sessions join as text
    return ItemVocab(np.concatenate([vocab.ids, new]))


def extended_counts(counts: np.ndarray, n_items: int) -> np.ndarray:
    """Clicks per item (int64) padded with zeros to ``n_items`` (the appended items')."""
    out = np.zeros(n_items, dtype=np.int64)
    out[: len(counts)] = counts
    return out


def chained_fingerprint(old: str, new: str) -> str:
    """The training-data fingerprint of a model fine-tuned on data ``new`` from a model
    trained on data ``old``: both, oldest first, joined by :data:`FINGERPRINT_SEPARATOR`
    (``"<old>+<new>"``; a model fine-tuned again appends another). No benchmark's training
    file has this fingerprint, so evaluating the model against one needs
    ``--allow-other-data``: it was trained on more than that file."""
    return FINGERPRINT_SEPARATOR.join(part for part in (old, new) if part)
