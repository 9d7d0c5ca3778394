"""Exact top-k of a few live sessions through an int8 copy of a neural model's item table.

GRU4Rec, NARM, STAMP, SR-GNN and SASRec all score a session as one product of its final
vector with an item table, plus a per-item bias (``-inf`` for items never to return). For a
batch of a few sessions on the CPU (a service request) reading that whole table per request
is what costs: Diginetica's 43,097 items at 100 dimensions are 34 MB in the float64 scoring
copy of the prefix models, several milliseconds of memory traffic. :class:`QuantizedServing`
finds the same top ``k`` through :class:`~sessionrec.models.quantized.QuantizedTable`
(int8 bounds, then the few candidates rescored from the exact table; see that module), and
leaves large batches (evaluation) and accelerators to the dense product.

The int8 copy is built on first use and rebuilt once the model has replaced the object its
table comes from (every fit and load do; the prefix models also make a new float64 copy
whenever the weights change) or its bias, so it is never served stale.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sessionrec.models.base import Recommender, SessionBatch, TopK, check_k
from sessionrec.models.quantized import QuantizedTable
from sessionrec.models.topk import select_top_k

if TYPE_CHECKING:
    import torch

QUANTIZED_MAX_BATCH = 8
"""Top-k of at most this many sessions goes through the int8 table (serving sizes)."""
QUANTIZED_MIN_SIZE = 1 << 20
"""Item tables of fewer values stay in cache: the int8 copy would not pay."""
_BUILD_LOCK = threading.Lock()  # a served model is shared between threads

EMPTY: TopK = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


class QuantizedServing(Recommender):
    """A recommender whose scores are ``table @ vector + bias``, served through int8 bounds.

    Subclasses say what the table, the bias and the session vectors are; the answers equal
    :meth:`Recommender.top_k`'s (up to float32 summation order in the last bit, which only
    matters for exact ties).
    """

    def _serving_table(self) -> tuple[object, torch.Tensor, torch.Tensor]:
        """``(source, table, bias)``: the item table ``[n_items, d]`` that scores are computed
        from and the float32 bias ``[n_items]`` added to them (``-inf`` for items never
        returned), both detached. ``source`` is an object that the model replaces whenever
        the table's values change (a new fit, a load), and ``bias`` is replaced likewise:
        the int8 copy is kept while both are the same objects."""
        raise NotImplementedError

    def _session_states(self, batch: SessionBatch) -> tuple[np.ndarray, torch.Tensor]:
        """The batch rows that have a session vector and their vectors ``[m, d]`` (the
        table's dtype and device)."""
        raise NotImplementedError

    def _fallback_scores(self) -> np.ndarray | None:
        """Every item's float32 score for a session without a vector (no known click);
        ``None`` (the default): such a session is served nothing."""
        return None

    def top_k(
        self,
        batch: SessionBatch,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
    ) -> list[TopK]:
        """Exact top-``k``; a few live sessions on the CPU go through the int8 item table."""
        import torch

        k = check_k(k)
        self._check_fitted()
        served = self._quantized_table() if len(batch) <= QUANTIZED_MAX_BATCH else None
        if served is None:
            return super().top_k(batch, k, exclude)
        quantized, weights, bias = served
        skips: list[np.ndarray | None] = (
            [None] * len(batch)
            if exclude is None
            else [np.asarray(items, dtype=np.int64) for items in exclude]
        )
        rows, states = self._session_states(batch)
        results: list[TopK | None] = [None] * len(batch)
        for state, row in zip(states, rows.tolist(), strict=True):
            skip = skips[row]
            found = quantized.candidates(state.float().numpy(), k, skip)
            with torch.inference_mode():
                if found is None:  # a flat score distribution: the dense product is cheaper
                    found = np.arange(weights.shape[0])
                    exact = torch.mv(weights, state)
                else:
                    exact = torch.mv(weights.index_select(0, torch.as_tensor(found)), state)
            scores = exact.numpy().astype(np.float32, copy=False) + bias[found]
            if skip is not None and skip.size:
                scores[np.isin(found, skip)] = -np.inf
            ((best, values),) = select_top_k(scores[None, :], k)
            results[row] = (found[best], values)
        fallback = self._fallback_scores()
        return [
            result
            if result is not None
            else EMPTY
            if fallback is None
            else _excluded_top_k(fallback, k, skips[row])
            for row, result in enumerate(results)
        ]

    def _quantized_table(self) -> tuple[QuantizedTable, torch.Tensor, np.ndarray] | None:
        """(int8 copy, exact table, bias), built on first use; ``None`` where not worth it."""
        source, weights, bias = self._serving_table()
        if weights.device.type != "cpu" or weights.numel() < QUANTIZED_MIN_SIZE:
            return None  # accelerators, and tables that fit in cache: the dense product
        cached = self.__dict__.get("_int8_table")
        if cached is None or cached.source is not source or cached.bias is not bias:
            with _BUILD_LOCK:
                cached = self.__dict__.get("_int8_table")
                if cached is None or cached.source is not source or cached.bias is not bias:
                    values = bias.numpy()
                    table = QuantizedTable(weights.float().numpy(), values)
                    cached = _Int8Copy(table, source, bias, values)
                    self._int8_table = cached
        return cached.table, weights, cached.bias_values


def _excluded_top_k(scores: np.ndarray, k: int, skip: np.ndarray | None) -> TopK:
    if skip is not None and skip.size:
        scores = scores.copy()
        scores[skip] = -np.inf
    ((best, values),) = select_top_k(scores[None, :], k)
    return best, values


@dataclass(frozen=True)
class _Int8Copy:
    """The int8 table and what it was built from. Holding ``source`` and ``bias`` keeps them
    alive, so a later fit's new objects can never reuse their identities."""

    table: QuantizedTable
    source: object
    bias: torch.Tensor
    bias_values: np.ndarray
