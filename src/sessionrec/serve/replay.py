"""Replay test sessions click by click against a live service (offline/online parity).

For every test session ``s`` the replay posts ``s[0], s[1], ...`` as events of a fresh
session id and reads the answer that comes back with each event, so the answer to click
``j`` predicts ``s[j + 1]``: exactly the cases of ``sessionrec evaluate`` (protocol
``next``/``benchmark``), in the same order.

To measure what offline evaluation measures, the requests ask for

- ``exclude_seen=false``: evaluation ranks every item, the session's own included;
- ``fallback=false``: evaluation counts a model without evidence as a miss, so popular
  items must not be slipped in;
- ``k + 1`` items, and the rank is computed from the scores with *pessimistic* ties, as
  evaluation does by default: the target's rank is the number of listed items scoring at
  least as much as it. If all ``k + 1`` do, its tie group reaches past ``k`` and the case is
  a miss, as in evaluation; otherwise the list holds every item that outranks or ties it,
  so the rank is exact. Scores cross the wire as float32 values printed exactly, so the
  comparisons are the model's own.

Before any click, the replay compares the training-data fingerprints the service reports
for its model (``/v1/info``) with the fingerprint of the ``train_sessions.txt`` beside the
test file (:mod:`sessionrec.fingerprint_check`): a model trained on other data is refused,
as ``sessionrec evaluate`` refuses it, unless ``allow_other_data``; a model that records no
fingerprint, or a test file without its training file, is warned about.

Server-side business rules (catalog, deny lists) and a ``--max-events`` smaller than the
longest session make the service differ from the model on purpose; the replay reads
``/v1/info`` and warns. Unknown items need no care: the service, like evaluation, drops
them from the model's input, and an unknown target is never listed (a miss in both).

HR@K and MRR@K use the evaluation's own metric functions on ranks in case order, so with
the same model they are bit-for-bit equal to ``sessionrec evaluate``'s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError, DataError, SessionrecError
from sessionrec.evaluation import metrics
from sessionrec.fingerprint_check import TRAIN_FILE, training_fingerprint

log = logging.getLogger("sessionrec.serve.replay")


@dataclass
class ReplayResult:
    """Ranks and latencies of one replay run."""

    url: str
    k: int
    n_sessions: int
    ranks: np.ndarray  # float64 [n_cases], inf for a miss, in evaluation's case order
    latencies_ms: np.ndarray  # float64 [n_requests]
    errors: int
    first_error: str | None
    fallback_answers: int
    degraded_answers: int
    wall_seconds: float
    rules_active: bool = False

    @property
    def n_cases(self) -> int:
        return int(self.ranks.shape[0])

    def metrics(self) -> dict[str, Any]:
        """HR/MRR in percent (as ``sessionrec evaluate``) and latency percentiles in ms."""
        lat = self.latencies_ms
        p50, p90, p99 = np.percentile(lat, [50, 90, 99]).tolist() if lat.size else [math.nan] * 3
        return {
            "n_sessions": self.n_sessions,
            "n_cases": self.n_cases,
            f"hr@{self.k}": 100.0 * metrics.hit_rate(self.ranks, self.k),
            f"mrr@{self.k}": 100.0 * metrics.mrr(self.ranks, self.k),
            "requests": int(lat.size),
            "errors": self.errors,
            "latency_p50_ms": p50,
            "latency_p90_ms": p90,
            "latency_p99_ms": p99,
            "latency_mean_ms": float(lat.mean()) if lat.size else math.nan,
            "requests_per_s": lat.size / self.wall_seconds if self.wall_seconds > 0 else 0.0,
            "wall_seconds": self.wall_seconds,
            "fallback_answers": self.fallback_answers,
            "degraded_answers": self.degraded_answers,
        }


def pessimistic_rank(target: str, items: Sequence[str], scores: Sequence[float], k: int) -> float:
    """The target's rank with ties counted against it, from a top-(k+1) list; inf if > k."""
    try:
        position = list(items).index(target)
    except ValueError:
        return math.inf
    score = scores[position]
    rank = sum(1 for s in scores if s >= score)
    return float(rank) if rank <= k else math.inf


def read_test_sessions(path: str | Path) -> list[list[str]]:
    """Sessions of a sessions-txt file as lists of id strings (as the evaluation reads them)."""
    from sessionrec.data.formats import read_sessions_txt

    data = read_sessions_txt(path)
    ids = [str(x) for x in data.vocab.ids.tolist()]
    return [[ids[i] for i in session.tolist()] for session in data]


async def replay_sessions(
    sessions: Sequence[Sequence[str]],
    url: str,
    *,
    k: int = 20,
    concurrency: int = 8,
    timeout: float = 10.0,
    variant: str | None = None,
    run_id: str | None = None,
    train_fingerprint: str | None = None,
    allow_other_data: bool = False,
) -> ReplayResult:
    """Replay ``sessions`` against the service at ``url``; see the module docstring.

    ``train_fingerprint`` is the fingerprint of the split's training data (``None``: not
    checked); a served model trained on other data raises :class:`DataError` unless
    ``allow_other_data``."""
    import httpx

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    if concurrency < 1:
        raise ConfigError("concurrency must be >= 1")
    base = url.rstrip("/")
    run = run_id or uuid.uuid4().hex[:12]
    lengths = [len(s) for s in sessions]
    per_session = [max(n - 1, 0) for n in lengths]
    first_case = np.concatenate([[0], np.cumsum(per_session)]).astype(np.int64)
    ranks = np.full(int(first_case[-1]), math.inf)
    latencies: list[float] = []
    counters = {"errors": 0, "fallback": 0, "degraded": 0}
    first_error: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        try:
            info = (await client.get("/v1/info")).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SessionrecError(f"cannot reach the service at {base}: {exc}") from None
        rules_active = bool(info.get("rules_active"))
        serving = [v for v in info.get("variants", []) if v.get("share", 0) > 0]
        if train_fingerprint is not None:
            measured = [v for v in info.get("variants", []) if v.get("name") == variant]
            check_served_data(measured or serving, train_fingerprint, allow_other_data)
        if variant is None and len(serving) > 1:
            log.warning(
                "the service splits traffic between %d variants: pass --variant NAME to "
                "measure one model",
                len(serving),
            )
        max_k = int(info.get("limits", {}).get("max_k", k + 1))
        max_events = int(info.get("limits", {}).get("max_events", max(lengths, default=0)))
        if rules_active:
            log.warning("the service applies business rules: replay will differ from evaluate")
        if max(lengths, default=0) > max_events:
            log.warning(
                "sessions up to %d clicks but the service keeps %d events: long sessions differ",
                max(lengths),
                max_events,
            )
        fetch = min(k + 1, max_k)
        if fetch <= k:
            log.warning("the service caps k at %d: ties at the cut-off count as hits", max_k)
        params: dict[str, Any] = {"k": fetch, "exclude_seen": "false", "fallback": "false"}
        if variant is not None:
            params["variant"] = variant
        queue = [i for i, n in enumerate(lengths) if n >= 2]
        cursor = iter(queue)

        async def worker() -> None:
            for s in cursor:
                session = sessions[s]
                path = f"/v1/sessions/replay-{run}-{s}/events"
                for j in range(len(session) - 1):
                    started = time.perf_counter()
                    try:
                        response = await client.post(
                            path, params=params, json={"item_id": session[j]}
                        )
                        latencies.append(1000.0 * (time.perf_counter() - started))
                        if response.status_code != 200:
                            raise SessionrecError(
                                f"HTTP {response.status_code}: {response.text[:200]}"
                            )
                        answer = response.json()
                    except (httpx.HTTPError, ValueError, SessionrecError) as exc:
                        counters["errors"] += 1
                        if not first_error:
                            first_error.append(f"{type(exc).__name__}: {exc}")
                        continue
                    counters["fallback"] += bool(answer.get("fallback"))
                    counters["degraded"] += bool(answer.get("degraded"))
                    items = [it["item_id"] for it in answer["items"]]
                    scores = [it["score"] for it in answer["items"]]
                    ranks[first_case[s] + j] = pessimistic_rank(session[j + 1], items, scores, k)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return ReplayResult(
        url=base,
        k=k,
        n_sessions=len(queue),
        ranks=ranks,
        latencies_ms=np.asarray(latencies, dtype=np.float64),
        errors=counters["errors"],
        first_error=first_error[0] if first_error else None,
        fallback_answers=counters["fallback"],
        degraded_answers=counters["degraded"],
        wall_seconds=wall,
        rules_active=rules_active,
    )


def check_served_data(
    variants: Sequence[dict[str, Any]], train_fingerprint: str, allow_other_data: bool
) -> None:
    """Refuse (or with ``allow_other_data`` warn about) served variants whose model was
    trained on other data than the split's; warn when a model records no fingerprint."""
    for info in variants:
        name = f"the model of variant {info.get('name')!r} ({info.get('model')})"
        recorded = info.get("data_fingerprints")
        if recorded is None:
            log.warning("the service does not report %s's training data: not checked", name)
        elif not recorded:
            log.warning(
                "%s records no training-data fingerprint (saved before sessionrec recorded "
                "them): cannot check that it was trained on this split",
                name,
            )
        elif train_fingerprint not in recorded:
            message = (
                f"{name} was trained on other data (fingerprint {recorded[0]}) than this "
                f"split's {TRAIN_FILE} (fingerprint {train_fingerprint}): its numbers on "
                "this split would mean nothing"
            )
            if not allow_other_data:
                raise DataError(f"{message}; pass --allow-other-data to replay anyway")
            log.warning("%s (replaying anyway: --allow-other-data)", message)


def split_train_fingerprint(test_file: str | Path) -> str | None:
    """The fingerprint of the ``train_sessions.txt`` beside ``test_file``; ``None`` (with a
    warning) when there is none."""
    train_file = Path(test_file).parent / TRAIN_FILE
    if not train_file.is_file():
        log.warning(
            "no %s beside %s: cannot check that the served model was trained on this split",
            TRAIN_FILE,
            test_file,
        )
        return None
    fingerprint, _ = training_fingerprint(train_file)
    return fingerprint


def replay_file(
    path: str | Path,
    url: str,
    *,
    k: int = 20,
    concurrency: int = 8,
    timeout: float = 10.0,
    variant: str | None = None,
    limit: int | None = None,
    allow_other_data: bool = False,
) -> ReplayResult:
    """Replay a sessions-txt test file (optionally its first ``limit`` sessions), after
    checking the served model against the ``train_sessions.txt`` beside it."""
    sessions = read_test_sessions(path)
    if limit is not None:
        sessions = sessions[:limit]
    return asyncio.run(
        replay_sessions(
            sessions,
            url,
            k=k,
            concurrency=concurrency,
            timeout=timeout,
            variant=variant,
            train_fingerprint=split_train_fingerprint(path),
            allow_other_data=allow_other_data,
        )
    )
