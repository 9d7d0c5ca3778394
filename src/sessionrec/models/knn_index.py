"""The fitted index of the session-kNN models and the factors derived from it.

:func:`build_index` turns training sessions into posting lists (item -> the training sessions
containing it, most recent last, truncated to ``sample_size``) and a session store (session ->
its distinct items); :func:`make_weights` precomputes the per-session, per-item and
per-distance factors a model's :class:`Scoring` asks for; :func:`index_from_state` checks a
saved index before the Numba kernels (:mod:`sessionrec.models.knn_kernels`), which index
without bounds checks, ever read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sessionrec._errors import ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.models import knn_kernels as kernels
from sessionrec.models.knn_kernels import KnnIndex, KnnWeights


@dataclass(frozen=True)
class Scoring:
    """What a model class decides: the kernel's switches and the factors of :class:`KnnWeights`.

    ``recency_lambda`` and ``position_lambda`` of 0 switch those decays off; ``idf`` is
    ``"add"`` for ``(1 + idf_lambda · idf)`` (V-SKNN, VSTAN) or ``"mul"`` for ``idf``
    (VMIS-kNN).
    """

    weighting: int
    similarity: int
    weighting_lambda: float = 1.0
    match_decay: int = kernels.D_SAME
    match_lambda: float = 1.0
    recency_lambda: float = 0.0
    position_lambda: float = 0.0
    idf: Literal["none", "add", "mul"] = "none"
    idf_lambda: float = 0.0


def make_weights(
    index: KnnIndex,
    scoring: Scoring,
    shares: tuple[float, float, float] = (1.0, 1.0, 1.0),
    type_weight: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> KnnWeights:
    """The precomputed per-session, per-item and per-distance factors (vectorised).

    ``shares``: what a neighbour's item counts by its strongest event type there (view,
    cart, purchase: the objective's :data:`~sessionrec.models.knn_objective.OBJECTIVE_SHARES`);
    ``type_weight``: the current session's item weight factors by type (the kernels apply
    them when a batch has types).
    """
    session = np.ones(index.sess_age.size, dtype=np.float64)
    if scoring.recency_lambda > 0:
        session *= np.exp(-index.sess_age / scoring.recency_lambda)
    if scoring.similarity == kernels.SIM_COSINE:
        session /= np.sqrt(np.maximum(np.diff(index.sess_indptr), 1))
    item = np.ones(index.idf.size, dtype=np.float64)
    if scoring.idf == "add":
        item += scoring.idf_lambda * index.idf
    elif scoring.idf == "mul":
        item = index.idf.copy()
    entry = item[index.sess_items]  # read in order while scoring, not scattered by item
    if shares != (1.0, 1.0, 1.0):
        entry = entry * np.asarray(shares, dtype=np.float64)[index.sess_types]
    longest = int(index.sess_positions.max()) if index.sess_positions.size else 0
    distance = np.ones(longest + 1, dtype=np.float64)
    if scoring.position_lambda > 0:
        distance = np.exp(-np.arange(longest + 1) / scoring.position_lambda)
    return KnnWeights(
        session=session,
        entry=entry,
        distance=distance,
        type_weight=np.asarray(type_weight, dtype=np.float64),
    )


def build_index(
    train: SessionData, sample_size: int, types: np.ndarray | None = None
) -> tuple[KnnIndex, np.ndarray]:
    """The posting lists and session store of ``train`` (vectorised, no loop per click).

    ``types``: canonical event type codes of ``train``'s clicks (``None``: all views); the
    store keeps each (session, item)'s strongest. Returns the index and, for every kept
    session number, the index of that session in ``train`` (a session is kept when some
    truncated posting list still refers to it).
    """
    n_items, n_sessions = train.n_items, train.n_sessions
    lengths = train.lengths
    if train.times is not None:
        end = np.nan_to_num(train.end_times(), nan=-np.inf)
        by_recency = np.lexsort((np.arange(n_sessions), end))
    else:
        by_recency = np.arange(n_sessions)
    rank = np.empty(n_sessions, dtype=np.int64)
    rank[by_recency] = np.arange(n_sessions)

    click_rank = rank[train.session_index()]
    position = np.arange(train.n_events, dtype=np.int64) - np.repeat(train.offsets[:-1], lengths)
    position += 1
    items = train.items.astype(np.int64)

    # One pair per (session, item): the item's last click, sorted by (recency, item).
    key = click_rank * n_items + items
    by_key = np.lexsort((position, key))
    key_sorted = key[by_key]
    last = np.ones(by_key.size, dtype=bool)
    last[:-1] = key_sorted[1:] != key_sorted[:-1]
    pairs = by_key[last]
    pair_rank, pair_item, pair_pos = click_rank[pairs], items[pairs], position[pairs]
    if types is None or pairs.size == 0:
        pair_type = np.zeros(pairs.size, dtype=np.int8)
    else:  # the strongest event of each (session, item) group, groups in the order of pairs
        first = np.flatnonzero(np.concatenate([[True], last[:-1]]))
        pair_type = np.maximum.reduceat(np.asarray(types, dtype=np.int8)[by_key], first)

    # Posting lists, oldest first, truncated to the sample_size most recent sessions.
    by_item = np.lexsort((pair_rank, pair_item))
    df = np.bincount(pair_item, minlength=n_items).astype(np.int64)
    from_end = np.cumsum(df)[pair_item[by_item]] - 1 - np.arange(by_item.size)
    kept = by_item[from_end < sample_size]
    post_indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.minimum(df, sample_size), out=post_indptr[1:])

    # Keep only the sessions some list refers to, renumbered in recency order.
    referenced = np.zeros(n_sessions, dtype=bool)
    referenced[pair_rank[kept]] = True
    number = np.cumsum(referenced) - 1  # by rank
    kept_ranks = np.flatnonzero(referenced)
    in_store = referenced[pair_rank]
    sess_indptr = np.zeros(kept_ranks.size + 1, dtype=np.int64)
    np.cumsum(
        np.bincount(number[pair_rank[in_store]], minlength=kept_ranks.size),
        out=sess_indptr[1:],
    )
    idf = session_idf(df, int((lengths > 0).sum()))
    index = KnnIndex(
        post_indptr=post_indptr,
        post_sessions=number[pair_rank[kept]].astype(np.int32),
        post_positions=pair_pos[kept].astype(np.int32),
        sess_indptr=sess_indptr,
        sess_items=pair_item[in_store].astype(np.int32),
        sess_positions=pair_pos[in_store].astype(np.int32),
        sess_age=(n_sessions - 1 - kept_ranks).astype(np.float64),
        idf=idf.astype(np.float64),
        sess_types=pair_type[in_store].astype(np.int8),
    )
    return index, by_recency[kept_ranks].astype(np.int64)


def session_idf(df: np.ndarray, n_nonempty: int) -> np.ndarray:
    """``log(N / N_i)`` per item (``N`` sessions with a click, ``N_i`` of them containing the
    item), 0 for an item in no session."""
    with np.errstate(divide="ignore"):
        return np.where(df > 0, np.log(n_nonempty / np.maximum(df, 1)), 0.0)


def index_from_state(state: dict[str, np.ndarray], n_items: int) -> KnnIndex:
    """The index saved in a model folder, checked: the kernels trust it, so a damaged file
    must fail here, with the array it concerns."""
    m = n_items
    required = (set(KnnIndex._fields) - {"sess_types"}) | {"session_source", "popularity"}
    missing = sorted(required - set(state))
    if missing:
        raise ModelError(f"model state lacks arrays {missing}")
    dtypes = {
        "post_indptr": np.int64,
        "post_sessions": np.int32,
        "post_positions": np.int32,
        "sess_indptr": np.int64,
        "sess_items": np.int32,
        "sess_positions": np.int32,
        "sess_age": np.float64,
        "idf": np.float64,
    }
    arrays = {}
    for name, dtype in dtypes.items():
        value = np.asarray(state[name])
        if value.ndim != 1 or value.dtype.kind not in ("f" if dtype is np.float64 else "iu"):
            raise ModelError(f"model state: {name} must be a 1-d {np.dtype(dtype)} array")
        arrays[name] = np.ascontiguousarray(value, dtype=dtype)
    # A folder saved before event types were kept: every stored item a view.
    sess_types = np.asarray(state.get("sess_types", np.zeros(0, dtype=np.int8)))
    if sess_types.size == 0:
        sess_types = np.zeros(arrays["sess_items"].size, dtype=np.int8)
    if (
        sess_types.shape != arrays["sess_items"].shape
        or sess_types.dtype.kind not in "iu"
        or (sess_types.size and (sess_types.min() < 0 or sess_types.max() > 2))
    ):
        raise ModelError("model state: sess_types must hold a type code 0-2 per stored item")
    index = KnnIndex(**arrays, sess_types=np.ascontiguousarray(sess_types, dtype=np.int8))
    n_kept = index.sess_age.size
    _check_csr("post", index.post_indptr, m, index.post_sessions, n_kept)
    _check_csr("sess", index.sess_indptr, n_kept, index.sess_items, m)
    if index.post_positions.shape != index.post_sessions.shape or (
        index.sess_positions.shape != index.sess_items.shape
    ):
        raise ModelError("model state: positions must align with their CSR entries")
    if index.idf.shape != (m,) or not np.isfinite(index.idf).all():
        raise ModelError(f"model state: idf must hold {m} finite values")
    return index


def _check_csr(name: str, indptr: np.ndarray, rows: int, values: np.ndarray, bound: int) -> None:
    """A saved CSR structure: the kernels trust it, so a damaged file must fail here."""
    if indptr.shape != (rows + 1,) or indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise ModelError(
            f"model state: {name}_indptr must be non-decreasing from 0, {rows + 1} long"
        )
    if indptr[-1] != values.size:
        raise ModelError(f"model state: {name}_indptr must end at the number of entries")
    if values.size and (values.min() < 0 or values.max() >= bound):
        raise ModelError(f"model state: {name} entries must lie in [0, {bound})")
