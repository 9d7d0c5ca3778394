"""The two in-memory types every model sees: :class:`ItemVocab` and :class:`SessionData`.

Polars stops at the edge of ``sessionrec.data``: :meth:`SessionData.from_frame` turns a
canonical click frame (``session_id``, ``item_id`` and optionally ``timestamp`` and
``event_type``) into CSR numpy arrays of internal item indices, and models only ever see
those arrays. External item ids are translated exactly once, here, by the vocabulary.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from sessionrec._errors import DataError
from sessionrec.data.cleaning import dense_codes, session_blocks

ItemId = int | str
"""An external item id: what the shop calls the item (an integer or a string)."""

UNKNOWN = -1
"""Internal index given to an external id that is not in the vocabulary."""

_INTEGER_TEXT = re.compile(r"-?[0-9]+")  # text that an integer vocabulary reads as an id


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view: protects shared model state without touching the caller's flags."""
    view = array.view()
    view.flags.writeable = False
    return view


class ItemVocab:
    """A bijection between external item ids and internal indices ``0..n-1``.

    The ids are either all integers (``kind == "int"``) or all strings (``kind == "str"``).
    Lookups are lenient about the textual form of an id: ``"42"`` finds integer item 42
    and ``42`` finds string item ``"42"``, because ids arrive as text over HTTP and from
    the command line.
    """

    def __init__(self, ids: Sequence[ItemId] | np.ndarray) -> None:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise DataError("item ids must be a one-dimensional sequence")
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
            self.kind: Literal["int", "str"] = "int"
        elif arr.dtype.kind in "UO":
            arr = arr.astype(str)
            self.kind = "str"
        else:
            raise DataError(f"item ids must be integers or strings, not {arr.dtype}")
        self.ids: np.ndarray = _readonly(arr)
        if self.kind == "int":
            order = np.argsort(arr, kind="stable")
            self._sorted = arr[order]
            self._sorted_pos = order.astype(np.int64)
            dup = self._sorted[1:] == self._sorted[:-1]
            if dup.any():
                raise DataError(f"duplicate item id {self._sorted[1:][dup][0]!r} in vocabulary")
            self._index: dict[str, int] | None = None
        else:
            self._index = {item: i for i, item in enumerate(arr.tolist())}
            if len(self._index) != len(arr):
                raise DataError("duplicate item ids in vocabulary")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"ItemVocab({len(self)} {self.kind} ids)"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ItemVocab)
            and self.kind == other.kind
            and np.array_equal(self.ids, other.ids)
        )

    __hash__ = None  # type: ignore[assignment]

    def _normalise(self, item: Any) -> int | str | None:
        """Bring one external id to the vocabulary's kind, or None if it cannot be one."""
        if self.kind == "str":
            if isinstance(item, bool) or not isinstance(item, (str, int, np.integer, np.str_)):
                return None
            return str(item)
        if isinstance(item, bool):
            return None
        if isinstance(item, (int, np.integer)):
            return int(item)
        if isinstance(item, (str, np.str_)):
            text = str(item).strip()
            # ASCII digits with at most one leading minus: str.isdigit() accepts "²" (int()
            # fails) and "١٢" (int() reads 12), and "--5" is no integer at all.
            if _INTEGER_TEXT.fullmatch(text):
                return int(text)
        return None

    def index(self, item: Any) -> int:
        """The internal index of one external id, or :data:`UNKNOWN`."""
        key = self._normalise(item)
        if key is None:
            return UNKNOWN
        if self._index is not None:
            return self._index.get(str(key), UNKNOWN)
        pos = int(np.searchsorted(self._sorted, key))
        if pos < len(self._sorted) and self._sorted[pos] == key:
            return int(self._sorted_pos[pos])
        return UNKNOWN

    def __contains__(self, item: Any) -> bool:
        return self.index(item) != UNKNOWN

    def encode(self, items: Iterable[Any] | np.ndarray) -> np.ndarray:
        """Internal indices (int32) of many external ids; unknown ids become :data:`UNKNOWN`."""
        if isinstance(items, np.ndarray) and self.kind == "int" and items.dtype.kind in "iu":
            keys = items.astype(np.int64, copy=False)
            if len(self._sorted) == 0:
                return np.full(keys.shape, UNKNOWN, dtype=np.int32)
            pos = np.searchsorted(self._sorted, keys).clip(0, len(self._sorted) - 1)
            found = self._sorted[pos] == keys
            return np.where(found, self._sorted_pos[pos], UNKNOWN).astype(np.int32)
        return np.fromiter((self.index(x) for x in items), dtype=np.int32)

    def decode(self, indices: np.ndarray | Sequence[int]) -> list[ItemId]:
        """External ids (as Python ints or strs) of internal indices."""
        return self.ids[np.asarray(indices, dtype=np.int64)].tolist()

    def fingerprint(self) -> str:
        """A short content hash, stored in model manifests."""
        digest = hashlib.sha256(self.kind.encode())
        digest.update(np.ascontiguousarray(self.ids).tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class SessionData:
    """Sessions as CSR arrays of internal item indices, in chronological order of start.

    ``items[offsets[s]:offsets[s + 1]]`` are the clicks of session ``s`` in click order.
    ``times`` (Unix seconds, float64) and ``types`` (int8 codes into ``event_types``) are
    optional and aligned with ``items``. The event types of prepared and loaded data are
    the canonical ``view``, ``cart`` and ``purchase``
    (:data:`~sessionrec.data.events.event_types.CANONICAL_EVENT_TYPES`); ``types`` of
    ``None`` means every click is a view (:meth:`type_mask` reads both the same way).
    ``event_types`` holds the sorted names of the types that occur: look a type up by
    name, never by a fixed code. ``raw_types`` (int8 codes into ``raw_event_types``)
    keep the log's own words (``clicks``, ``pv``, ...) when it had them. Arrays are
    read-only views: a ``SessionData`` can be
    shared between threads and models, and never mutates the caller's arrays.
    """

    offsets: np.ndarray
    items: np.ndarray
    vocab: ItemVocab
    times: np.ndarray | None = None
    types: np.ndarray | None = None
    event_types: tuple[str, ...] = ()
    session_ids: np.ndarray | None = field(default=None)
    raw_types: np.ndarray | None = None
    raw_event_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.int64)
        items = np.asarray(self.items, dtype=np.int32)
        if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0:
            raise DataError("offsets must be a 1-d array starting at 0")
        if offsets[-1] != items.size or (np.diff(offsets) < 0).any():
            raise DataError("offsets must be non-decreasing and end at the number of clicks")
        if items.size and (items.min() < 0 or items.max() >= len(self.vocab)):
            raise DataError("item indices must lie in [0, len(vocab))")
        object.__setattr__(self, "offsets", _readonly(offsets))
        object.__setattr__(self, "items", _readonly(items))
        if self.times is not None:
            times = np.asarray(self.times, dtype=np.float64)
            if times.shape != items.shape:
                raise DataError("times must have one value per click")
            object.__setattr__(self, "times", _readonly(times))
        if self.types is not None:
            types = np.asarray(self.types, dtype=np.int8)
            if types.shape != items.shape:
                raise DataError("types must have one value per click")
            if types.size and (types.min() < 0 or types.max() >= len(self.event_types)):
                raise DataError("event type codes must index event_types")
            object.__setattr__(self, "types", _readonly(types))
        if self.raw_types is not None:
            raw = np.asarray(self.raw_types, dtype=np.int8)
            if raw.shape != items.shape:
                raise DataError("raw_types must have one value per click")
            if raw.size and (raw.min() < 0 or raw.max() >= len(self.raw_event_types)):
                raise DataError("raw event type codes must index raw_event_types")
            object.__setattr__(self, "raw_types", _readonly(raw))
        if self.session_ids is not None:
            sids = np.asarray(self.session_ids)
            if sids.shape != (offsets.size - 1,):
                raise DataError("session_ids must have one id per session")
            object.__setattr__(self, "session_ids", _readonly(sids))

    # ----------------------------------------------------------------- sizes
    @property
    def n_sessions(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def n_events(self) -> int:
        return int(self.items.shape[0])

    @property
    def n_items(self) -> int:
        """Size of the vocabulary (items that may occur), not of the items that do."""
        return len(self.vocab)

    def __len__(self) -> int:
        return self.n_sessions

    def __repr__(self) -> str:
        return (
            f"SessionData({self.n_sessions} sessions, {self.n_events} clicks, {self.n_items} items)"
        )

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session(self, s: int) -> np.ndarray:
        """Internal item indices of session ``s`` in click order."""
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for s in range(self.n_sessions):
            yield self.session(s)

    def session_index(self) -> np.ndarray:
        """For every click, the number of its session (int64, aligned with ``items``)."""
        return np.repeat(np.arange(self.n_sessions, dtype=np.int64), self.lengths)

    def start_times(self) -> np.ndarray:
        """Time of each session's first click (requires ``times``); NaN for empty sessions."""
        return self._reduce_times(np.minimum)

    def end_times(self) -> np.ndarray:
        """Time of each session's last click (requires ``times``); NaN for empty sessions."""
        return self._reduce_times(np.maximum)

    def _reduce_times(self, ufunc: np.ufunc) -> np.ndarray:
        if self.times is None:
            raise DataError("these sessions carry no timestamps")
        out = np.full(self.n_sessions, np.nan)
        nonempty = self.lengths > 0
        if self.n_events:
            out[nonempty] = ufunc.reduceat(self.times, self.offsets[:-1][nonempty])
        return out

    def type_mask(self, name: str) -> np.ndarray:
        """Which clicks have event type ``name`` (bool, aligned with ``items``).

        Sessions without types are all views: ``type_mask("view")`` is then all true.
        """
        if self.types is None:
            return np.full(self.n_events, name == "view", dtype=bool)
        if name not in self.event_types:
            return np.zeros(self.n_events, dtype=bool)
        return self.types == self.event_types.index(name)

    def item_counts(self) -> np.ndarray:
        """Clicks per item (int64, length ``n_items``)."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.int64)

    def fingerprint(self) -> str:
        """A short content hash of the clicks and the vocabulary (stored in model manifests)."""
        digest = hashlib.sha256(self.vocab.fingerprint().encode())
        digest.update(self.offsets.tobytes())
        digest.update(self.items.tobytes())
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------- reshaping
    def subset(self, sessions: np.ndarray | Sequence[int]) -> SessionData:
        """The given sessions (indices or a boolean mask), same vocabulary, order kept."""
        idx = np.asarray(sessions)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        lengths = self.lengths[idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        click = gather_ranges(self.offsets[idx], lengths)
        return SessionData(
            offsets=offsets,
            items=self.items[click],
            vocab=self.vocab,
            times=None if self.times is None else self.times[click],
            types=None if self.types is None else self.types[click],
            event_types=self.event_types,
            session_ids=None if self.session_ids is None else self.session_ids[idx],
            raw_types=None if self.raw_types is None else self.raw_types[click],
            raw_event_types=self.raw_event_types,
        )

    def with_vocab(self, vocab: ItemVocab) -> SessionData:
        """The same sessions re-indexed into another vocabulary; unknown clicks are removed.

        Returns the new data; the number of removed clicks is ``self.n_events - new.n_events``.
        """
        external = self.vocab.ids[self.items]
        new_items = vocab.encode(external)
        keep = new_items != UNKNOWN
        session_of = self.session_index()[keep]
        counts = np.bincount(session_of, minlength=self.n_sessions)
        offsets = np.zeros(self.n_sessions + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return SessionData(
            offsets=offsets,
            items=new_items[keep],
            vocab=vocab,
            times=None if self.times is None else self.times[keep],
            types=None if self.types is None else self.types[keep],
            event_types=self.event_types,
            session_ids=self.session_ids,
            raw_types=None if self.raw_types is None else self.raw_types[keep],
            raw_event_types=self.raw_event_types,
        )

    def compact_vocab(self) -> SessionData:
        """The same clicks re-indexed into a vocabulary of only the items they use.

        Items are numbered in order of first appearance and only the event types that
        occur are kept, exactly as :meth:`from_frame` numbers them when it builds these
        sessions from their own clicks, without the round trip through a frame. Use it
        after :meth:`subset` to give a part its own vocabulary.
        """
        n = self.n_events
        first = np.full(self.n_items, n, dtype=np.int64)
        np.minimum.at(first, self.items, np.arange(n, dtype=np.int64))
        used = np.flatnonzero(first < n)
        used = used[np.argsort(first[used], kind="stable")]
        remap = np.full(self.n_items, UNKNOWN, dtype=np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        types, event_types = _present_types(self.types, self.event_types)
        raw_types, raw_event_types = _present_types(self.raw_types, self.raw_event_types)
        return SessionData(
            offsets=self.offsets,
            items=remap[self.items],
            vocab=ItemVocab(self.vocab.ids[used]),
            times=self.times,
            types=types,
            event_types=event_types,
            session_ids=self.session_ids,
            raw_types=raw_types,
            raw_event_types=raw_event_types,
        )

    # ---------------------------------------------------------- construction
    @classmethod
    def from_sequences(
        cls,
        sessions: Sequence[Sequence[ItemId]],
        vocab: ItemVocab | None = None,
        times: Sequence[Sequence[float]] | None = None,
        types: Sequence[Sequence[str]] | None = None,
    ) -> SessionData:
        """Build from lists of external ids (small data, tests, the service).

        Without ``vocab`` one is made from the ids in order of first appearance; with one,
        an id it does not know raises :class:`DataError`. ``times`` and ``types`` (event
        type names such as ``"view"``, ``"cart"``, ``"purchase"``) give one value per click
        of every session; the types become codes into their sorted names, as the data
        layer stores them.
        """
        flat = [item for session in sessions for item in session]
        if vocab is None:
            vocab = ItemVocab(list(dict.fromkeys(flat)))
        items = vocab.encode(flat) if flat else np.zeros(0, dtype=np.int32)
        if (items == UNKNOWN).any():
            bad = flat[int(np.flatnonzero(items == UNKNOWN)[0])]
            raise DataError(f"item id {bad!r} is not in the vocabulary")
        lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
        offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat_times = None
        if times is not None:
            if [len(t) for t in times] != lengths.tolist():
                raise DataError("times must have one value per click of every session")
            flat_times = np.asarray([t for ts in times for t in ts], dtype=np.float64)
        codes: np.ndarray | None = None
        names: tuple[str, ...] = ()
        if types is not None:
            if [len(t) for t in types] != lengths.tolist():
                raise DataError("types must have one event type name per click of every session")
            flat_types = [str(name) for kinds in types for name in kinds]
            names = tuple(sorted(set(flat_types)))
            _check_type_count(names)
            lookup = {name: code for code, name in enumerate(names)}
            codes = np.fromiter((lookup[n] for n in flat_types), np.int8, len(flat_types))
        return cls(
            offsets=offsets,
            items=items,
            vocab=vocab,
            times=flat_times,
            types=codes,
            event_types=names,
        )

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, vocab: ItemVocab | None = None) -> SessionData:
        """Build from a canonical click frame.

        ``frame`` needs ``session_id`` and ``item_id``; ``timestamp`` (seconds),
        ``event_type`` and ``raw_event_type`` (text or a Polars ``Enum``) are used when
        present. Clicks are ordered by time within a session (file order breaks ties) and
        sessions by their first click (file order breaks ties). Without ``vocab`` one is
        built from the items in order of first appearance (in that final click order); with
        one, clicks on items it does not know raise :class:`DataError` (filter them first with
        :func:`sessionrec.data.split.restrict_items`). Event types become int8 codes into
        their sorted names; a missing (null) event type gets code 0.

        Two paths lead to the same result:

        * **Blocks (fast).** When every session's clicks are one contiguous run of rows,
          already in time order, with no missing session id, item id or timestamp and no
          NaN time (the frames :func:`~sessionrec.data.prepare.prepare` builds and the
          Parquet parts it writes), only the sessions are put in order of start time: one
          argsort over sessions and numpy gathers, no sort of the clicks.
        * **General.** Any other frame is joined with each session's start time and first
          row and sorted by (start, first row, time, row).

        Both encode integer ids spanning a moderate range through a lookup table.
        """
        for column in ("session_id", "item_id"):
            if column not in frame.columns:
                raise DataError(f"click frame has no '{column}' column (has {frame.columns})")
        data = cls._from_blocks(frame, vocab)
        return data if data is not None else cls._from_any_order(frame, vocab)

    @classmethod
    def _from_blocks(cls, frame: pl.DataFrame, vocab: ItemVocab | None) -> SessionData | None:
        """:meth:`from_frame`'s fast path; ``None`` when ``frame`` is not in time-ordered
        session blocks (then only the general path applies)."""
        if frame.height == 0 or frame["session_id"].null_count() or frame["item_id"].null_count():
            return None
        has_time = "timestamp" in frame.columns
        if has_time and frame["timestamp"].null_count():
            return None
        item_col = frame["item_id"]
        if item_col.dtype == pl.UInt64 and (item_col > np.iinfo(np.int64).max).any():
            return None  # ids beyond Int64: leave them to the general path's numpy cast
        starts = session_blocks(frame)
        if starts is None:
            return None
        n = frame.height
        lengths = np.diff(np.append(starts, n))
        times = frame["timestamp"].cast(pl.Float64).to_numpy() if has_time else None
        if times is not None:
            if np.isnan(times).any():  # NaN sorts last in the general path
                return None
            backwards = np.diff(times) < 0
            backwards[starts[1:] - 1] = False  # a new session may start earlier
            if backwards.any():
                return None
            order = np.argsort(times[starts], kind="stable")  # by start, then first row
        else:
            order = np.arange(starts.size)
        offsets = np.zeros(starts.size + 1, dtype=np.int64)
        np.cumsum(lengths[order], out=offsets[1:])
        rows: np.ndarray | None = None  # final click position -> frame row (None: same)
        if (order != np.arange(starts.size)).any():
            shift = np.repeat(starts[order] - offsets[:-1], lengths[order])
            rows = np.arange(n, dtype=np.int64) + shift

        def take(values: np.ndarray) -> np.ndarray:
            return values if rows is None else values[rows]

        if vocab is None:
            # Vocabulary = items in order of first appearance in the final click order.
            codes, k = dense_codes(item_col)
            codes = take(codes)
            first = np.full(k, n, dtype=np.int64)
            np.minimum.at(first, codes, np.arange(n, dtype=np.int64))
            first.sort()
            rank = np.empty(k, dtype=np.int32)
            rank[codes[first]] = np.arange(k, dtype=np.int32)
            items = rank[codes]
            source_rows = first if rows is None else rows[first]
            vocab = ItemVocab(item_col.gather(pl.Series(source_rows)).to_numpy())
        else:
            items = take(_encode_series(item_col, vocab))
            _check_known(items, lambda pos: item_col[pos if rows is None else int(rows[pos])])
        types = None
        event_types: tuple[str, ...] = ()
        if "event_type" in frame.columns:
            event_types, type_codes = _type_codes(frame["event_type"])
            types = take(type_codes)
        raw_types = None
        raw_event_types: tuple[str, ...] = ()
        if "raw_event_type" in frame.columns:
            raw_event_types, raw_codes = _type_codes(frame["raw_event_type"])
            raw_types = take(raw_codes)
        return cls(
            offsets=offsets,
            items=items,
            vocab=vocab,
            times=None if times is None else take(times),
            types=types,
            event_types=event_types,
            session_ids=frame["session_id"].to_numpy()[starts[order]],
            raw_types=raw_types,
            raw_event_types=raw_event_types,
        )

    @classmethod
    def _from_any_order(cls, frame: pl.DataFrame, vocab: ItemVocab | None) -> SessionData:
        """:meth:`from_frame`'s general path: a join and a sort of every click."""
        has_time = "timestamp" in frame.columns
        df = frame.with_row_index("_row")
        per_session = [pl.col("_row").min().alias("_first")]
        if has_time:
            per_session.append(pl.col("timestamp").min().alias("_start"))
        starts = df.group_by("session_id").agg(per_session)
        df = df.join(starts, on="session_id", how="left")
        order = ["_start", "_first", "timestamp", "_row"] if has_time else ["_first", "_row"]
        df = df.sort(order)
        first = df["_first"].to_numpy()
        if first.size:
            boundaries = np.flatnonzero(first[1:] != first[:-1]) + 1
            offsets = np.concatenate([[0], boundaries, [first.size]]).astype(np.int64)
        else:
            offsets = np.zeros(1, dtype=np.int64)
        item_col = df["item_id"]
        if vocab is None:
            vocab = ItemVocab(item_col.unique(maintain_order=True).to_numpy())
        items = _encode_series(item_col, vocab)
        _check_known(items, lambda pos: item_col[pos])
        times = df["timestamp"].cast(pl.Float64).to_numpy() if has_time else None
        types = None
        event_types: tuple[str, ...] = ()
        if "event_type" in df.columns:
            event_types, types = _type_codes(df["event_type"])
        raw_types = None
        raw_event_types: tuple[str, ...] = ()
        if "raw_event_type" in df.columns:
            raw_event_types, raw_types = _type_codes(df["raw_event_type"])
        session_ids = df["session_id"].to_numpy()[offsets[:-1]] if first.size else None
        return cls(
            offsets=offsets,
            items=items,
            vocab=vocab,
            times=times,
            types=types,
            event_types=event_types,
            session_ids=session_ids,
            raw_types=raw_types,
            raw_event_types=raw_event_types,
        )

    def to_frame(self) -> pl.DataFrame:
        """The canonical click frame (external ids), inverse of :meth:`from_frame`.

        Columns ``session_id`` (the session ids, or the session numbers ``0..n-1`` when
        there are none), ``item_id``, then ``timestamp``, ``event_type`` and
        ``raw_event_type`` (text) when present. Built with Polars gathers (no numpy
        string arrays, which are slow to hand to Polars).
        """
        index = pl.Series(self.session_index())
        session = index if self.session_ids is None else pl.Series(self.session_ids).gather(index)
        columns = [
            session.alias("session_id"),
            pl.Series(self.vocab.ids).gather(pl.Series(self.items)).alias("item_id"),
        ]
        if self.times is not None:
            columns.append(pl.Series("timestamp", self.times))
        if self.types is not None:
            names = pl.Series(list(self.event_types), dtype=pl.String)
            columns.append(names.gather(pl.Series(self.types)).alias("event_type"))
        if self.raw_types is not None:
            names = pl.Series(list(self.raw_event_types), dtype=pl.String)
            columns.append(names.gather(pl.Series(self.raw_types)).alias("raw_event_type"))
        return pl.DataFrame(columns)


def _check_known(items: np.ndarray, external: Callable[[int], Any]) -> None:
    """Raise for the first :data:`UNKNOWN` click; ``external(pos)`` is its external id."""
    unknown = np.flatnonzero(items == UNKNOWN)
    if unknown.size:
        raise DataError(f"item id {external(int(unknown[0]))!r} is not in the vocabulary")


def _encode_series(series: pl.Series, vocab: ItemVocab) -> np.ndarray:
    """Vectorised :meth:`ItemVocab.encode` for a Polars column (millions of ids).

    Integer ids spanning a moderate range go through a lookup table (O(n), no binary
    search), other integer ids through :meth:`ItemVocab.encode`, anything else through a
    Polars mapping of its text. Unknown ids become :data:`UNKNOWN`.
    """
    if vocab.kind == "int" and series.dtype.is_integer():
        if series.null_count():
            return vocab.encode(series.to_numpy())  # floats with NaN: the per-id path
        values = series.to_numpy().astype(np.int64, copy=False)
        ids = vocab.ids
        if len(ids) == 0 or values.size == 0:
            return vocab.encode(values)
        low, high = int(ids.min()), int(ids.max())
        if high - low + 1 > 4 * max(values.size, len(ids)) + (1 << 22):
            return vocab.encode(values)
        table = np.full(high - low + 1, UNKNOWN, dtype=np.int32)
        table[ids - low] = np.arange(len(ids), dtype=np.int32)
        inside = (values >= low) & (values <= high)
        if inside.all():
            return table[values - low]
        out = np.full(values.size, UNKNOWN, dtype=np.int32)
        out[inside] = table[values[inside] - low]
        return out
    keys = series.cast(pl.Utf8)
    mapping = dict(zip(vocab.ids.astype(str).tolist(), range(len(vocab)), strict=True))
    return keys.replace_strict(mapping, default=UNKNOWN, return_dtype=pl.Int32).to_numpy()


def _type_codes(column: pl.Series) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted names of the event types that occur, and int8 codes into them (null -> 0).

    An ``Enum`` column is coded from its physical codes without touching a string per
    click; anything else is cast to text and then to an ``Enum`` of its sorted names, whose
    physical codes are then the wanted ones.
    """
    if isinstance(column.dtype, pl.Enum):
        present = column.unique().drop_nulls().cast(pl.String).to_list()
        names = tuple(sorted(str(x) for x in present))
        _check_type_count(names)
        position = {name: i for i, name in enumerate(names)}
        categories = column.dtype.categories.to_list()
        remap = np.array([position.get(c, 0) for c in categories] or [0], dtype=np.int8)
        physical = column.to_physical()
        codes = remap[physical.fill_null(0).to_numpy()]
        if physical.null_count():
            codes[physical.is_null().to_numpy()] = 0
        return names, codes
    text = column.cast(pl.String)
    names = tuple(sorted(str(x) for x in text.unique().drop_nulls().to_list()))
    _check_type_count(names)
    codes = text.cast(pl.Enum(names)).to_physical().fill_null(0).cast(pl.Int8).to_numpy()
    return names, codes


def _present_types(
    types: np.ndarray | None, names: tuple[str, ...]
) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Codes and names of only the types that occur (the order of names kept)."""
    if types is None:
        return None, names
    present = np.flatnonzero(np.bincount(types, minlength=len(names)))
    type_map = np.zeros(len(names), dtype=np.int8)
    type_map[present] = np.arange(present.size, dtype=np.int8)
    return type_map[types], tuple(names[i] for i in present)


def _check_type_count(names: tuple[str, ...]) -> None:
    if len(names) > 127:
        raise DataError(f"too many distinct event types ({len(names)} > 127)")


def gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n): CSR row gathering."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    step = np.ones(total, dtype=np.int64)
    nonempty = lengths > 0
    first_pos = (ends - lengths)[nonempty]
    prev_end = np.concatenate([[0], (starts + lengths)[nonempty][:-1]])
    step[first_pos] = starts[nonempty] - prev_end + 1
    step[0] = starts[nonempty][0]
    return np.cumsum(step)
