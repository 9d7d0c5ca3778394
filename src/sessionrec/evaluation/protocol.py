"""Evaluation protocols: which (prefix -> target) cases a test set gives, and how they are ranked.

- ``next``: every test session ``s`` of length ``n`` gives the cases ``s[:i] -> s[i]`` for
  ``i = 1..n-1`` (the GRU4Rec protocol: the next item at every position).
- ``benchmark``: the same cases, read from a folder holding ``train_sessions.txt`` and
  ``test_sessions.txt`` (the SR-GNN protocol of ``shared/data/README.md``).
- ``last``: only the last item of each session, ``s[:n-1] -> s[n-1]``.

Every target is ranked against the model's whole vocabulary (full ranking, no sampled
negatives), in memory-bounded batches. A target the model does not know, or scores ``-inf``,
is a miss. Ties count against the target by default (``ties="pessimistic"``): a constant
model then scores nothing instead of everything. Prefix items the model does not know are
dropped from its input; the case still counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError
from sessionrec._heap import reuse_freed_memory
from sessionrec._progress import progress
from sessionrec.data.formats import read_sessions_txt
from sessionrec.data.sessions import UNKNOWN, SessionData, gather_ranges
from sessionrec.evaluation import metrics
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.topk import rank_targets, select_top_k

log = logging.getLogger("sessionrec.evaluation")

Protocol = Literal["next", "benchmark", "last"]
Ties = Literal["pessimistic", "optimistic", "average"]
PROTOCOLS: tuple[str, ...] = ("next", "benchmark", "last")
TIES: tuple[str, ...] = ("pessimistic", "optimistic", "average")
SCORE_BUDGET_BYTES = 128 * 2**20
"""Memory for one batch of dense scores; bounds evaluation memory on large catalogs."""


@dataclass(frozen=True)
class Cases:
    """Evaluation cases: prefix ``items[start:start+length]`` -> target ``items[start+length]``."""

    starts: np.ndarray  # int64 [n_cases]: first click of the case's session
    lengths: np.ndarray  # int64 [n_cases]: prefix length (clicks before the target)
    sessions: np.ndarray  # int64 [n_cases]: test session the case comes from

    def __len__(self) -> int:
        return int(self.starts.shape[0])


def make_cases(test: SessionData, protocol: str = "next") -> Cases:
    """Enumerate the cases of ``protocol`` on ``test``, in session order then prefix length."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    lengths = test.lengths
    starts = test.offsets[:-1]
    if protocol == "last":
        sessions = np.flatnonzero(lengths >= 2).astype(np.int64)
        prefix = lengths[sessions] - 1
    else:
        per_session = np.maximum(lengths - 1, 0)
        sessions = np.repeat(np.arange(test.n_sessions, dtype=np.int64), per_session)
        first_case = np.cumsum(per_session) - per_session
        prefix = np.arange(sessions.size, dtype=np.int64) - np.repeat(first_case, per_session) + 1
    case_starts = starts[sessions]
    return Cases(
        starts=case_starts,
        lengths=prefix,
        sessions=sessions,
    )


@dataclass
class EvaluationResult:
    """Ranks, top-k lists and metrics of one model on one test set."""

    model: str
    protocol: str
    ties: str
    cutoffs: tuple[int, ...]
    ranks: np.ndarray  # float64 [n_cases], inf for a miss
    prefix_lengths: np.ndarray  # int64 [n_cases]
    top_items: np.ndarray  # int64 [n_cases, max cutoff], -1 padded (model's indices)
    top_scores: np.ndarray  # float32 [n_cases, max cutoff], -inf padded
    n_items: int
    predict_seconds: float
    fit_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_cases(self) -> int:
        return int(self.ranks.shape[0])

    def metrics(self, item_counts: np.ndarray | None = None) -> dict[str, Any]:
        """The metric dict: hr/mrr/ndcg in percent, coverage/popularity as fractions."""
        out: dict[str, Any] = {"n_cases": self.n_cases}
        for k in self.cutoffs:
            lists = metrics.truncate_lists(self.top_items, self.top_scores, k)
            out[f"hr@{k}"] = 100.0 * metrics.hit_rate(self.ranks, k)
            out[f"mrr@{k}"] = 100.0 * metrics.mrr(self.ranks, k)
            out[f"ndcg@{k}"] = 100.0 * metrics.ndcg(self.ranks, k)
            out[f"coverage@{k}"] = metrics.coverage(lists, self.n_items)
            if item_counts is not None:
                out[f"popularity@{k}"] = metrics.popularity(lists, item_counts)
        out["fit_seconds"] = self.fit_seconds
        out["predict_seconds"] = self.predict_seconds
        return out

    def by_length(self, k: int | None = None) -> dict[str, dict[str, float]]:
        return metrics.by_length(self.ranks, self.prefix_lengths, k or max(self.cutoffs))


@reuse_freed_memory()
def evaluate(
    model: Recommender,
    test: SessionData,
    *,
    protocol: str = "next",
    cutoffs: Sequence[int] = (5, 10, 20),
    ties: str = "pessimistic",
    batch_size: int | None = None,
    use_times: bool = True,
) -> EvaluationResult:
    """Rank every case's target against the model's whole vocabulary.

    ``test`` may use its own vocabulary (read straight from a file): its items are mapped to
    the model's, and unknown ones handled as described in the module docstring.
    """
    model._check_fitted()
    if ties not in TIES:
        raise ConfigError(f"unknown tie policy {ties!r}; choose one of {', '.join(TIES)}")
    cutoffs = tuple(sorted({int(k) for k in cutoffs}))
    if not cutoffs or cutoffs[0] <= 0:
        raise ConfigError(f"cutoffs must be positive integers, got {cutoffs!r}")
    protocol_cases = "next" if protocol == "benchmark" else protocol
    cases = make_cases(test, protocol_cases)
    if len(cases) == 0:
        raise DataError("the test set gives no evaluation cases (every session has < 2 clicks)")
    mapped = items_for(model, test)
    times = test.times if use_times else None
    targets = mapped[cases.starts + cases.lengths]
    n_items = model.n_items
    max_k = cutoffs[-1]
    if batch_size is None:
        batch_size = score_batch_size(n_items)
    n = len(cases)
    ranks = np.empty(n, dtype=np.float64)
    top_items = np.full((n, max_k), -1, dtype=np.int64)
    top_scores = np.full((n, max_k), -np.inf, dtype=np.float32)
    started = time.perf_counter()
    batches = range(0, n, batch_size)
    for lo in progress(batches, total=len(batches), desc=f"evaluate {model.name}", unit="batch"):
        hi = min(lo + batch_size, n)
        batch = prefix_batch(
            mapped, times, cases.starts[lo:hi], cases.lengths[lo:hi], test.types, test.event_types
        )
        scores = model.score(batch)
        if scores.shape != (hi - lo, n_items):
            raise DataError(
                f"{type(model).__name__}.score returned shape {scores.shape}, "
                f"expected {(hi - lo, n_items)}"
            )
        ranks[lo:hi] = rank_targets(scores, targets[lo:hi], ties)
        for row, (idx, vals) in enumerate(
            select_top_k(scores, max_k, drop_boundary_ties=ties == "pessimistic")
        ):
            top_items[lo + row, : idx.size] = idx
            top_scores[lo + row, : idx.size] = vals
    elapsed = time.perf_counter() - started
    log.info("evaluated %s on %d cases in %.1fs", model.name, n, elapsed)
    return EvaluationResult(
        model=model.name,
        protocol=protocol,
        ties=ties,
        cutoffs=cutoffs,
        ranks=ranks,
        prefix_lengths=cases.lengths.copy(),
        top_items=top_items,
        top_scores=top_scores,
        n_items=n_items,
        predict_seconds=elapsed,
    )


def items_for(model: Recommender, data: SessionData) -> np.ndarray:
    """The clicks of ``data`` as the model's internal indices (int64, :data:`UNKNOWN` for an
    item the model was not trained on)."""
    if data.vocab == model.vocab_:
        return data.items.astype(np.int64)
    return model.vocab_.encode(data.vocab.ids).astype(np.int64)[data.items]


def score_batch_size(n_items: int) -> int:
    """Cases per batch so that one batch of dense scores stays within the memory budget."""
    return max(1, min(4096, SCORE_BUDGET_BYTES // (4 * max(n_items, 1))))


def prefix_batch(
    items: np.ndarray,
    times: np.ndarray | None,
    starts: np.ndarray,
    lengths: np.ndarray,
    types: np.ndarray | None = None,
    event_types: tuple[str, ...] = (),
) -> SessionBatch:
    """The prefixes of a slice of cases as a batch, with unknown items dropped (and the
    clicks' event types when ``types``, codes into ``event_types``, are given)."""
    click = gather_ranges(starts, lengths)
    prefix_items = items[click]
    keep = prefix_items != UNKNOWN
    owner = np.repeat(np.arange(lengths.size), lengths)[keep]
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=lengths.size), out=offsets[1:])
    return SessionBatch(
        offsets=offsets,
        items=prefix_items[keep].astype(np.int32),
        times=None if times is None else times[click][keep],
        types=None if types is None else types[click][keep],
        event_types=event_types,
    )


@dataclass(frozen=True)
class BenchmarkFolder:
    """A benchmark folder: ``train_sessions.txt`` and ``test_sessions.txt`` (sessions-txt)."""

    path: Path

    def __post_init__(self) -> None:
        for name in ("train_sessions.txt", "test_sessions.txt"):
            if not (self.path / name).is_file():
                raise DataError(f"{self.path}: not a benchmark folder (no {name})")

    def train(self) -> SessionData:
        return read_sessions_txt(self.path / "train_sessions.txt")

    def test(self) -> SessionData:
        return read_sessions_txt(self.path / "test_sessions.txt")


def write_predictions(result: EvaluationResult, model: Recommender, path: str | Path) -> Path:
    """One line per case: ``index<TAB>top-K external ids<TAB>their scores`` (space-separated)."""
    ids = model.vocab_.ids
    with atomic_file(path) as tmp, tmp.open("w") as handle:
        for case in range(result.n_cases):
            valid = result.top_items[case] >= 0
            items = " ".join(map(str, ids[result.top_items[case][valid]].tolist()))
            scores = " ".join(f"{s:.9g}" for s in result.top_scores[case][valid].tolist())
            handle.write(f"{case}\t{items}\t{scores}\n")
    return Path(path)


def measure_latency(
    model: Recommender,
    test: SessionData,
    *,
    n_calls: int = 500,
    k: int = 20,
    seed: int = 0,
    warmup: int = 5,
) -> np.ndarray:
    """Milliseconds of ``model.recommend([session], k)`` for single live sessions.

    The sessions are test prefixes (the ``next`` protocol's cases) drawn with a fixed
    ``seed``, given as external ids one call at a time, as the service would: this is the
    per-request cost, not the batched throughput of :func:`evaluate`. ``warmup`` untimed
    calls first keep one-off costs (compilation, lazy imports, caches) out of the sample.
    Draws are without replacement unless the test set has fewer cases than ``n_calls``.
    """
    model._check_fitted()
    if not isinstance(n_calls, int) or n_calls <= 0:
        raise ConfigError(f"latency calls must be a positive integer, got {n_calls!r}")
    cases = make_cases(test, "next")
    if len(cases) == 0:
        raise DataError("the test set gives no sessions to time (every session has < 2 clicks)")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(cases), size=n_calls, replace=len(cases) < n_calls)
    ids = test.vocab.ids
    sessions = [
        ids[test.items[start : start + length]].tolist()
        for start, length in zip(cases.starts[pick], cases.lengths[pick], strict=True)
    ]
    for session in sessions[:warmup]:
        model.recommend([session], k=k)
    millis = np.empty(n_calls, dtype=np.float64)
    timed = progress(sessions, total=n_calls, desc=f"latency {model.name}", unit="call")
    for i, session in enumerate(timed):
        started = time.perf_counter()
        model.recommend([session], k=k)
        millis[i] = (time.perf_counter() - started) * 1000.0
    return millis
