"""Numba kernels of the session-kNN family (:mod:`sessionrec.models.knn`).

One scoring pipeline serves all five models; :class:`KernelConfig` switches its parts on and
off. For one session it runs, touching only the session's neighbour candidates:

1. **Profile** the session: its distinct items, most recent first, each with the position of
   its last click and a weight from that position (:func:`position_weight`).
2. **Candidates**: the ``sample_size`` most recent training sessions that share an item with
   it, found by merging the items' posting lists from their recent ends with a small heap.
   The merge also yields, per candidate, the summed weights of the shared items, their
   number, the most recent shared click of the session and the last position of a shared
   item inside the candidate.
3. **Neighbours**: similarity (dot product / cosine / Jaccard, times an optional recency decay
   of the candidate) and the ``k`` most similar with a positive similarity, ties to the
   more recent session.
4. **Item scores**: every distinct item of every neighbour receives the neighbour's similarity,
   times optional factors (decay by the session click that matched, distance to the match
   inside the neighbour, IDF), accumulated in float64 in a small open-addressing hash table.

Factors that depend only on a training session or an item (recency decay, cosine norm, IDF)
or on a small integer (distance to the match) are precomputed once per model in
:class:`KnnWeights`, so the inner loops multiply instead of calling ``exp`` and ``sqrt``.

The batch entry points fill dense score rows (``score``), select the top ``n`` items
(``top_k``) or compute pessimistic target ranks (fast evaluation). They share step 1-4, so
their values agree exactly. A session whose pipeline scores no item at all (for example, one
made only of unknown items) takes the popularity fallback in all three.

Every kernel allocates its own scratch memory, so concurrent calls (``nogil``) are safe.

Index layout (see :class:`KnnIndex`): training sessions are renumbered by recency (0 = the
oldest session kept), so "more recent" is "larger number" and posting lists sorted by number
are sorted by recency.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

# Position weights of the current session's items (d = clicks back from the last click,
# L = number of clicks considered): the ``weighting`` of V-SKNN and the λ1 of STAN.
W_SAME = 0  # 1
W_LINEAR = 1  # max(0, 1 - 0.1 d)
W_DIV = 2  # (L - d) / L  (session-rec "div", the π of VMIS-kNN)
W_QUADRATIC = 3  # ((L - d) / L) ** 2
W_LOG = 4  # 1 / log10(d + 1.7)
W_EXP = 5  # exp(-d / λ)

# Decays of a neighbour by the step (1 = last click) of the most recent session click it
# contains: the ``weighting_score`` of V-SKNN, the λ_ipw of VSTAN, the λ of VMIS-kNN.
D_SAME = 0  # 1
D_LINEAR = 1  # max(0, 1 - 0.1 step)
D_DIV = 2  # 1 / step
D_QUADRATIC = 3  # 1 / step ** 2
D_LOG = 4  # 1 / log10(step + 1.7)
D_EXP = 5  # exp(-(step - 1) / λ)

SIM_VEC = 0  # dot product / number of distinct session items
SIM_COSINE = 1  # dot product / sqrt(sum of squared session weights * neighbour size)
SIM_JACCARD = 2  # shared items / (session items + neighbour items - shared items)

# Objectives (:mod:`sessionrec.models.knn_objective`): for O_CART and O_PURCHASE the session's
# carted, not purchased items rank first. Event type codes: views, carts, purchases.
O_CLICK = 0
O_CART = 1
O_PURCHASE = 2
T_CART = 1
T_PURCHASE = 2


class KernelConfig(NamedTuple):
    """The scalar settings of one model (built by the model classes, never by users)."""

    k: int
    sample_size: int
    last_n: int  # 0 = every click of the session
    weighting: int  # W_*
    weighting_lambda: float  # λ of W_EXP
    similarity: int  # SIM_*
    match_decay: int  # D_*
    match_lambda: float  # λ of D_EXP
    objective: int  # O_*


class KnnIndex(NamedTuple):
    """The learned arrays (see the module docstring for the session numbering).

    ``post_*``: per item (CSR over items), the training sessions containing it, oldest
    first, at most ``sample_size`` of the most recent, with the item's last click position
    (1-based) inside each. ``sess_*``: per kept session (CSR over sessions), its distinct
    items (ascending) with their last click positions. ``sess_age``: how many training
    sessions are more recent. ``idf``: ``log(n_sessions / sessions containing the item)``.
    """

    post_indptr: np.ndarray  # int64 [n_items + 1]
    post_sessions: np.ndarray  # int32
    post_positions: np.ndarray  # int32
    sess_indptr: np.ndarray  # int64 [n_kept + 1]
    sess_items: np.ndarray  # int32
    sess_positions: np.ndarray  # int32
    sess_age: np.ndarray  # float64 [n_kept]
    idf: np.ndarray  # float64 [n_items]
    # int8, aligned with sess_items: the item's strongest event type in the session (0 view,
    # 1 cart, 2 purchase); empty in an index built without types (all views).
    sess_types: np.ndarray = np.zeros(0, dtype=np.int8)


class KnnWeights(NamedTuple):
    """Factors derived from the index and the hyperparameters (recomputed, never saved).

    Precomputing them keeps ``exp``/``sqrt`` and scattered reads out of the inner loops.
    """

    session: np.ndarray  # float64 [n_kept]: recency decay × the neighbour's cosine norm
    entry: np.ndarray  # float64 [len(sess_items)]: IDF × objective share of each stored item
    distance: np.ndarray  # float64 [max position + 1]: decay by |p(i, n) - p*| (1 = none)
    type_weight: np.ndarray  # float64 [3]: session item weight factor by event type code


# --------------------------------------------------------------------------- weights
@njit(cache=True, nogil=True)
def position_weight(code: int, d: int, length: int, lam: float) -> float:
    """Weight of a session item whose last click is ``d`` clicks before the last one."""
    if code == W_SAME:
        return 1.0
    if code == W_LINEAR:
        return max(0.0, 1.0 - 0.1 * d)
    if code == W_DIV:
        return (length - d) / length
    if code == W_QUADRATIC:
        w = (length - d) / length
        return w * w
    if code == W_LOG:
        return 1.0 / math.log10(d + 1.7)
    return math.exp(-d / lam)


@njit(cache=True, nogil=True)
def match_decay(code: int, step: int, lam: float) -> float:
    """Decay of a neighbour whose most recent match is the session click ``step`` (1 = last)."""
    if code == D_SAME:
        return 1.0
    if code == D_LINEAR:
        return max(0.0, 1.0 - 0.1 * step)
    if code == D_DIV:
        return 1.0 / step
    if code == D_QUADRATIC:
        return 1.0 / (step * step)
    if code == D_LOG:
        return 1.0 / math.log10(step + 1.7)
    return math.exp(-(step - 1) / lam)


@njit(cache=True, nogil=True)
def match_decays(steps: np.ndarray, code: int, lam: float) -> np.ndarray:
    """:func:`match_decay` of many steps in one call (explanations, outside the hot path)."""
    out = np.empty(steps.size, dtype=np.float64)
    for i in range(steps.size):
        out[i] = match_decay(code, steps[i], lam)
    return out


# ------------------------------------------------------------------- 1. session profile
@njit(cache=True, nogil=True)
def session_profile(
    clicks: np.ndarray, types: np.ndarray, cfg: KernelConfig, type_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Distinct items of a session, most recent first: (items, weights, last positions, L).

    Positions are 1-based over the ``L`` clicks considered (the last ``cfg.last_n``, or all);
    a repeated item keeps the position and weight of its last click. With ``types``
    (aligned with ``clicks``; empty = none) the weight is multiplied by ``type_weight`` of
    the item's strongest event among those clicks.
    """
    start = 0
    if cfg.last_n > 0 and clicks.size > cfg.last_n:
        start = clicks.size - cfg.last_n
    length = clicks.size - start
    typed = types.size > 0
    items = np.empty(length, dtype=np.int32)
    positions = np.empty(length, dtype=np.int64)
    kinds = np.zeros(length if typed else 0, dtype=np.int8)
    q = 0
    for t in range(clicks.size - 1, start - 1, -1):
        item = clicks[t]
        seen = -1
        for j in range(q):
            if items[j] == item:
                seen = j
                break
        if seen < 0:
            items[q] = item
            positions[q] = t - start + 1
            if typed:
                kinds[q] = types[t]
            q += 1
        elif typed and types[t] > kinds[seen]:
            kinds[seen] = types[t]
    weights = np.empty(q, dtype=np.float64)
    for j in range(q):
        d = length - positions[j]
        weights[j] = position_weight(cfg.weighting, d, length, cfg.weighting_lambda)
        if typed:
            weights[j] *= type_weight[kinds[j]]
    return items[:q], weights, positions[:q], length


# ------------------------------------------------------------------------ 2. candidates
@njit(cache=True, nogil=True)
def _sift_down(heap: np.ndarray, size: int, keys: np.ndarray, i: int) -> None:
    """Restore the max-heap property of ``heap[:size]`` (keys indexed by heap entries)."""
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        big = left
        if left + 1 < size and keys[heap[left + 1]] > keys[heap[left]]:
            big = left + 1
        if keys[heap[big]] <= keys[heap[i]]:
            return
        heap[i], heap[big] = heap[big], heap[i]
        i = big


@njit(cache=True, nogil=True)
def candidates(
    items: np.ndarray, weights: np.ndarray, index: KnnIndex, sample_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The ``sample_size`` most recent sessions sharing an item with the session.

    ``items``/``weights`` come from :func:`session_profile` (most recent first). Returns,
    most recent candidate first: session numbers, summed weights of the shared items,
    number of shared items, the profile index of the most recent shared item (its
    "match"), the last position of a shared item inside the candidate, and the count.
    """
    q = items.size
    head = np.empty(q, dtype=np.int64)  # next posting entry to read, moving backwards
    low = np.empty(q, dtype=np.int64)
    key = np.empty(q, dtype=np.int64)  # session number at the head of each list
    heap = np.empty(q, dtype=np.int64)
    size = 0
    for j in range(q):
        low[j] = index.post_indptr[items[j]]
        head[j] = index.post_indptr[items[j] + 1] - 1
        if head[j] >= low[j]:
            key[j] = index.post_sessions[head[j]]
            heap[size] = j
            size += 1
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(heap, size, key, i)

    sessions = np.empty(sample_size, dtype=np.int32)
    dot = np.zeros(sample_size, dtype=np.float64)
    shared = np.zeros(sample_size, dtype=np.int64)
    match = np.empty(sample_size, dtype=np.int64)
    last_pos = np.zeros(sample_size, dtype=np.int64)
    n = 0
    while size > 0:
        j = heap[0]
        session = key[j]
        if n == 0 or sessions[n - 1] != session:
            if n == sample_size:
                break
            sessions[n] = session
            match[n] = j
            n += 1
        c = n - 1
        dot[c] += weights[j]
        shared[c] += 1
        if j < match[c]:  # lower profile index = more recent session click
            match[c] = j
        pos = index.post_positions[head[j]]
        if pos > last_pos[c]:
            last_pos[c] = pos
        head[j] -= 1
        if head[j] >= low[j]:
            key[j] = index.post_sessions[head[j]]
        else:
            size -= 1
            heap[0] = heap[size]
        _sift_down(heap, size, key, 0)
    return sessions, dot, shared, match, last_pos, n


# ------------------------------------------------------------------------ 3. neighbours
@njit(cache=True, nogil=True)
def kth_largest(values: np.ndarray, k: int) -> float:
    """The ``k``-th largest of ``values`` (1-based), by quickselect on a copy.

    Hand-written rather than ``np.partition``, whose Numba implementation takes longer to
    compile than the rest of this module.
    """
    a = values.copy()
    target = a.size - k  # its index in ascending order
    lo, hi = 0, a.size - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    return a[target]


@njit(cache=True, nogil=True)
def neighbors(
    clicks: np.ndarray,
    types: np.ndarray,
    cfg: KernelConfig,
    index: KnnIndex,
    weights: KnnWeights,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The session's neighbours, most recent first: (sessions, similarities, steps, p*).

    ``steps[i]`` is the step (1 = last click) of the most recent session click whose item
    neighbour ``i`` contains; ``p*`` the last position in the neighbour of an item it
    shares with the session.
    """
    items, item_weights, positions, length = session_profile(
        clicks, types, cfg, weights.type_weight
    )
    sessions, dot, shared, match, last_pos, n = candidates(
        items, item_weights, index, cfg.sample_size
    )
    q = items.size
    scale = 1.0  # the session's part of the similarity: the same for every candidate
    if cfg.similarity == SIM_VEC:
        scale = 1.0 / max(q, 1)
    elif cfg.similarity == SIM_COSINE:
        norm = 0.0
        for j in range(q):
            norm += item_weights[j] * item_weights[j]
        scale = 1.0 / math.sqrt(norm) if norm > 0 else 0.0
    sims = np.empty(n, dtype=np.float64)
    n_pos = 0
    for c in range(n):
        s = sessions[c]
        if cfg.similarity == SIM_JACCARD:
            size = index.sess_indptr[s + 1] - index.sess_indptr[s]
            sim = shared[c] / (q + size - shared[c])
        else:
            sim = dot[c] * scale
        sim *= weights.session[s]
        sims[c] = sim
        if sim > 0:
            n_pos += 1

    keep = np.zeros(n, dtype=np.bool_)
    if n_pos <= cfg.k:
        for c in range(n):
            keep[c] = sims[c] > 0
    else:
        # The k-th largest similarity; ties at it go to the more recent (earlier) candidates.
        threshold = kth_largest(sims, cfg.k)
        taken = 0
        for c in range(n):
            if sims[c] > threshold:
                keep[c] = True
                taken += 1
        for c in range(n):
            if taken == cfg.k:
                break
            if sims[c] == threshold:
                keep[c] = True
                taken += 1
    count = 0
    for c in range(n):
        if keep[c]:
            count += 1
    out_sessions = np.empty(count, dtype=np.int32)
    out_sims = np.empty(count, dtype=np.float64)
    out_steps = np.empty(count, dtype=np.int64)
    out_pstar = np.empty(count, dtype=np.int64)
    i = 0
    for c in range(n):
        if keep[c]:
            out_sessions[i] = sessions[c]
            out_sims[i] = sims[c]
            out_steps[i] = length - positions[match[c]] + 1
            out_pstar[i] = last_pos[c]
            i += 1
    return out_sessions, out_sims, out_steps, out_pstar


# ----------------------------------------------------------------------- 4. item scores
@njit(cache=True, nogil=True)
def _slot(keys: np.ndarray, item: int, bits: int, mask: int) -> np.int64:
    """The hash table cell of ``item``: where it is, or the empty cell it goes to."""
    slot = ((np.int64(item) * 2654435761) & 0xFFFFFFFF) >> (32 - bits)
    while keys[slot] != item and keys[slot] >= 0:
        slot = (slot + 1) & mask
    return slot


@njit(cache=True, nogil=True)
def _boost_session_items(
    clicks: np.ndarray, types: np.ndarray, keys: np.ndarray, sums: np.ndarray, bits: int
) -> None:
    """Put the session's own items above every item new to it (``top`` = the best neighbour
    score, 1 when there is none): its carted, never purchased items first, the most recently
    carted at ``4 top``, the next at ``3.5 top``, then ``3.33 top``, ...; then its items only
    viewed, at ``top`` plus their neighbour score. Purchased items keep their neighbour
    score (an item is rarely bought twice)."""
    mask = (1 << bits) - 1
    top = 0.0
    for cell in range(keys.size):
        if keys[cell] >= 0 and sums[cell] > top:
            top = sums[cell]
    if top <= 0.0:
        top = 1.0
    rank = 0
    for t in range(clicks.size - 1, -1, -1):
        item = clicks[t]
        strongest = types[t]
        later = False
        for u in range(clicks.size):
            if clicks[u] == item:
                if types[u] > strongest:
                    strongest = types[u]
                if u > t:
                    later = True
        if later or strongest == T_PURCHASE:
            continue  # each item once, at its last click; bought items as they are
        slot = _slot(keys, item, bits, mask)
        if keys[slot] < 0:
            keys[slot] = item
            sums[slot] = 0.0
        if strongest == T_CART:
            sums[slot] = top * (3.0 + 1.0 / (rank + 1))
            rank += 1
        else:
            sums[slot] = top + sums[slot]


@njit(cache=True, nogil=True)
def session_scores(
    clicks: np.ndarray,
    types: np.ndarray,
    cfg: KernelConfig,
    index: KnnIndex,
    weights: KnnWeights,
) -> tuple[np.ndarray, np.ndarray]:
    """Scored items of one session, in no particular order: (items, float64 scores).

    Empty when no neighbour contributes (the caller's popularity fallback). Each item's
    score is summed over the neighbours in the order :func:`neighbors` returns them. For a
    cart or purchase objective with ``types`` given, the session's carted items then go to
    the top (:func:`_boost_session_items`).
    """
    sessions, sims, steps, pstar = neighbors(clicks, types, cfg, index, weights)
    boost = cfg.objective != O_CLICK and types.size > 0
    bound = clicks.size if boost else 0
    for i in range(sessions.size):
        s = sessions[i]
        bound += index.sess_indptr[s + 1] - index.sess_indptr[s]
    # Open addressing with linear probing, at most half full; Fibonacci hashing on the
    # high bits of a 32-bit product spreads neighbouring item indices.
    bits = 4
    while (1 << bits) < 2 * bound:
        bits += 1
    mask = (1 << bits) - 1
    keys = np.full(1 << bits, -1, dtype=np.int32)
    sums = np.zeros(1 << bits, dtype=np.float64)
    for i in range(sessions.size):
        base = sims[i] * match_decay(cfg.match_decay, steps[i], cfg.match_lambda)
        if base == 0.0:
            continue
        s = sessions[i]
        for e in range(index.sess_indptr[s], index.sess_indptr[s + 1]):
            item = index.sess_items[e]
            distance = abs(index.sess_positions[e] - pstar[i])
            value = base * weights.distance[distance] * weights.entry[e]
            slot = _slot(keys, item, bits, mask)
            keys[slot] = item
            sums[slot] += value
    if boost:
        _boost_session_items(clicks, types, keys, sums, bits)
    n_out = 0
    for cell in range(keys.size):
        if keys[cell] >= 0:
            n_out += 1
    out_items = np.empty(n_out, dtype=np.int32)
    out_scores = np.empty(n_out, dtype=np.float64)
    n_out = 0
    for cell in range(keys.size):
        if keys[cell] >= 0:
            out_items[n_out] = keys[cell]
            out_scores[n_out] = sums[cell]
            n_out += 1
    return out_items, out_scores


# ------------------------------------------------------------------- batch entry points
@njit(cache=True, nogil=True)
def _row_types(types: np.ndarray, offsets: np.ndarray, r: int) -> np.ndarray:
    """Row ``r``'s event types, or the empty array (no types) as it is."""
    if types.size == 0:
        return types
    return types[offsets[r] : offsets[r + 1]]


@njit(cache=True, nogil=True)
def score_dense(
    offsets: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    cfg: KernelConfig,
    index: KnnIndex,
    weights: KnnWeights,
    popularity: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """Fill ``out`` (float32 ``[n, n_items]``, preset to -inf); returns the fallback flags."""
    n = offsets.size - 1
    fallback = np.zeros(n, dtype=np.bool_)
    for r in range(n):
        scored, values = session_scores(
            items[offsets[r] : offsets[r + 1]], _row_types(types, offsets, r), cfg, index, weights
        )
        if scored.size == 0:
            fallback[r] = True
            out[r, :] = popularity
        else:
            for e in range(scored.size):
                out[r, scored[e]] = np.float32(values[e])
    return fallback


@njit(cache=True, nogil=True)
def _better(score_a: np.float32, item_a: int, score_b: np.float32, item_b: int) -> bool:
    """The ranking order: higher score first, then lower item index."""
    return bool(score_a > score_b or (score_a == score_b and item_a < item_b))


@njit(cache=True, nogil=True)
def _select(items: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` of (items, float32 scores), best first, with a bounded heap."""
    m = min(n, items.size)
    heap_items = np.empty(m, dtype=np.int64)  # heap_items[0] is the worst kept entry
    heap_scores = np.empty(m, dtype=np.float32)
    size = 0
    for e in range(items.size):
        item, score = items[e], scores[e]
        if size < m:
            i = size
            size += 1
            while i > 0:  # sift up: parents are worse than children
                parent = (i - 1) // 2
                if _better(heap_scores[parent], heap_items[parent], score, item):
                    heap_items[i], heap_scores[i] = heap_items[parent], heap_scores[parent]
                    i = parent
                else:
                    break
            heap_items[i], heap_scores[i] = item, score
        elif m > 0 and _better(score, item, heap_scores[0], heap_items[0]):
            i = 0
            while True:  # sift the new entry down from the root
                child = 2 * i + 1
                if child >= m:
                    break
                if child + 1 < m and _better(
                    heap_scores[child],
                    heap_items[child],
                    heap_scores[child + 1],
                    heap_items[child + 1],
                ):
                    child += 1
                if _better(score, item, heap_scores[child], heap_items[child]):
                    heap_items[i], heap_scores[i] = heap_items[child], heap_scores[child]
                    i = child
                else:
                    break
            heap_items[i], heap_scores[i] = item, score
    # Insertion sort, best first (m is small: the requested list length).
    for i in range(1, m):
        item, score = heap_items[i], heap_scores[i]
        j = i - 1
        while j >= 0 and _better(score, item, heap_scores[j], heap_items[j]):
            heap_items[j + 1], heap_scores[j + 1] = heap_items[j], heap_scores[j]
            j -= 1
        heap_items[j + 1], heap_scores[j + 1] = item, score
    return heap_items, heap_scores


@njit(cache=True, nogil=True)
def top_n(
    offsets: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    cfg: KernelConfig,
    index: KnnIndex,
    weights: KnnWeights,
    popularity: np.ndarray,
    popularity_order: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The best ``n`` items per session: (items [b, n], scores [b, n], counts, fallback)."""
    b = offsets.size - 1
    out_items = np.full((b, n), -1, dtype=np.int64)
    out_scores = np.full((b, n), -np.inf, dtype=np.float32)
    counts = np.zeros(b, dtype=np.int64)
    fallback = np.zeros(b, dtype=np.bool_)
    for r in range(b):
        scored, values = session_scores(
            items[offsets[r] : offsets[r + 1]], _row_types(types, offsets, r), cfg, index, weights
        )
        if scored.size == 0:
            fallback[r] = True
            m = min(n, popularity_order.size)
            for e in range(m):
                out_items[r, e] = popularity_order[e]
                out_scores[r, e] = popularity[popularity_order[e]]
            counts[r] = m
        else:
            best, best_scores = _select(scored, values.astype(np.float32), n)
            counts[r] = best.size
            out_items[r, : best.size] = best
            out_scores[r, : best.size] = best_scores
    return out_items, out_scores, counts, fallback


@njit(cache=True, nogil=True)
def target_ranks(
    offsets: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    targets: np.ndarray,
    cfg: KernelConfig,
    index: KnnIndex,
    weights: KnnWeights,
    popularity_rank: np.ndarray,
) -> np.ndarray:
    """Pessimistic 1-based rank of each session's target in its float32 scores; inf = miss.

    Equals ranking the target in the dense ``score`` row with pessimistic ties.
    """
    b = offsets.size - 1
    ranks = np.full(b, np.inf)
    for r in range(b):
        target = targets[r]
        if target < 0:
            continue
        scored, values = session_scores(
            items[offsets[r] : offsets[r + 1]], _row_types(types, offsets, r), cfg, index, weights
        )
        if scored.size == 0:
            ranks[r] = popularity_rank[target]
            continue
        found = -1
        for e in range(scored.size):
            if scored[e] == target:
                found = e
                break
        if found < 0:
            continue
        mine = np.float32(values[found])
        at_least = 0
        for e in range(scored.size):
            if np.float32(values[e]) >= mine:
                at_least += 1
        ranks[r] = at_least
    return ranks


@njit(cache=True, nogil=True)
def fallback_flags(
    offsets: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    cfg: KernelConfig,
    index: KnnIndex,
    weights: KnnWeights,
) -> np.ndarray:
    """True for every session whose scores come from the popularity fallback."""
    b = offsets.size - 1
    flags = np.zeros(b, dtype=np.bool_)
    for r in range(b):
        scored, _ = session_scores(
            items[offsets[r] : offsets[r + 1]], _row_types(types, offsets, r), cfg, index, weights
        )
        flags[r] = scored.size == 0
    return flags
