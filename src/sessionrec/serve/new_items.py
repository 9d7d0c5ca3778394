"""Products the model has never seen: a content neighbourhood from the catalog.

A product added today has catalog attributes but no clicks, so no model trained before
today can recommend it, and it would wait for the next retrain. With ``sessionrec serve
--catalog FILE --new-item-share S`` such items (in the catalog, unknown to the served
model) may take up to ``floor(S * k)`` places of an answer, at the end of the model's list,
when they are related to the session by their content:

- **category**: only new items of the categories of the session's items are candidates;
  the category of the most recent click weighs 1, the one before 1/2, then 1/3, ...;
- **attributes**: the share of the candidate's other text attributes (brand, colour, ...:
  every catalog column except the id, category, availability, name/title, price and
  popularity) whose value one of the session's items shares;
- **name**: the Jaccard overlap of the words of its name (or title) with the words of the
  session's items' names.

The content score is their sum over 3 (so in (0, 1]); it ranks the candidates (ties by
catalog order) and is the score the answer shows. Such items say ``source: "new_item"``
(and ``reason.kind = "new_item"`` with ``explain=true``). They obey the same rules as every
item: filters, availability, deny list, excluded and seen items.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from sessionrec.serve.catalog import Catalog

NAME_COLUMNS = ("name", "title")
NOT_CONTENT = frozenset(
    {"item_id", "price", "popularity", "popularity_rank", "available", "category", *NAME_COLUMNS}
)
"""Catalog columns that say nothing about what a product is like."""
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: object) -> frozenset[str]:
    """Lower-case words of a name (letters and digits)."""
    return frozenset(_WORD.findall(str(text).lower())) if text is not None else frozenset()


class NewItems:
    """The catalog items a model does not know, and their content neighbourhood."""

    def __init__(self, catalog: Catalog, rows: np.ndarray) -> None:
        """``rows``: the catalog rows of the items the model does not know."""
        self.catalog = catalog
        self.rows = np.asarray(rows, dtype=np.int64)
        self.by_category: dict[int, list[int]] = {}
        for row in self.rows.tolist():
            code = int(catalog.category[row])
            if code >= 0:
                self.by_category.setdefault(code, []).append(row)
        columns = catalog.attribute_columns
        self._names = next((columns[c] for c in NAME_COLUMNS if c in columns), None)
        self._content = {
            name: values
            for name, values in columns.items()
            if name not in NOT_CONTENT and all(isinstance(v, str) or v is None for v in values)
        }
        self._words: dict[int, frozenset[str]] = {}

    def __len__(self) -> int:
        return int(self.rows.size)

    def _name_words(self, row: int) -> frozenset[str]:
        cached = self._words.get(row)
        if cached is None:
            cached = words(self._names[row]) if self._names is not None else frozenset()
            self._words[row] = cached
        return cached

    def _attributes(self, row: int) -> set[tuple[str, str]]:
        return {(c, v[row]) for c, v in self._content.items() if v[row] is not None}

    def candidates(
        self,
        session: Sequence[str],
        need: int,
        allowed: Callable[[int], bool],
    ) -> list[tuple[str, float]]:
        """Up to ``need`` (item id, content score) for the session's external ids, best
        first; ``allowed(row)`` says whether the rules let a catalog row be shown."""
        if need <= 0 or not self.by_category:
            return []
        row_of = self.catalog.row_of
        session_rows = [row_of[i] for i in reversed(session) if i in row_of]
        weight: dict[int, float] = {}
        for row in session_rows:  # most recent first
            code = int(self.catalog.category[row])
            if code >= 0 and code not in weight:
                weight[code] = 1.0 / (len(weight) + 1)
        if not weight:
            return []
        attributes: set[tuple[str, str]] = set()
        names: set[str] = set()
        for row in session_rows:
            attributes |= self._attributes(row)
            names |= self._name_words(row)
        scored = []
        for code, category_weight in weight.items():
            for row in self.by_category.get(code, ()):
                if not allowed(row):
                    continue
                own = self._attributes(row)
                shared = len(own & attributes) / len(own) if own else 0.0
                title = self._name_words(row)
                union = len(title | names)
                overlap = len(title & names) / union if union else 0.0
                scored.append(((category_weight + shared + overlap) / 3.0, row))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [(self.catalog.ids[row], score) for score, row in scored[:need]]
