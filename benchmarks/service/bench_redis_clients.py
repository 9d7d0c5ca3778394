"""Which asyncio Redis client costs the service least: CPU per call of the store's append script.

Usage (each client that is installed in the running interpreter is measured; the others are
reported as missing)::

    python -m benchmarks.service.bench_redis_clients [--calls 20000] [--concurrency 1,8,32]

The service's hot path against Redis is one Lua script call per click (append the click,
trim, refresh the idle timeout, read the session back: ``APPEND`` in
``sessionrec.serve.store.scripts``). This script runs exactly that call through each client
on a ``redis-server`` it starts on a free loopback port (no persistence), from one uvloop
event loop, as one service worker would:

- ``redis-py`` (with hiredis when installed), through its ``Script`` object (what the store
  used first) and through a bare ``EVALSHA`` (``execute_command``);
- ``redis-py`` auto-pipelined: concurrent calls of one event-loop turn written as one
  pipeline (how the store batches them, :mod:`sessionrec.serve.store.batching`);
- ``coredis``;
- ``valkey-glide`` (a Rust core with its own threads; its CPU is counted too).

``--concurrency`` is how many calls are in flight at once (at 1,000 clicks/s with
millisecond answers a worker has a few). The figure that matters is the CPU time of the
process per call (``time.process_time``, all threads), since on a 2-core machine that CPU is
taken from the model and the HTTP server; calls/s is the closed-loop throughput. Medians of
``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sessionrec.serve.store.scripts import APPEND

MAX_EVENTS = 200
TTL_MS = 1_800_000
SESSIONS = 5000

Call = Callable[[str, str], Awaitable[Any]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


# ------------------------------------------------------------------ clients
async def redis_py_script(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=port)
    script = client.register_script(APPEND)

    async def call(key: str, raw: str) -> Any:
        return await script(keys=[key], args=[raw, MAX_EVENTS, TTL_MS])

    return call, client.aclose


async def redis_py_evalsha(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=port)
    sha = await client.script_load(APPEND)

    async def call(key: str, raw: str) -> Any:
        return await client.execute_command("EVALSHA", sha, 1, key, raw, MAX_EVENTS, TTL_MS)

    return call, client.aclose


async def redis_py_batched(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis

    from sessionrec.serve.store.batching import CommandBatcher

    client = aioredis.Redis(host="127.0.0.1", port=port)
    sha = await client.script_load(APPEND)
    batcher = CommandBatcher(client)

    async def call(key: str, raw: str) -> Any:
        return await batcher.call("EVALSHA", sha, 1, key, raw, MAX_EVENTS, TTL_MS)

    return call, client.aclose


async def coredis_client(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import coredis

    client: Any = coredis.Redis(host="127.0.0.1", port=port)
    entered = await client.__aenter__()
    client = entered if entered is not None else client
    sha = await client.script_load(APPEND)

    async def call(key: str, raw: str) -> Any:
        return await client.evalsha(sha, keys=[key], args=[raw, MAX_EVENTS, TTL_MS])

    async def close() -> None:
        await client.__aexit__(None, None, None)

    return call, close


async def glide_client(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script

    config = GlideClientConfiguration([NodeAddress("127.0.0.1", port)], request_timeout=1000)
    client = await GlideClient.create(config)
    script = Script(APPEND)

    async def call(key: str, raw: str) -> Any:
        return await client.invoke_script(
            script, keys=[key], args=[raw, str(MAX_EVENTS), str(TTL_MS)]
        )

    return call, client.close


CLIENTS: dict[str, tuple[str, Callable[[int], Awaitable[tuple[Call, Any]]]]] = {
    "redis-py Script": ("redis", redis_py_script),
    "redis-py EVALSHA": ("redis", redis_py_evalsha),
    "redis-py EVALSHA, one pipeline per loop turn": ("redis", redis_py_batched),
    "coredis": ("coredis", coredis_client),
    "valkey-glide": ("glide", glide_client),
}


# -------------------------------------------------------------- measuring
async def drive(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs per call, calls per second) of ``calls`` calls, ``concurrency`` in flight."""
    per_task = calls // concurrency

    async def worker(w: int) -> None:
        for i in range(per_task):
            await call(f"bench:s:{(w * 7919 + i) % SESSIONS}", f"\x1fview\x1f{i}")

    for w in range(concurrency):  # warm the connections
        await call(f"bench:s:{w}", "\x1fview\x1fwarm")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per_task * concurrency
    return cpu / done * 1e6, done / wall


async def measure(name: str, port: int, calls: int, concurrency: int) -> tuple[float, float]:
    _, factory = CLIENTS[name]
    call, close = await factory(port)
    try:
        return await drive(call, calls, concurrency)
    finally:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the service runs on uvloop when it is installed; so do we
        pass
    import logging

    logging.basicConfig(level=logging.WARNING)
    port = free_port()
    server = start_redis(port)
    rows = []
    try:
        for name, (module, _) in CLIENTS.items():
            if importlib.util.find_spec(module) is None:
                rows.append(f"| {name} | not installed | | |")
                continue
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                runs = [
                    asyncio.run(measure(name, port, args.calls, concurrency))
                    for _ in range(args.repeats)
                ]
                cpu = statistics.median(r[0] for r in runs)
                rate = statistics.median(r[1] for r in runs)
                rows.append(f"| {name} | {concurrency} | {cpu:.0f} | {rate:,.0f} |")
                print(rows[-1], flush=True)
    finally:
        server.terminate()
        server.wait(10)
    print("\n| client | calls in flight | client CPU µs per call | calls/s |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
