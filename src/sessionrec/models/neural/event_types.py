"""Event types as an input of the neural models (GRU4Rec, SASRec, NARM, STAMP): a learned
embedding per canonical type. SR-GNN does not read them (its graph nodes are items, which
clicks of several types may share).

Each input click's vector is its item's embedding plus the embedding of its event type
(``view``, ``cart`` or ``purchase``; codes :data:`~sessionrec.models.knn_objective.VIEW` <
``CART`` < ``PURCHASE``; any other type name counts as a view). The table has
:data:`N_EVENT_TYPES` rows and starts at zero, so an untrained type changes nothing.

The hyperparameter ``event_types`` decides whether a model has the table:

- ``"auto"`` (default): when the training data has event types other than views; a model
  trained on data without types (or with views only) is exactly the model of before
  (same weights, same outputs for the same seed, no extra work per step).
- ``True``: always (a batch without types is then all views), ``False``: never.

At scoring time a batch without types counts every click as a view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec.data.sessions import SessionData
from sessionrec.models.knn_objective import VIEW, canonical_codes
from sessionrec.models.params import check_param

if TYPE_CHECKING:
    from sessionrec.models.neural.distributed import Workers

N_EVENT_TYPES = 3
"""Rows of the type embedding: view, cart, purchase."""

TYPE_EMBEDDING = "type_embedding"
"""The weight's name in a model's state and named weights."""


def check_event_types(value: Any) -> None:
    """``event_types`` must be ``"auto"``, ``True`` or ``False``."""
    check_param(
        "event_types",
        value,
        isinstance(value, bool) or value == "auto",
        "expected 'auto', true or false",
    )


def uses_event_types(setting: bool | str, train: SessionData) -> bool:
    """Whether a model with ``event_types=setting`` fitted on ``train`` embeds the types."""
    if setting == "auto":
        codes = canonical_codes(train.types, train.event_types)
        return codes is not None and bool((codes != VIEW).any())
    return bool(setting)


def network_uses_event_types(
    setting: bool | str,
    train: SessionData,
    source_weights: Mapping[str, Any] | None = None,
    workers: Workers | None = None,
) -> bool:
    """Whether the network about to be trained has the type table.

    Fine-tuning (``source_weights``: the trained model's named weights) follows the source,
    whose weights are copied. Otherwise :func:`uses_event_types` decides; in a process group
    ``train`` is this rank's shard, so the ranks agree (any rank seeing types decides it).
    """
    if source_weights is not None:
        return TYPE_EMBEDDING in source_weights
    typed = uses_event_types(setting, train)
    if workers is not None and setting == "auto":
        typed = workers.any(typed)
    return typed


def click_codes(types: np.ndarray | None, event_types: tuple[str, ...], n: int) -> np.ndarray:
    """Canonical codes (int64) of ``n`` clicks; all views when ``types`` is ``None``."""
    codes = canonical_codes(types, event_types)
    if codes is None:
        return np.full(n, VIEW, dtype=np.int64)
    return codes.astype(np.int64)
