"""Plain-text session formats used by the public benchmark folders.

``sessions-txt``: one session per line, space-separated item ids in click order, lines in
chronological order of the sessions (the SR-GNN benchmark files ``train_sessions.txt`` and
``test_sessions.txt``). Integer ids stay integers; any non-integer id makes the whole file's
ids strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from sessionrec._atomic import atomic_file
from sessionrec._errors import data_error
from sessionrec.data.sessions import ItemVocab, SessionData


def read_sessions_txt(path: str | Path, vocab: ItemVocab | None = None) -> SessionData:
    """Read a sessions-txt file into :class:`SessionData` (no timestamps).

    Without ``vocab``, the file's own items form the vocabulary (in order of first
    appearance). With one, every id must be in it. An empty line inside the file is an
    error naming the line: a benchmark file never has empty sessions, so one means damage.
    """
    file = Path(path)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise data_error(f"cannot read sessions file: {exc}", path=file) from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise data_error("file is empty: expected one session per line", path=file)
    sessions = [line.split() for line in lines]
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    if (lengths == 0).any():
        line = int(np.flatnonzero(lengths == 0)[0]) + 1
        raise data_error("empty session (blank line)", path=file, line=line)
    flat = np.array([item for session in sessions for item in session])
    ids: np.ndarray = flat
    if np.char.isdigit(np.char.lstrip(flat, "-")).all():
        ids = flat.astype(np.int64)
    if vocab is None:
        _, first = np.unique(ids, return_index=True)
        vocab = ItemVocab(ids[np.sort(first)])
    items = vocab.encode(ids if ids.dtype.kind in "iu" else ids.tolist())
    if (items < 0).any():
        pos = int(np.flatnonzero(items < 0)[0])
        line = int(np.searchsorted(np.cumsum(lengths), pos, side="right")) + 1
        raise data_error(f"item '{flat[pos]}' is not in the vocabulary", path=file, line=line)
    offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return SessionData(offsets=offsets, items=items, vocab=vocab)


def write_sessions_txt(data: SessionData, path: str | Path) -> Path:
    """Write sessions as sessions-txt (external ids), atomically; returns the path.

    One line per session (an empty session is an empty line), ids separated by one space.
    The text is built column-wise with Polars (one string per click: the id and the space
    or newline after it), written to a temporary file in the same folder, fsynced and
    renamed over ``path``, so a reader sees the old file or the whole new one.
    """
    text = _sessions_txt_column(data)
    with atomic_file(path) as tmp:
        pl.DataFrame([text]).write_csv(
            tmp, include_header=False, quote_style="never", line_terminator=""
        )
    return Path(path)


def _sessions_txt_column(data: SessionData) -> pl.Series:
    """sessions-txt as one string per click: its id and the separator after it.

    The separator is a space inside a session and a newline after its last click; empty
    sessions add one more newline each (before the first click when they come first).
    Written with no row terminator, the strings concatenate to the file's text.
    """
    ends = data.offsets[1:]
    if data.n_events == 0:
        return pl.Series("text", ["\n" * data.n_sessions] if data.n_sessions else [])
    # How many sessions end right after each click (0: a space follows it).
    newlines = np.bincount(ends[ends > 0] - 1, minlength=data.n_events)
    counts = np.flatnonzero(np.bincount(newlines))  # distinct values: their sum <= n_sessions
    code = np.zeros(counts[-1] + 1, dtype=np.int64)
    code[counts] = np.arange(counts.size)
    separators = pl.Series([" " if k == 0 else "\n" * int(k) for k in counts], dtype=pl.String)
    ids = pl.Series(data.vocab.ids).gather(pl.Series(data.items)).cast(pl.String)
    lead = int(np.count_nonzero(ends == 0))  # empty sessions before the first click
    if lead:
        ids = ids.scatter(0, "\n" * lead + str(ids[0]))
    return (ids + separators.gather(pl.Series(code[newlines]))).alias("text")
