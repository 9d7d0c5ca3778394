"""Redis stopped for 10 s under open-loop load: no 5xx, no acknowledged click lost.

Usage (the outage row of BENCHMARKS.md)::

    .venv/bin/python -m benchmarks.service.bench_outage [--rate 500] [--before 10]
        [--outage 10] [--after 20] [--workers 2] [--model-dir DIR]

What it does:

1. Trains V-SKNN on Diginetica's ``train_sessions.txt`` (or serves ``--model-dir``).
2. Starts ``redis-server`` with an append-only file (``appendfsync everysec``; a Redis
   that holds sessions in production persists or replicates them) and ``sessionrec serve
   --store redis://... --workers N``.
3. Sends ``POST /v1/sessions/{id}/events?k=20`` open loop at ``--rate`` per second over
   ``--before + --outage + --after`` seconds. Each click names its own item
   (``{session}-{i}``), so the store can be checked click by click; visitors take turns
   (4,000 sessions round robin), so one visitor never has two clicks in flight and the
   order of a session's clicks is the order they were sent.
4. After ``--before`` seconds, stops ``redis-server`` (SIGTERM: a clean stop) and starts it
   again ``--outage`` seconds later on the same port and files.
5. When the load is over and the service's outage buffer is empty (``/metrics``), reads
   every session back from Redis and compares it with the clicks the service answered 200:
   lost (acknowledged but not stored), duplicated (stored twice) and out of order.

Prints one Markdown row: rate sent, answers by status, answers marked ``degraded``, the
p50 / p99 latency of the whole run and of the outage window, clicks buffered and written
back, dropped, lost, duplicated, out of order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import SHARED_DATA
from benchmarks.service.load import (
    HOST,
    Connection,
    free_port,
    metrics_text,
    redis_answers,
    redis_command,
    start_service,
    train_model,
    wait_for,
)

SESSIONS = 4000


def request(session: str, item: str) -> bytes:
    body = json.dumps({"item_id": item}).encode()
    return (
        f"POST /v1/sessions/{session}/events?k=20 HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


class Answer(Connection):
    """A connection that also keeps the last answer (to read its ``degraded`` flag)."""

    last = b""

    def data_received(self, data: bytes) -> None:
        self.last = bytes(self.buffer) + data
        super().data_received(data)


async def drive(
    port: int, rate: float, seconds: float
) -> list[tuple[float, str, str, int, bool, float]]:
    """Open loop; per click: (due time from the start, session, item, status, degraded,
    latency in seconds from its due time)."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Answer] = asyncio.Queue()
    for _ in range(256):
        _, conn = await loop.create_connection(Answer, HOST, port)
        idle.put_nowait(conn)
    clicks = [0] * SESSIONS
    log: list[tuple[float, str, str, int, bool, float]] = []
    tasks: set[asyncio.Task[None]] = set()
    clock = time.perf_counter

    async def fire(session: str, item: str, due: float) -> None:
        conn = await idle.get()
        status = await conn.request(request(session, item))
        done = clock()
        degraded = status == 200 and b'"degraded":true' in conn.last
        if conn.closed:
            _, conn = await loop.create_connection(Answer, HOST, port)
        idle.put_nowait(conn)
        log.append((due - t0, session, item, status, degraded, done - due))

    t0 = clock() + 0.05
    for i in range(int(rate * seconds)):
        due = t0 + i / rate
        if due - clock() > 0:
            await asyncio.sleep(due - clock())
        n = i % SESSIONS
        session = f"outage-{n}"
        item = f"{session}-{clicks[n]}"
        clicks[n] += 1
        task = asyncio.ensure_future(fire(session, item, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    return log


def metric(port: int, name: str) -> float:
    total = 0.0
    for line in metrics_text(port).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "diginetica" / "srgnn")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--before", type=float, default=10.0)
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import redis

    workdir = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    model_dir = args.model_dir or train_model("vsknn", args.data, workdir / "model")
    redis_port = free_port()
    redis_dir = workdir / "redis"
    redis_dir.mkdir()
    command = redis_command(redis_port, str(redis_dir), durable=True)

    def answers() -> bool:
        return redis_answers(redis_port)

    state: dict[str, Any] = {"redis": subprocess.Popen(command, stdout=subprocess.DEVNULL)}
    wait_for(answers, 10, "redis-server")
    url = f"redis://{HOST}:{redis_port}/0"
    service, port = start_service(
        model_dir, args.data / "train_sessions.txt", url, args.workers, ("--redis-retry", "0.5")
    )

    def stop_redis() -> None:
        state["redis"].terminate()  # SIGTERM: Redis flushes its append-only file and exits
        state["redis"].wait(10)

    def start_redis() -> None:
        state["redis"] = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    try:
        # the outage runs from timer threads: the load's event loop never waits for it
        threading.Timer(args.before, stop_redis).start()
        threading.Timer(args.before + args.outage, start_redis).start()
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        log = asyncio.run(drive(port, args.rate, args.before + args.outage + args.after))
        wait_for(answers, 30, "redis-server after the restart")
        deadline = time.monotonic() + 120
        while metric(port, "sessionrec_store_buffered_clicks") > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the outage buffer was not written back within 120 s")
            time.sleep(0.5)
        buffered = metric(port, "sessionrec_store_buffer_replayed_total")
        dropped = metric(port, "sessionrec_store_buffer_dropped_total")
        acknowledged: dict[str, list[str]] = {}
        for _, session, item, status, _, _ in sorted(log):
            if status == 200:
                acknowledged.setdefault(session, []).append(item)
        lost = duplicated = disordered = 0
        with redis.Redis.from_url(url, decode_responses=True) as direct:
            for session, items in acknowledged.items():
                stored = [
                    raw.split("\x1f")[2] for raw in direct.lrange(f"sessionrec:s:{session}", 0, -1)
                ]
                lost += len(set(items) - set(stored))
                duplicated += len(stored) - len(set(stored))
                kept = [item for item in stored if item in set(items)]
                disordered += kept != [item for item in items if item in set(stored)]
    finally:
        service.stop()
        state["redis"].terminate()
        state["redis"].wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    statuses: dict[int, int] = {}
    for entry in log:
        statuses[entry[3]] = statuses.get(entry[3], 0) + 1
    latency = np.array([entry[5] for entry in log]) * 1000
    window = (
        np.array([e[5] for e in log if args.before <= e[0] < args.before + args.outage + 1]) * 1000
    )
    degraded = sum(entry[4] for entry in log)
    print(
        "| rate | answers by status | degraded answers | p50 / p99 ms (all) | p50 / p99 ms "
        "(outage window) | clicks buffered and written back | dropped | lost | duplicated "
        "| sessions out of order |"
    )
    print("|---:|---|---:|---|---|---:|---:|---:|---:|---:|")
    print(
        f"| {args.rate:.0f} | {json.dumps(statuses)} | {degraded} | "
        f"{np.percentile(latency, 50):.2f} / {np.percentile(latency, 99):.2f} | "
        f"{np.percentile(window, 50):.2f} / {np.percentile(window, 99):.2f} | {buffered:.0f} | "
        f"{dropped:.0f} | {lost} | {duplicated} | {disordered} |"
    )


if __name__ == "__main__":
    main()
