"""Scale of the data pipeline: read, sessionize, clean and split a 20M-click visitor log.

Usage::

    .venv/bin/python -m benchmarks.speed.bench_data_scale [--events 20000000] [--format csv]
        [--generator synthetic|numpy] [--seed 0] [--workdir DIR] [--write-dataset]

Two steps, each in its own child process so that its wall time and peak memory (the
child's ``ru_maxrss``) are its own:

1. **write**: generate a visitor log (``user_id, item_id, timestamp, event_type``; the true
   ``session_id`` is dropped) with :func:`sessionrec.data.synthetic.generate_clicks` (or,
   with ``--generator numpy``, a small vectorised generator of this script) and write it
   as CSV or Parquet to a temporary folder;
2. **pipeline**: :func:`sessionrec.data.prepare.prepare` on that file with the defaults
   (30-minute sessions, repeats removed, items with >= 5 clicks and sessions with >= 2
   fixpoint-filtered, last day as test, the day before as validation, test and validation
   restricted to training items) up to the four ``SessionData`` parts; ``--write-dataset``
   also times :func:`write_prepared`.

Prints the per-stage times of the pipeline (from its log) and one Markdown row. Target on
the 2-core development machine: pipeline under 60 s and 4 GB for 20M clicks.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import child_done, print_stages, run_child

DAY = 86_400.0

COLUMNS = {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp"}


def numpy_clicks(n_events: int, seed: int) -> Any:
    """A plain visitor log: geometric session lengths (mean 4), clicks about a minute
    apart, sessions anywhere in 30 days, two sessions per visitor, Zipf items."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    lengths = rng.geometric(0.25, n_events // 2 + 16)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_events) + 1]
    lengths[-1] -= int(lengths.sum()) - n_events
    session = np.repeat(np.arange(lengths.size), lengths)
    start = rng.random(lengths.size) * 30 * DAY + 1_767_225_600.0
    gaps = rng.exponential(60.0, n_events)
    gaps[np.cumsum(lengths) - lengths] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[np.cumsum(lengths) - lengths], lengths)
    times = (start[session] + elapsed).round(3)
    order = np.argsort(times, kind="stable")
    items = np.minimum(rng.zipf(1.2, n_events), 200_000) + 1_000_000
    events = rng.choice(np.array(["view", "cart", "purchase"]), n_events, p=[0.9, 0.07, 0.03])
    return pl.DataFrame(
        {
            "user_id": session[order] // 2,
            "item_id": items[order],
            "timestamp": times[order],
            "event_type": events[order],
        }
    )


def child_write(args: argparse.Namespace) -> dict[str, Any]:
    if args.generator == "synthetic":
        from sessionrec.data.synthetic import generate_clicks

        log = generate_clicks(args.events, seed=args.seed, n_items=200_000).drop("session_id")
    else:
        log = numpy_clicks(args.events, args.seed)
    started = time.perf_counter()
    if args.format == "csv":
        log.write_csv(args.path)
    else:
        log.write_parquet(args.path)
    return {"write_s": time.perf_counter() - started, "bytes": Path(args.path).stat().st_size}


class _StageClock(logging.Handler):
    """Records when each step of prepare logs its completion."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.marks: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.marks.append((time.perf_counter(), record.getMessage().split(": ")[0][:90]))


def child_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from sessionrec.data.prepare import prepare, write_prepared

    clock = _StageClock()
    logger = logging.getLogger("sessionrec.data")
    logger.addHandler(clock)
    logger.setLevel(logging.INFO)
    started = time.perf_counter()
    columns = dict(COLUMNS, event_type="event_type")
    result = prepare(args.path, columns=columns, time_unit="s")
    pipeline_s = time.perf_counter() - started
    stages, last = [], started
    for moment, message in clock.marks:
        stages.append((round(moment - last, 2), message))
        last = moment
    out: dict[str, Any] = {"pipeline_s": pipeline_s, "stages": stages, **result.summary()}
    if args.write_dataset:
        started = time.perf_counter()
        write_prepared(result, Path(args.workdir) / "dataset")
        out["write_dataset_s"] = time.perf_counter() - started
    return out


def run_step(step: str, args: argparse.Namespace, path: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.speed.bench_data_scale",
        "--child",
        step,
        "--path",
        str(path),
        "--events",
        str(args.events),
        "--seed",
        str(args.seed),
        "--format",
        args.format,
        "--generator",
        args.generator,
        "--workdir",
        str(path.parent),
    ] + (["--write-dataset"] if args.write_dataset else [])
    return run_child(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--generator", choices=["synthetic", "numpy"], default="synthetic")
    parser.add_argument("--workdir", help="folder for the log (default: a temporary one)")
    parser.add_argument("--write-dataset", action="store_true", help="also time write_prepared")
    parser.add_argument("--child", choices=["write", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child_done(child_write(args) if args.child == "write" else child_pipeline(args))
        return

    with tempfile.TemporaryDirectory(prefix="sessionrec-scale-", dir=args.workdir) as tmp:
        path = Path(tmp) / f"clicks.{args.format}"
        write = run_step("write", args, path)
        pipeline = run_step("pipeline", args, path)
    print_stages("pipeline", pipeline["stages"])
    cpu = os.cpu_count()
    print(
        "| clicks | input | write s (MB) | pipeline s | peak MB | sessions kept | train_full "
        "clicks | test clicks | machine |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {args.events:,} | {args.format} ({args.generator}) "
        f"| {write['write_s']:.1f} ({write['bytes'] / 1e6:,.0f}) "
        f"| {pipeline['pipeline_s']:.1f} | {pipeline['peak_mb']:,.0f} "
        f"| {pipeline['train_full_sessions'] + pipeline['test_sessions']:,} "
        f"| {pipeline['train_full_events']:,} | {pipeline['test_events']:,} "
        f"| {cpu} CPUs, {platform.machine()}, Python {platform.python_version()} |"
    )
    if args.write_dataset:
        sys.stderr.write(f"write_prepared: {pipeline['write_dataset_s']:.1f} s\n")


if __name__ == "__main__":
    main()
