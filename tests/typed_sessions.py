"""Typed sessions for the tests of event types, importable from every test folder
(``tests/`` is on the import path: its conftest lives there).

``typed`` builds sessions of (item, type code) pairs with the codes :data:`V`, :data:`C`,
:data:`P`, items indexed in sorted order; ``prepared_folder`` writes a click log of typed
rows and prepares it into a dataset folder as ``sessionrec prepare`` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from sessionrec.data.prepare import prepare, write_prepared
from sessionrec.data.sessions import ItemVocab, SessionData

V, C, P = 0, 1, 2
TYPE_NAMES = ("view", "cart", "purchase")  # by the codes above


def typed(sessions: list[list[tuple[str, int]]]) -> SessionData:
    """Sessions of (item, type code) pairs, items indexed in sorted order."""
    items = [[item for item, _ in s] for s in sessions]
    kinds = [[TYPE_NAMES[code] for _, code in s] for s in sessions]
    vocab = ItemVocab(sorted({i for s in items for i in s}))
    return SessionData.from_sequences(items, vocab, types=kinds)


def prepared_folder(rows: list[dict[str, Any]], tmp_path: Path) -> Path:
    """``rows`` (session_id, item_id, timestamp, event_type) prepared into ``tmp_path/shop``,
    the last day as the test period, every item and repeat kept."""
    log = tmp_path / "log.csv"
    pl.DataFrame(rows).write_csv(log)
    folder = tmp_path / "shop"
    write_prepared(prepare(log, min_item_support=1, test_days=1, dedupe=False), folder)
    return folder
