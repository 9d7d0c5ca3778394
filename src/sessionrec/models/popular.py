"""Popularity baselines: global popularity (``pop``) and session popularity (``spop``).

Both are the usual sanity floors of session-based recommendation, as used in
Ludewig & Jannach (2018), "Evaluation of session-based recommendation algorithms",
User Modeling and User-Adapted Interaction 28(4-5), and in the SR-GNN (Wu et al., AAAI 2019)
comparison tables ("POP", "S-POP").

Deviations from the session-rec reference implementations (``pop.py``, ``spop.py``):

- Popularity is the raw number of training clicks, not normalised by the maximum
  (ranks are the same).
- Every item of the vocabulary gets a finite score, 0 for items without clicks; session-rec's
  S-POP keeps only the ``top_n`` most popular items and scores the others 0, we rank them all.
- No recency window (session-rec's ``last_n_days``): train on the sessions you want counted.
"""

from __future__ import annotations

import numpy as np

from sessionrec._errors import ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.models.base import Reason, Recommender, SessionBatch


def _check_item_vector(state: dict[str, np.ndarray], key: str, n_items: int) -> np.ndarray:
    """One per-item array from a saved state, checked for presence and length."""
    if key not in state:
        raise ModelError(f"model state has no array {key!r}")
    values = np.asarray(state[key])
    if values.shape != (n_items,) or values.dtype.kind not in "iuf":
        raise ModelError(
            f"model state array {key!r} must be numeric of shape ({n_items},), "
            f"got {values.dtype} {values.shape}"
        )
    return values


class Pop(Recommender):
    """Global popularity: the score of an item is its number of training clicks.

    The recommendation does not depend on the session. Items without clicks score 0, so
    every item of the vocabulary has a finite score (ties broken by lower internal index).
    """

    name = "pop"

    popularity_: np.ndarray
    """Training clicks per item (int64, length ``n_items``)."""

    def __init__(self) -> None:
        pass

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        self.popularity_ = train.item_counts()

    def training_counts(self) -> np.ndarray:
        self._check_fitted()
        return self.popularity_

    def score(self, batch: SessionBatch) -> np.ndarray:
        self._check_fitted()
        row = self.popularity_.astype(np.float32)
        return np.tile(row, (len(batch), 1))

    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """Kind ``"popular"``: the session plays no part in the score."""
        return [Reason("popular") for _ in targets]

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.popularity_ = _check_item_vector(state, "popularity", self.n_items).astype(np.int64)


class SessionPop(Recommender):
    """Session popularity: the session's own items first, by how often they were clicked in it.

    ``score = session_count + pop / (max_pop + 1)``, where ``session_count`` is the number of
    clicks on the item in the current session and ``pop`` its number of training clicks.
    The fraction lies in ``[0, 1)``, so items clicked more often in the session always come
    first, ties (and all items not in the session) are ordered by global popularity, and
    every item has a finite score. Scores are float32: when ``max_pop`` exceeds about
    ``2**23 / (1 + longest session)`` neighbouring popularity values may round to equal
    scores (ties, broken by lower index).
    """

    name = "spop"

    popularity_: np.ndarray
    """Training clicks per item (int64, length ``n_items``)."""

    def __init__(self) -> None:
        pass

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        self.popularity_ = train.item_counts()

    def training_counts(self) -> np.ndarray:
        self._check_fitted()
        return self.popularity_

    def _tiebreak(self) -> np.ndarray:
        """``pop / (max_pop + 1)`` in float64: the global-popularity part of the score."""
        pop = self.popularity_.astype(np.float64)
        return pop / (pop.max(initial=0.0) + 1.0)

    def score(self, batch: SessionBatch) -> np.ndarray:
        self._check_fitted()
        n, m = len(batch), self.n_items
        tiebreak = self._tiebreak()
        scores = np.tile(tiebreak.astype(np.float32), (n, 1))
        if batch.items.size:
            rows = np.repeat(np.arange(n, dtype=np.int64), batch.lengths)
            items = batch.items.astype(np.int64)
            cells, counts = np.unique(rows * m + items, return_counts=True)
            # Add in float64 and round once, so a count never swamps the popularity part
            # more than float32 itself requires.
            scores.flat[cells] = (counts + tiebreak[cells % m]).astype(np.float32)
        return scores

    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """Kind ``"popular"``; an item clicked in the session names itself, weighted by its
        number of clicks there (the integer part of its score)."""
        clicks = (session[None, :] == targets[:, None]).sum(axis=1).astype(np.float64)
        return [
            Reason("popular", ((name, count),) if count > 0 else ())
            for name, count in zip(self.vocab_.decode(targets), clicks.tolist(), strict=True)
        ]

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.popularity_ = _check_item_vector(state, "popularity", self.n_items).astype(np.int64)
