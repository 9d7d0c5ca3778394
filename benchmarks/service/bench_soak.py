"""A long steady run of the Redis-backed service: flat memory, Redis keys bounded by the
TTLs, no errors.

Usage (the soak row of BENCHMARKS.md)::

    .venv/bin/python -m benchmarks.service.bench_soak [--minutes 30] [--rate 300]
        [--session-ttl 120] [--recommendation-ttl 300] [--workers 2] [--model-dir DIR]

What it does: trains V-SKNN on Diginetica (or serves ``--model-dir``), starts
``redis-server`` and ``sessionrec serve --store redis://... --workers N`` with short idle
timeouts (so that keys must expire within the run: a leak of keys would show as growth
after the first ``--recommendation-ttl`` seconds), and replays the Diginetica test sessions
as new visitors, open loop at ``--rate`` clicks per second for ``--minutes`` from a separate
load process. Every ``--every`` seconds it samples the resident memory of the service (all
its processes), the number of Redis keys and Redis's memory, and the service's error
counters (``/metrics``).

Prints the samples and a summary: resident memory at the end of the first fifth of the run
against the end (growth in MB and %), Redis keys at the plateau (after the longest TTL)
against the end, errors (5xx, store errors, clicks dropped) and the latency of the whole run
(p50 / p99, from the load process).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import SHARED_DATA
from benchmarks.service.load import (
    metrics_text,
    run_load,
    start_redis,
    start_service,
    train_model,
    tree_rss_mb,
)


def scrape(port: int) -> dict[str, float]:
    """Error counters summed over labels: 5xx answers, store errors, dropped clicks."""
    out = {"5xx": 0.0, "store_errors": 0.0, "dropped": 0.0}
    for line in metrics_text(port).splitlines():
        if line.startswith("sessionrec_requests_total{") and 'status="5' in line:
            out["5xx"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("sessionrec_errors_total{") and 'kind="store"' in line:
            out["store_errors"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("sessionrec_store_buffer_dropped_total{"):
            out["dropped"] += float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "diginetica" / "srgnn")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--session-ttl", type=float, default=120.0)
    parser.add_argument("--recommendation-ttl", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    import redis

    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    model_dir = args.model_dir or train_model("vsknn", args.data, workdir / "model")
    server, url = start_redis()
    service, port = start_service(
        model_dir,
        args.data / "train_sessions.txt",
        url,
        args.workers,
        (
            *("--session-ttl", str(args.session_ttl)),
            *("--recommendation-ttl", str(args.recommendation_ttl)),
        ),
    )
    samples: list[tuple[float, float, int, float, dict[str, float]]] = []
    result: dict[str, object] = {}
    seconds = args.minutes * 60
    try:
        load = threading.Thread(
            target=lambda: result.update(
                run_load(
                    "open",
                    port,
                    args.data / "test_sessions.txt",
                    rate=args.rate,
                    warmup=0.0,
                    duration=seconds,
                    k=20,
                )
            ),
            daemon=True,
        )
        start = time.monotonic()
        load.start()
        with redis.Redis.from_url(url) as direct:
            while load.is_alive():
                load.join(timeout=args.every)
                elapsed = time.monotonic() - start
                memory = float(direct.info("memory")["used_memory"]) / 2**20
                samples.append(
                    (
                        elapsed,
                        tree_rss_mb(service.process.pid),
                        int(direct.dbsize()),
                        memory,
                        scrape(port),
                    )
                )
                t, rss, keys, used, errors = samples[-1]
                print(
                    f"{t:7.0f} s  service RSS {rss:7.1f} MB  redis keys {keys:8d}  "
                    f"redis memory {used:6.1f} MB  errors {errors}",
                    flush=True,
                )
    finally:
        service.stop()
        server.stop()
    fifth = next(s for s in samples if s[0] >= seconds / 5)
    plateau = next((s for s in samples if s[0] >= args.recommendation_ttl + 30), samples[-1])
    end = samples[-1]
    growth = end[1] - fifth[1]
    print(
        "\n| minutes | rate sent / achieved | p50 / p99 ms | service RSS at 1/5 -> end | "
        "redis keys at plateau -> end (max) | redis memory at plateau -> end | 5xx | store "
        "errors | clicks dropped |"
    )
    print("|---:|---|---|---|---|---|---:|---:|---:|")
    print(
        f"| {args.minutes:.0f} | {args.rate:.0f} / {float(result.get('achieved', 0)):.0f} | "
        f"{float(result.get('p50', 0)):.2f} / {float(result.get('p99', 0)):.2f} | "
        f"{fifth[1]:.0f} -> {end[1]:.0f} MB ({growth:+.0f} MB, {100 * growth / fifth[1]:+.1f} %) | "
        f"{plateau[2]} -> {end[2]} ({max(s[2] for s in samples)}) | "
        f"{plateau[3]:.1f} -> {end[3]:.1f} MB | {end[4]['5xx']:.0f} | "
        f"{end[4]['store_errors']:.0f} | {end[4]['dropped']:.0f} |"
    )


if __name__ == "__main__":
    main()
