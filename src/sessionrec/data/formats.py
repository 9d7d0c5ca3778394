"""Plain-text session formats used by the public benchmark folders.

``sessions-txt``: one session per line, space-separated item ids in click order, lines in
chronological order of the sessions (the SR-GNN benchmark files ``train_sessions.txt`` and
``test_sessions.txt``). Integer ids stay integers; any non-integer id makes the whole file's
ids strings.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

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
    """Write sessions as sessions-txt (external ids), atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ids = data.vocab.ids[data.items].astype(str)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            for s in range(data.n_sessions):
                handle.write(" ".join(ids[data.offsets[s] : data.offsets[s + 1]]))
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
