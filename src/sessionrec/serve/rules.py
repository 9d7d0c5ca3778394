"""Business rules applied *inside* the top-k search, and the fallback chain.

A shop never shows what it cannot sell (sold out, delisted, denied, wrong department) and a
visitor should not be offered what they just looked at. Filtering a finished top-k list
would silently return fewer than ``k`` items, so every rule acts before or during the
selection:

1. Each rule set (server policy + request filters) compiles once into a boolean mask over
   the model's internal item indices (cached: a shop has few distinct filter combinations).
2. :func:`search` asks the model for the top items of the session and applies the rules by
   *over-fetching*: ask for ``(k + number of excluded ids) / allowed_share`` items, keep the
   allowed ones that are not excluded (seen items, ``exclude_items``), and ask once more for
   four times as many if fewer than ``k`` survive and the model has more items with
   evidence. When the mask rules out most of the catalog, or two rounds were not enough,
   the disallowed items go to the model's ``exclude`` argument instead (masked before
   selection, one call). Every path returns exactly the top-k of the masked scores, with
   the contract's tie rule (score descending, then lower index): filtering an ordered list
   keeps its order.
3. If fewer than ``k`` items survive (empty session, only unknown items, a model without
   evidence, very strict filters), the list is completed by the fallback chain: the most
   popular allowed items of the categories of the session's items (most recent first; the
   catalog knows categories even of items the model never saw), then the most popular
   allowed items overall. With live click counts (``--trending-half-life``,
   :mod:`~sessionrec.serve.trending`), the items trending now come first in each of these
   lists (source ``trending`` overall). The answer is then flagged ``fallback: true`` and
   each item says where it came from (``source``: ``model``, ``category``, ``trending`` or
   ``popular``). An answer is also flagged when the model itself fell back to popularity
   for the session (:meth:`~sessionrec.models.base.Recommender.fallback_mask`: a kNN
   session without neighbours), though its items are the model's. Fallback items carry
   their normalised popularity (0..1] as score (trending items: their live count over the
   largest): comparable within one list, not with model scores.

Popularity for fallbacks comes from, in order: ``--popularity FILE`` (a sessions-txt
training file whose clicks are counted, or a table with ``item_id`` and ``count``), which
overrides; the training clicks per item every model folder keeps
(:meth:`~sessionrec.models.base.Recommender.training_counts`), so the fallback works with
no other file; for a folder saved before sessionrec kept them, the catalog's
``popularity`` column, or its ``popularity_rank`` column (1 = best seller). Without any of
these the fallback chain is empty and a warning says so at start-up.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError
from sessionrec.data.events.event_types import CANONICAL_EVENT_TYPES
from sessionrec.data.sessions import UNKNOWN, ItemVocab
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.serve.catalog import Catalog, encode_ids, safe_index
from sessionrec.serve.new_items import NewItems
from sessionrec.serve.trending import TrendingClicks

log = logging.getLogger("sessionrec.serve.rules")

OVERFETCH_MIN_ALLOWED_SHARE = 0.5
"""Below this share of allowed items, mask by exclusion in one call instead of over-fetching."""
OVERFETCH_ROUNDS = 2
"""Over-fetch attempts (the second asks for 4x more) before masking by exclusion instead."""
MASK_CACHE_SIZE = 64
"""Distinct filter combinations whose masks are kept per model (a mask is ~9 bytes per item
at worst, so the cache stays within ~25 MB for 43k items whatever clients send)."""
_MATCH_NOTHING = "\x00"
"""A category name no request can send (control characters are rejected): disjoint
include lists merge into ``{_MATCH_NOTHING}``, which allows no item."""
_NO_ITEMS = np.zeros(0, dtype=np.int64)
_NO_SCORES = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class TrendingOrder:
    """A :class:`~sessionrec.serve.trending.TrendingClicks` ranking in one model's indices."""

    version: int
    overall: np.ndarray
    """Model items with live clicks, most clicked (decayed) first."""
    by_category: list[np.ndarray]
    score: np.ndarray
    """Decayed count of every model item over the largest one, float32 (0 = no live click)."""


_TYPE_CODE = {name: code for code, name in enumerate(CANONICAL_EVENT_TYPES)}


def _batch_types(types: Sequence[str] | None, known: np.ndarray) -> dict[str, Any]:
    """The batch's event types when any click is not a view (a batch without types is all
    views, so the common case builds nothing)."""
    if types is None or len(types) != known.size or all(t == "view" for t in types):
        return {}
    codes = np.fromiter((_TYPE_CODE.get(t, 0) for t in types), dtype=np.int8, count=len(types))
    return {"types": codes[known], "event_types": CANONICAL_EVENT_TYPES}


# ------------------------------------------------------------------ policy
@dataclass(frozen=True)
class Filters:
    """One combination of category/availability rules (server policy and request merged)."""

    include_categories: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()
    available_only: bool = False

    @property
    def empty(self) -> bool:
        return not (self.include_categories or self.exclude_categories or self.available_only)

    def merge(self, other: Filters) -> Filters:
        """Both sets of rules at once: a request can narrow the server policy, never widen it."""
        if self.include_categories and other.include_categories:
            include = self.include_categories & other.include_categories
            if not include:  # disjoint includes: nothing may be shown
                include = frozenset({_MATCH_NOTHING})
        else:
            include = self.include_categories or other.include_categories
        return Filters(
            include_categories=include,
            exclude_categories=self.exclude_categories | other.exclude_categories,
            available_only=self.available_only or other.available_only,
        )


@dataclass(frozen=True)
class Mask:
    """Allowed items of one filter combination, over a model's internal indices."""

    allowed: np.ndarray  # bool [n_items]
    disallowed: np.ndarray  # int64 indices
    allowed_share: float


@dataclass
class Ranked:
    """A finished list: external ids, scores and where each item came from."""

    items: list[str]
    scores: list[float]
    sources: list[str]
    indices: list[int]
    model_fallback: bool = False
    """The model answered with its own fallback (``Recommender.fallback_mask``), not its
    reading of the clicks: its items are still ``"model"`` items, but the answer is one."""

    @property
    def fallback(self) -> bool:
        """Whether any of the list is a fallback: the model's own, or the service's chain."""
        return self.model_fallback or any(s not in ("model", "new_item") for s in self.sources)


def search(
    model: Recommender,
    batch: SessionBatch,
    k: int,
    exclude: np.ndarray,
    mask: Mask | None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The top-``k`` (indices, scores) of one session with ``exclude`` and ``mask`` applied,
    and whether the model answered with its own fallback (``Recommender.fallback_mask``).

    Exactly the top-k of the scores with excluded and disallowed items set to ``-inf``
    (see the module docstring). The per-request exclusions are over-fetched too (ask for
    ``k + len(exclude)``, drop them): a handful of ids is cheaper to filter here than
    through the model's ``exclude`` argument, whose cost some models pay per call.
    """
    n = model.n_items
    if mask is not None and mask.allowed_share < OVERFETCH_MIN_ALLOWED_SHARE:
        combined = np.concatenate([exclude, mask.disallowed]) if exclude.size else mask.disallowed
        return _masked(model, batch, k, combined)
    blocked = set(exclude.tolist())
    wanted = k + len(blocked)
    if mask is None:
        fetch = min(n, wanted)
    else:
        fetch = min(n, math.ceil(wanted / max(mask.allowed_share, 1e-9) * 1.25) + 16)
    for _ in range(OVERFETCH_ROUNDS):
        found, fallback = model.top_k_with_fallback(batch, fetch)
        idx, scores = found[0]
        if mask is None and not blocked:
            return idx[:k], scores[:k], bool(fallback[0])
        keep = mask.allowed[idx] if mask is not None else np.ones(idx.size, dtype=bool)
        if blocked:
            for position, index in enumerate(idx.tolist()):
                if index in blocked:
                    keep[position] = False
        if int(keep.sum()) >= k or idx.size < fetch or fetch >= n:
            return idx[keep][:k], scores[keep][:k], bool(fallback[0])
        fetch = min(n, fetch * 4)
    # The allowed items sit deep in this session's ranking: mask them out before selection
    # rather than fetching ever longer lists (top-k cost grows with k).
    combined = np.concatenate([exclude, mask.disallowed]) if mask is not None else exclude
    return _masked(model, batch, k, combined)


def _masked(
    model: Recommender, batch: SessionBatch, k: int, blocked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    found, fallback = model.top_k_with_fallback(batch, k, [blocked])
    return found[0][0], found[0][1], bool(fallback[0])


class ItemRules:
    """Rules, popularity and categories aligned with one model's vocabulary.

    Built once per loaded model (in the loader's background thread), then read-only
    except for the mask cache, which a lock guards. ``base`` is the server policy.
    """

    def __init__(
        self,
        vocab: ItemVocab,
        *,
        catalog: Catalog | None = None,
        popularity: np.ndarray | None = None,
        base: Filters = Filters(),
        deny: Iterable[str] = (),
        unlisted: str = "exclude",
        previous: ItemRules | None = None,
    ) -> None:
        n = len(vocab)
        self.vocab = vocab
        self.n_items = n
        # External id text -> internal index: one dict lookup per id on the hot path
        # (numpy calls on 1-10 ids cost more than the lookups themselves).
        self._id_strings, self._index_of = _id_tables(vocab, previous)
        self.catalog = catalog
        self.base = base
        self.row = np.full(n, -1, dtype=np.int64)  # catalog row of each model item
        self.new_items: NewItems | None = None
        if catalog is not None:
            idx = encode_ids(vocab, list(catalog.ids))
            known = idx != UNKNOWN
            self.row[idx[known]] = np.flatnonzero(known)
            self.new_items = NewItems(catalog, np.flatnonzero(~known))
            unlisted_count = int((self.row < 0).sum())
            if unlisted_count:
                log.warning(
                    "%d of %d model items are not in the catalog; they are %s",
                    unlisted_count,
                    n,
                    "never recommended" if unlisted == "exclude" else "allowed",
                )
        listed = self.row >= 0
        self.category = np.where(
            listed, catalog.category[np.maximum(self.row, 0)] if catalog else -1, -1
        ).astype(np.int32)
        self.available = (
            np.where(listed, catalog.available[np.maximum(self.row, 0)], unlisted == "allow")
            if catalog is not None
            else np.ones(n, dtype=bool)
        )
        self.static_allowed = np.ones(n, dtype=bool)
        if catalog is not None and unlisted == "exclude":
            self.static_allowed &= listed
        deny = [str(item) for item in deny]
        self._deny = frozenset(deny)
        deny_idx = encode_ids(vocab, deny)
        self.static_allowed[deny_idx[deny_idx != UNKNOWN]] = False
        self._restrictive_static = not bool(self.static_allowed.all())

        if popularity is None and catalog is not None and catalog.popularity is not None:
            popularity = np.where(listed, catalog.popularity[np.maximum(self.row, 0)], 0.0)
        self.has_popularity = popularity is not None and bool(np.any(popularity > 0))
        pop = np.zeros(n) if popularity is None else np.asarray(popularity, dtype=np.float64)
        top = float(pop.max(initial=0.0))
        self.pop_score = (pop / top if top > 0 else pop).astype(np.float32)
        # Most popular first, ties by lower index; items never clicked are not "popular".
        order = np.lexsort((np.arange(n), -pop))
        self.global_order = order[pop[order] > 0].astype(np.int64)
        n_categories = len(catalog.category_names) if catalog is not None else 0
        cat_of = self.category[self.global_order]
        by_cat = np.argsort(cat_of, kind="stable")
        bounds = np.searchsorted(cat_of[by_cat], np.arange(n_categories + 1))
        self.category_order = [
            self.global_order[by_cat[bounds[c] : bounds[c + 1]]] for c in range(n_categories)
        ]
        self._category_code = (
            {name: i for i, name in enumerate(catalog.category_names)} if catalog else {}
        )
        self._masks: OrderedDict[Filters, Mask | None] = OrderedDict()
        self._lock = threading.Lock()
        self._trending: TrendingOrder | None = None

    # ------------------------------------------------------------- masks
    def check_filters(self, filters: Filters) -> None:
        """Category filters need a catalog; say so instead of silently ignoring them."""
        if (filters.include_categories or filters.exclude_categories) and self.catalog is None:
            raise ConfigError("category filters need a catalog: start the service with --catalog")

    def mask(self, request: Filters) -> Mask | None:
        """The mask of the server policy narrowed by ``request``; None when all is allowed."""
        filters = self.base.merge(request)
        with self._lock:
            if filters in self._masks:
                self._masks.move_to_end(filters)
                return self._masks[filters]
        mask = self._build_mask(filters)
        with self._lock:
            self._masks[filters] = mask
            while len(self._masks) > MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return mask

    def _build_mask(self, filters: Filters) -> Mask | None:
        if filters.empty and not self._restrictive_static:
            return None
        allowed = self.static_allowed.copy()
        if filters.available_only:
            allowed &= self.available
        if filters.include_categories:
            allowed &= np.isin(self.category, self._codes(filters.include_categories))
        if filters.exclude_categories:
            allowed &= ~np.isin(self.category, self._codes(filters.exclude_categories))
        share = float(allowed.mean()) if self.n_items else 0.0
        return Mask(allowed, np.flatnonzero(~allowed).astype(np.int64), share)

    def encode(self, ids: Sequence[str]) -> np.ndarray:
        """Internal indices (int64, UNKNOWN for unknown ids), as :meth:`ItemVocab.index`.

        Canonical ids hit the dict; anything else (``"007"`` for item 7, unknown ids) takes
        the vocabulary's own lenient lookup, so the result always equals ``vocab.index``.
        """
        get = self._index_of.get
        vocab = self.vocab
        out = []
        for text in ids:
            found = get(text)
            out.append(safe_index(vocab, text) if found is None else found)
        return np.array(out, dtype=np.int64)

    def _codes(self, names: Iterable[str]) -> np.ndarray:
        """Category codes of names; unknown names match nothing."""
        codes = [self._category_code[n] for n in names if n in self._category_code]
        return np.asarray(codes, dtype=np.int32)

    # ---------------------------------------------------------- sessions
    def session_categories(self, items: Sequence[str], limit: int = 5) -> list[int]:
        """Category codes of the session's items, most recent first, without repeats.

        Looked up in the catalog by external id, so items the model never saw (new
        products) still lead to their category's best sellers.
        """
        if self.catalog is None:
            return []
        out: list[int] = []
        row_of = self.catalog.row_of
        for item in reversed(items):
            row = row_of.get(item)
            if row is None:
                continue
            code = int(self.catalog.category[row])
            if code >= 0 and code not in out:
                out.append(code)
                if len(out) >= limit:
                    break
        return out

    def category_name(self, index: int) -> str | None:
        code = int(self.category[index])
        return self.catalog.category_names[code] if code >= 0 and self.catalog else None

    def details(self, index: int, item_id: str | None = None) -> dict[str, Any]:
        """Catalog fields of one model item (``details=true``); ``index`` -1: the catalog
        item ``item_id`` the model does not know (a new item)."""
        if self.catalog is None:
            return {}
        row = int(self.row[index]) if index >= 0 else self.catalog.row_of.get(item_id or "", -1)
        if row < 0:
            return {}
        code = int(self.catalog.category[row])
        return {
            "category": self.catalog.category_names[code] if code >= 0 else None,
            "available": bool(self.catalog.available[row]),
            "attributes": self.catalog.attributes(row),
        }

    # ---------------------------------------------------------- fallback
    def trending_order(self, trending: TrendingClicks) -> TrendingOrder:
        """``trending``'s current ranking in this model's indices (cached by its version;
        items the model does not know are left out: it cannot list them)."""
        ranking = trending.ranking()
        cached = self._trending
        if cached is not None and cached.version == trending.version:
            return cached
        get = self._index_of.get
        indices = [get(item, -1) for item, _ in ranking]
        known = [(i, count) for i, (_, count) in zip(indices, ranking, strict=True) if i >= 0]
        overall = np.array([i for i, _ in known], dtype=np.int64)
        score = np.zeros(self.n_items, dtype=np.float32)
        if known:
            score[overall] = np.array([c for _, c in known]) / known[0][1]
        cat_of = self.category[overall]
        by_category = [overall[cat_of == c] for c in range(len(self.category_order))]
        order = TrendingOrder(trending.version, overall, by_category, score)
        self._trending = order  # one reference swap: readers see the old or the new one
        return order

    def fallback(
        self,
        need: int,
        categories: Sequence[int],
        blocked: np.ndarray,
        mask: Mask | None,
        trending: TrendingOrder | None = None,
    ) -> tuple[list[int], list[str]]:
        """Up to ``need`` popular items: the session's categories first, then everything;
        with ``trending``, the items trending now before the all-time best sellers, in the
        categories and overall.

        ``blocked`` holds indices never to return (seen, excluded, already listed).
        """
        picked: list[int] = []
        sources: list[str] = []
        taken = set(blocked.tolist())
        orders: list[tuple[np.ndarray, str]] = []
        for c in categories:
            if trending is not None:
                orders.append((trending.by_category[c], "category"))
            orders.append((self.category_order[c], "category"))
        if trending is not None:
            orders.append((trending.overall, "trending"))
        orders.append((self.global_order, "popular"))
        for order, source in orders:
            start = 0
            chunk = max(4 * need, 64)
            while len(picked) < need and start < order.size:
                candidates = order[start : start + chunk]
                start += chunk
                if mask is not None:
                    candidates = candidates[mask.allowed[candidates]]
                for index in candidates.tolist():
                    if index not in taken:
                        taken.add(index)
                        picked.append(index)
                        sources.append(source)
                        if len(picked) >= need:
                            break
            if len(picked) >= need:
                break
        return picked, sources

    # --------------------------------------------------------- new items
    def _new_items(
        self,
        items: Sequence[str],
        k: int,
        share: float,
        filters: Filters,
        exclude_seen: bool,
        exclude_items: Sequence[str],
    ) -> list[tuple[str, float]]:
        """The new catalog items (unknown to the model) the answer shows, with scores."""
        places = math.floor(share * k + 1e-9)
        if places <= 0 or self.new_items is None or not len(self.new_items):
            return []
        assert self.catalog is not None
        catalog = self.catalog
        rules = self.base.merge(filters)
        blocked = set(self._deny).union(exclude_items)
        if exclude_seen:
            blocked.update(items)
        include = set(self._codes(rules.include_categories).tolist())
        exclude = set(self._codes(rules.exclude_categories).tolist())

        def allowed(row: int) -> bool:
            if catalog.ids[row] in blocked:
                return False
            if rules.available_only and not catalog.available[row]:
                return False
            code = int(catalog.category[row])
            if rules.include_categories and code not in include:
                return False
            return code not in exclude

        return self.new_items.candidates(items, places, allowed)

    # ---------------------------------------------------------- the list
    def recommend(
        self,
        model: Recommender,
        items: Sequence[str],
        k: int,
        *,
        times: Sequence[float] | None = None,
        types: Sequence[str] | None = None,
        exclude_seen: bool = True,
        exclude_items: Sequence[str] = (),
        filters: Filters = Filters(),
        fallback: bool = True,
        trending: TrendingClicks | None = None,
        new_item_share: float = 0.0,
    ) -> Ranked:
        """The answer for one session given as external ids in click order.

        Unknown ids are dropped from the model's input (as in offline evaluation) but still
        count for ``exclude_seen`` and for the categories of the fallback. ``trending``:
        the live click counts the fallback chain ranks first (see
        :mod:`~sessionrec.serve.trending`). ``new_item_share``: at most ``floor(share * k)``
        places for catalog items the model does not know, related to the session by their
        content (:mod:`~sessionrec.serve.new_items`), after the model's items.
        """
        self.check_filters(filters)
        idx = self.encode(items)
        known = idx != UNKNOWN
        session = idx[known]
        parts = []
        if exclude_seen and session.size:
            parts.append(session)
        if exclude_items:
            extra = self.encode(exclude_items)
            parts.append(extra[extra != UNKNOWN])
        exclude = np.concatenate(parts) if parts else _NO_ITEMS
        mask = self.mask(filters)
        model_fallback = False
        if session.size == 0 and fallback:
            # Nothing the model knows: its answer could only be a generic fallback of its
            # own, so the service's chain (category-aware) answers directly.
            top, scores = _NO_ITEMS, _NO_SCORES
        else:
            batch_times = None
            if times is not None and len(times) == len(items):
                batch_times = np.asarray(times, dtype=np.float64)[known]
            batch = SessionBatch(
                offsets=np.array([0, session.size], dtype=np.int64),
                items=session.astype(np.int32),
                times=batch_times,
                **_batch_types(types, known),
            )
            # Known items can still leave a model with nothing to go on (a kNN session
            # without neighbours): it then scores by popularity, and the answer says so.
            top, scores, model_fallback = search(model, batch, k, exclude, mask)
        new = self._new_items(items, k, new_item_share, filters, exclude_seen, exclude_items)
        indices = top.tolist()[: k - len(new)]
        score_list = [float(s) for s in scores.tolist()[: len(indices)]]
        sources = ["model"] * len(indices)
        ids = [self._id_strings[i] for i in indices]
        for item, score in new:
            ids.append(item)
            score_list.append(score)
            sources.append("new_item")
            indices.append(-1)
        live = self.trending_order(trending) if trending is not None else None
        has_live = live is not None and live.overall.size > 0
        if fallback and len(ids) < k and (self.global_order.size or has_live):
            blocked = np.concatenate([exclude, top.astype(np.int64)])
            extra_idx, extra_sources = self.fallback(
                k - len(indices), self.session_categories(items), blocked, mask, live
            )
            indices.extend(extra_idx)
            ids.extend(self._id_strings[i] for i in extra_idx)
            sources.extend(extra_sources)
            # Each fallback item's score is its own list's: the live share for trending
            # items, the normalised all-time popularity otherwise.
            pop = self.pop_score[extra_idx].tolist()
            now = live.score[extra_idx].tolist() if live is not None else pop
            score_list.extend(
                float(t) if t > 0 else float(p) for t, p in zip(now, pop, strict=True)
            )
        return Ranked(
            items=ids,
            scores=score_list,
            sources=sources,
            indices=indices,
            model_fallback=model_fallback,
        )


def _id_tables(vocab: ItemVocab, previous: ItemRules | None) -> tuple[list[str], dict[str, int]]:
    """Each internal index's id as text, and the reverse lookup. A vocabulary that grew from
    ``previous``'s (live learning appends new items after the old ones) extends copies of
    its tables instead of building them again (a third of an update's time otherwise)."""
    old = len(previous.vocab) if previous is not None else -1
    if (
        previous is not None
        and old <= len(vocab)
        and previous.vocab.kind == vocab.kind
        and np.array_equal(vocab.ids[:old], previous.vocab.ids)
    ):
        if old == len(vocab):  # nothing new: the tables are never written to, so share them
            return previous._id_strings, previous._index_of
        added = [str(x) for x in vocab.ids[old:].tolist()]
        index = previous._index_of.copy()  # the serving rules keep theirs unchanged
        index.update({text: old + i for i, text in enumerate(added)})
        return previous._id_strings + added, index
    strings = [str(x) for x in vocab.ids.tolist()]
    return strings, {text: i for i, text in enumerate(strings)}
