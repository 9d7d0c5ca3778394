"""Live learning against a frozen model: the test period replayed through the service.

Usage (single-threaded)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \\
        .venv/bin/python -m benchmarks.accuracy.bench_live_replay \\
        [--datasets diginetica,yoochoose-1_64] [--model vsknn] [--every 100] [--limit N] \\
        [--json-out FILE]

Per dataset (the SR-GNN splits in ``shared/data``): the model is fitted on the training
sessions with its default hyperparameters and saved; then the test sessions are replayed in
their (chronological) file order through the HTTP service (the app in process, over ASGI,
memory store), click by click, each click asking for 20 recommendations with the session's
own items allowed (the benchmark protocol's ranking: ``exclude_seen=false``). Two services
replay the same clicks:

- **frozen**: the model as trained;
- **live**: ``--live-updates``; every test session is ended after its last click
  (``POST /v1/sessions/{id}/end``) and the learner runs one round after every ``--every``
  ended sessions (a service learning every 2 s sees about that many sessions finish
  between rounds at 50 finished sessions a second).

Every case ``s[:i] -> s[i]`` scores the rank of the target in the answer (HR@20, MRR@20,
in percent). Reported: both services on all cases; both on the cases whose target the
frozen model knows ("both can answer": the live model must not lose accuracy there); and
the targets the frozen model does not know, with the share of them the live model knew
when it was asked (recommendable) and found. Also the learner's rounds: seconds per round
and per session learned.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA, load_average

K = 20


def read_sessions(path: Path) -> list[list[int]]:
    return [[int(x) for x in line.split()] for line in path.read_text().splitlines() if line]


async def replay(model_dir: Path, test: list[list[int]], live: bool, every: int) -> dict[str, Any]:
    """Replay ``test`` through a service of ``model_dir``; per case the target's rank (0: not
    in the 20), whether the serving model knew the target, and the learner's round times."""
    import httpx

    from sessionrec.serve.app import create_app
    from sessionrec.serve.config import ServeConfig, VariantSpec

    config = ServeConfig(
        variants=(VariantSpec("default", str(model_dir)),),
        reload_interval=0.0,
        live_updates=live,
        live_interval=1e6,  # rounds are run here, every ``every`` sessions
        live_idle=1e5,
        session_ttl=1e6,
        max_sessions=1_000_000,
        max_events=1_000,
        live_feed=1_000_000,
    )
    app = create_app(config)
    ranks: list[int] = []
    known: list[bool] = []
    rounds: list[tuple[float, int]] = []
    async with app.router.lifespan_context(app):
        state = app.state.service
        variant = state.require_registry().get("default")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replay") as client:
            ask = {"k": str(K), "exclude_seen": "false"}
            for number, session in enumerate(test):
                sid = f"t{number}"
                for i, item in enumerate(session):
                    last = i == len(session) - 1
                    params = {"recommend": "false"} if last else ask
                    response = await client.post(
                        f"/v1/sessions/{sid}/events", params=params, json={"item_id": item}
                    )
                    if response.status_code != 200:
                        raise SystemExit(f"replay: {response.status_code} {response.text}")
                    if last:
                        continue
                    target = str(session[i + 1])
                    listed = [str(x["item_id"]) for x in response.json()["items"]]
                    ranks.append(listed.index(target) + 1 if target in listed else 0)
                    vocab = variant.serving().model.vocab_
                    known.append(bool(vocab.encode([target])[0] >= 0))
                if live:
                    await client.post(f"/v1/sessions/{sid}/end")
                    if (number + 1) % every == 0 or number == len(test) - 1:
                        started = time.perf_counter()
                        learned = await state.live.step()
                        rounds.append((time.perf_counter() - started, learned))
    return {"ranks": np.array(ranks), "known": np.array(known), "rounds": rounds}


def scores(ranks: np.ndarray) -> dict[str, float]:
    if ranks.size == 0:
        return {"hr": float("nan"), "mrr": float("nan"), "cases": 0}
    hit = ranks > 0
    rr = np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)
    return {
        "hr": round(100 * float(hit.mean()), 2),
        "mrr": round(100 * float(rr.mean()), 2),
        "cases": int(ranks.size),
    }


def run_dataset(name: str, model_name: str, every: int, limit: int | None) -> dict[str, Any]:
    from sessionrec.data.formats import read_sessions_txt
    from sessionrec.models.registry import create_model

    folder = SHARED_DATA / BENCHMARK_FOLDERS[name]
    train = read_sessions_txt(folder / "train_sessions.txt")
    test = read_sessions(folder / "test_sessions.txt")
    if limit:
        test = test[:limit]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / model_name
        create_model(model_name).fit(train).save(model_dir)
        started = time.perf_counter()
        frozen = asyncio.run(replay(model_dir, test, live=False, every=every))
        frozen_s = time.perf_counter() - started
        started = time.perf_counter()
        live = asyncio.run(replay(model_dir, test, live=True, every=every))
        live_s = time.perf_counter() - started
    base_known = frozen["known"]
    unknown = ~base_known
    seconds = np.array([s for s, n in live["rounds"] if n])
    learned = np.array([n for _, n in live["rounds"] if n])
    return {
        "dataset": name,
        "model": model_name,
        "test_sessions": len(test),
        "every": every,
        "frozen": scores(frozen["ranks"]),
        "live": scores(live["ranks"]),
        "both_can_answer": {
            "frozen": scores(frozen["ranks"][base_known]),
            "live": scores(live["ranks"][base_known]),
        },
        "unknown_to_frozen": {
            "targets": int(unknown.sum()),
            "share_of_cases": round(100 * float(unknown.mean()), 3),
            "recommendable_to_live": int((unknown & live["known"]).sum()),
            "found_by_live": int((unknown & (live["ranks"] > 0)).sum()),
            "found_by_frozen": int((unknown & (frozen["ranks"] > 0)).sum()),
        },
        "rounds": {
            "count": int(seconds.size),
            "median_s": round(float(np.median(seconds)), 4) if seconds.size else None,
            "p99_s": round(float(np.percentile(seconds, 99)), 4) if seconds.size else None,
            "ms_per_session": round(1000 * float(seconds.sum() / max(learned.sum(), 1)), 3),
        },
        "replay_seconds": {"frozen": round(frozen_s, 1), "live": round(live_s, 1)},
        "load": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="diginetica,yoochoose-1_64")
    parser.add_argument("--model", default="vsknn")
    parser.add_argument("--every", type=int, default=100, help="sessions per learning round")
    parser.add_argument("--limit", type=int, default=None, help="first N test sessions only")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    for variable in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    results = []
    for name in args.datasets.split(","):
        if not (SHARED_DATA / BENCHMARK_FOLDERS[name]).is_dir():
            print(f"{name}: its folder in {SHARED_DATA} is missing; skipped", file=sys.stderr)
            continue
        result = run_dataset(name, args.model, args.every, args.limit)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
