"""``prepare`` on Polars vs Spark: wall time and peak memory on a synthetic OTTO-scale log.

The issue's scale is OTTO's: 100M events, 12M sessions, 1.8M items over four weeks. The
log is generated once, streaming (``--chunk`` sessions at a time, never the whole log in
memory), as Parquet with canonical columns (``session_id``, ``item_id``, ``timestamp`` in
seconds, ``event_type``), then each engine runs ``prepare`` (last day test, day before
validation, min support 5, min length 2) in its own subprocess while the parent samples
the resident memory of that subprocess's whole tree (Python plus Spark's JVM) every
0.2 s. Smaller runs keep OTTO's ratios (0.12 sessions and 0.018 items per event).

Command (the issue's full scale; ~2 minutes to generate)::

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_prepare_engines --events 100000000

``--events 20000000`` is the reduced run; ``--engines polars`` skips Spark;
``--driver-memory`` sets Spark's (default 8g); ``--check`` also asserts that both engines
give identical parts (it holds both results, so it needs twice the memory). Results are
printed as JSON lines and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DAY = 86_400.0
START = 1_659_304_800.0  # 2022-08-01, OTTO's first day
TYPES = ("clicks", "carts", "orders")


def generate(path: Path, events: int, chunk: int, seed: int = 0) -> dict[str, int]:
    """Write the synthetic log to ``path`` chunk by chunk; returns its real sizes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_sessions = max(1, int(events * 0.12))
    n_items = max(10, int(events * 0.018))
    mean_length = events / n_sessions
    schema = pa.schema(
        [
            ("session_id", pa.int64()),
            ("item_id", pa.int64()),
            ("timestamp", pa.float64()),
            ("event_type", pa.string()),
        ]
    )
    tmp = path.with_suffix(".tmp")
    written = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for first in range(0, n_sessions, chunk):
            ids = np.arange(first, min(first + chunk, n_sessions), dtype=np.int64)
            lengths = rng.geometric(1.0 / mean_length, ids.size)
            total = int(lengths.sum())
            sid = np.repeat(ids, lengths)
            # Popularity: a power law over items (u**3 piles mass on low ranks), the ranks
            # scattered over the id space by a multiplicative permutation.
            rank = (n_items * rng.random(total) ** 3).astype(np.int64)
            item = (rank * 2_654_435_761) % n_items + 1
            start = START + np.sort(rng.random(ids.size)) * 28 * DAY
            gaps = rng.exponential(45.0, total)
            # Seconds since the session's first click: a running sum restarted per session.
            within = np.cumsum(gaps)
            within -= np.repeat(within[np.cumsum(lengths) - lengths], lengths)
            time_ = np.round(np.repeat(start, lengths) + within, 3)
            kind = np.array(TYPES)[np.searchsorted([0.9, 0.98], rng.random(total))]
            writer.write_table(
                pa.table(
                    {"session_id": sid, "item_id": item, "timestamp": time_, "event_type": kind},
                    schema=schema,
                )
            )
            written += total
            del sid, rank, item, gaps, within, time_, kind
    tmp.rename(path)
    return {"events": written, "sessions": n_sessions, "items": n_items}


OPTIONS = {
    "format": "parquet",
    "time_unit": "s",
    "test_days": 1.0,
    "valid_days": 1.0,
    "min_item_support": 5,
    "min_session_length": 2,
}


def run_one(engine: str, path: str, driver_memory: str) -> None:
    """Child process: one ``prepare``; prints its result as one JSON line."""
    started = time.perf_counter()
    if engine == "spark":
        from sessionrec.data.spark import prepare_spark, spark_session

        spark = spark_session("local[2]", driver_memory=driver_memory)
        jvm = time.perf_counter() - started
        started = time.perf_counter()
        result = prepare_spark(path, spark=spark, **OPTIONS)  # type: ignore[arg-type]
    else:
        from sessionrec.data.prepare import prepare

        jvm = 0.0
        result = prepare(path, **OPTIONS)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    summary = result.summary()
    print(json.dumps({"engine": engine, "seconds": seconds, "startup": jvm, **summary}))


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * page
        except OSError:
            pass
    return total


def measure(engine: str, path: Path, driver_memory: str) -> dict[str, object]:
    command = [sys.executable, __file__, "--run", engine, "--input", str(path)]
    command += ["--driver-memory", driver_memory]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.2)
    out = child.stdout.read() if child.stdout else ""
    if child.returncode != 0:
        return {"engine": engine, "error": f"exit {child.returncode}"}
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    result["peak_rss_gib"] = peak / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000_000)
    parser.add_argument("--chunk", type=int, default=500_000, help="sessions per write")
    parser.add_argument("--dir", default="/tmp/sessionrec-bench", help="where the log goes")
    parser.add_argument("--engines", default="polars,spark")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--check", action="store_true", help="assert identical results")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run, args.input, args.driver_memory)
        return
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"otto-synthetic-{args.events}.parquet"
    if not path.exists():
        started = time.perf_counter()
        sizes = generate(path, args.events, args.chunk)
        print(
            json.dumps({"generated": str(path), **sizes, "seconds": time.perf_counter() - started})
        )
    rows = [measure(engine, path, args.driver_memory) for engine in args.engines.split(",")]
    for row in rows:
        print(json.dumps(row))
    print(f"{'engine':8} {'prepare s':>10} {'startup s':>10} {'peak RSS GiB':>13} {'events':>12}")
    for row in rows:
        if "error" in row:
            print(f"{row['engine']:8} {row['error']}")
            continue
        print(
            f"{row['engine']:8} {row['seconds']:10.1f} {row['startup']:10.1f} "
            f"{row['peak_rss_gib']:13.2f} {row['train_full_events']:12,}"
        )
    if args.check:
        from sessionrec.data.prepare import prepare
        from sessionrec.data.spark import prepare_spark

        a = prepare(path, **OPTIONS)  # type: ignore[arg-type]
        b = prepare_spark(path, **OPTIONS)  # type: ignore[arg-type]
        for part in ("train", "valid", "train_full", "test"):
            x, y = getattr(a, part), getattr(b, part)
            assert x.vocab == y.vocab and np.array_equal(x.items, y.items), part
            assert np.array_equal(x.offsets, y.offsets) and np.array_equal(x.times, y.times), part
        print("identical parts: yes")


if __name__ == "__main__":
    main()
