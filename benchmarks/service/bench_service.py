"""Latency and throughput of ``sessionrec serve`` under open-loop load on loopback.

Usage (the figures of BENCHMARKS.md; 2 cores, one BLAS/numba thread per process)::

    .venv/bin/python -m benchmarks.service.bench_service \\
        [--data ../shared/data/diginetica/srgnn] [--model vsknn] [--stores memory,redis] \\
        [--rates 250,500,1000,2000] [--duration 10] [--workers 2] [--replicas 1]

    # live learning on (memory store: one worker), against the same service without it
    .venv/bin/python -m benchmarks.service.bench_service --client loadgen --stores memory \
        --workers 1 --rates 500,1000 --serve-args "--live-updates --live-idle 5"

    # many replicas: 1 and then 2 service processes sharing one Redis, same run, same model
    .venv/bin/python -m benchmarks.service.bench_service --stores redis --replicas 1,2 --workers 1 \
        --rates 250,500,1000 --duration 10

What it does:

1. Trains the model on Diginetica's ``train_sessions.txt`` (or reuses ``--model-dir``).
2. Starts the service as its own process (``python -m sessionrec serve``, the same
   code as ``sessionrec serve``) with ``--workers`` uvicorn workers, for each store
   (``memory``, and ``redis`` against a ``redis-server`` this script starts and stops).
3. From a separate load process, replays the Diginetica test sessions click by click as
   ``POST /v1/sessions/{id}/events?k=20`` (the click is recorded and the 20 recommendations
   come back in the same round trip), many visitors interleaved.
4. Open loop: request ``i`` is *due* at ``t0 + i / rate`` whether or not earlier answers
   came back, and its latency is measured from that due time, so a stalled server shows up
   in the percentiles instead of silently slowing the load (no coordinated omission).
5. Saturation: closed loop (each of ``--connections`` connections sends its next request as
   soon as the previous answer arrives) with ``wrk`` when installed, else the same Python
   client; reports the throughput.
6. Replicas (``--replicas 1,2``): for each count N, N independent service processes (each
   with ``--workers`` workers) share the store, as replicas behind a load balancer would;
   the load client is the balancer: open-loop request ``i`` goes to replica ``i mod N``
   (round robin) and the closed-loop connections are spread evenly over the replicas.
   One visitor's clicks therefore land on different replicas, which only works with a
   shared store, so N > 1 needs ``redis``. Saturation with several replicas uses the
   Python client (``wrk`` takes one URL); with ``--replicas 1,2`` the one-replica run uses
   it too, so the rows compare like with like.

Everything goes to 127.0.0.1 only, every phase is bounded in time, and every process it
starts is stopped at the end. The load generator shares the 2 cores with the service, as
a co-located client would; its own CPU use is part of the result.

Prints Markdown rows: store, replicas, model, target rate, achieved rate, p50/p90/p99 (ms), errors,
the service's CPU time per answered request (all its processes, every replica, from /proc) and the
machine's 1-minute load average. The last two say how much the numbers owe to the service
and how much to other work on a shared machine: with a load average above the core count
the latencies measure the scheduler's queue, while CPU per request stays comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SHARED_DATA
from benchmarks.service.load import (
    THREADS,
    Managed,
    loadgen_phase,
    measure,
    run_load,
    start_redis,
    start_service,
    write_items,
    wrk_saturation,
)


# --------------------------------------------------------------------- main
def run_setup(
    args: argparse.Namespace,
    model_dir: Path,
    model_name: str,
    train_file: Path,
    test_file: Path,
    store_kind: str,
    n_replicas: int,
    use_wrk: bool,
) -> list[dict[str, Any]]:
    """Every load phase against ``n_replicas`` service processes sharing one store."""
    rows: list[dict[str, Any]] = []
    redis = None
    store = "memory"
    services: list[Managed] = []
    try:
        if store_kind == "redis":
            redis, store = start_redis()
        ports = []
        for _ in range(n_replicas):
            service, port = start_service(
                model_dir, train_file, store, args.workers, tuple(shlex.split(args.serve_args))
            )
            services.append(service)
            ports.append(port)
        labels = {"store": store_kind, "replicas": n_replicas, "model": model_name}
        # warm every worker of every replica (numba, caches) before measuring
        run_load("open", ports, test_file, rate=200.0, warmup=0.0, duration=3.0, k=args.k)
        for rate in [float(r) for r in args.rates.split(",")]:
            if args.client == "loadgen":
                items = write_items(train_file, Path(tempfile.gettempdir()) / "bench-items.txt")
                result = measure(
                    services, loadgen_phase, ports[0], rate, args.duration, items, args.k
                )
                rows.append({**labels, **result})
                print(_row(rows[-1]), flush=True)
                continue
            result = measure(
                services,
                run_load,
                "open",
                ports,
                test_file,
                rate=rate,
                warmup=args.warmup,
                duration=args.duration,
                k=args.k,
            )
            rows.append({**labels, **result})
            print(_row(rows[-1]), flush=True)
        if use_wrk:
            result = measure(
                services,
                wrk_saturation,
                ports[0],
                test_file,
                args.connections,
                args.duration,
                args.k,
            )
        else:
            result = measure(
                services,
                run_load,
                "closed",
                ports,
                test_file,
                connections=args.connections,
                duration=args.duration,
                k=args.k,
            )
            result["tool"] = "python"
        rows.append({**labels, "saturation": True, **result})
        print(_row(rows[-1]), flush=True)
    finally:
        for service in services:
            service.stop()
        if redis is not None:
            redis.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED_DATA / "diginetica" / "srgnn",
        help="benchmark folder with train_sessions.txt and test_sessions.txt",
    )
    parser.add_argument("--model", default="vsknn", help="registered model to train")
    parser.add_argument("--model-dir", type=Path, help="serve this model folder instead")
    parser.add_argument("--stores", default="memory,redis")
    parser.add_argument("--rates", default="250,500,1000,2000")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per replica")
    parser.add_argument(
        "--replicas",
        default="1",
        help="service processes sharing the store, comma-separated counts (e.g. 1,2)",
    )
    parser.add_argument("--connections", type=int, default=32, help="saturation connections")
    parser.add_argument(
        "--client",
        choices=("replay", "loadgen"),
        default="replay",
        help="open-loop client: replay the test sessions (ours) or ../shared/tools/loadgen.py "
        "(random items on random sessions of 1-8 clicks; one replica only)",
    )
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument(
        "--serve-args",
        default="",
        help="more options of `sessionrec serve`, e.g. '--live-updates --live-idle 5' (live "
        "learning: loadgen's sessions finish when idle and are learned while it measures)",
    )
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    args = parser.parse_args()
    os.environ.update(THREADS)
    replica_counts = [int(n) for n in args.replicas.split(",")]
    if min(replica_counts) < 1:
        parser.error("--replicas counts must be >= 1")
    if max(replica_counts) > 1 and "memory" in args.stores.split(","):
        parser.error("several replicas share sessions only through redis: use --stores redis")
    # wrk takes one URL; when several replica counts are compared, all use the Python client
    use_wrk = shutil.which("wrk") is not None and max(replica_counts) == 1

    train_file = args.data / "train_sessions.txt"
    test_file = args.data / "test_sessions.txt"
    cleanup: list[Any] = []
    try:
        model_dir = args.model_dir
        if model_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="bench-model-"))
            cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
            model_dir = tmp / args.model
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sessionrec.cli",
                    "-q",
                    "train",
                    "--benchmark",
                    str(args.data),
                    "--model",
                    args.model,
                    "--output",
                    str(model_dir),
                ],
                check=True,
                env={**os.environ, **THREADS},
                stdout=subprocess.DEVNULL,
            )
            print(f"trained {args.model} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        model_name = json.loads((model_dir / "manifest.json").read_text())["model"]
        rows = []
        for store_kind in args.stores.split(","):
            for n_replicas in replica_counts:
                rows += run_setup(
                    args,
                    model_dir,
                    model_name,
                    train_file,
                    test_file,
                    store_kind,
                    n_replicas,
                    use_wrk,
                )
        print()
        print(HEADER)
        for row in rows:
            print(_row(row))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    finally:
        for action in cleanup:
            action()


HEADER = (
    "| store | replicas | model | load | target req/s | achieved req/s | p50 ms | p90 ms "
    "| p99 ms | errors | server CPU µs/req | machine load avg |\n"
    "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _row(row: dict[str, Any]) -> str:
    load = "open loop (loadgen)" if row.get("tool") == "loadgen" else "open loop"
    if row.get("saturation"):
        load = f"saturation, closed loop ({row.get('tool')})"
    target = "-" if row.get("target") is None else f"{row['target']:.0f}"
    return (
        f"| {row['store']} | {row.get('replicas', 1)} | {row['model']} | {load} | {target} | "
        f"{row['achieved']:.0f} | "
        f"{row['p50']:.2f} | {row['p90']:.2f} | {row['p99']:.2f} | {row['errors']} | "
        f"{row.get('server_cpu_us', math.nan):.0f} | {row.get('loadavg', math.nan):.1f} |"
    )


if __name__ == "__main__":
    main()
