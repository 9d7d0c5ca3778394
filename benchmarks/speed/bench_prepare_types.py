"""Speed of ``prepare`` on a multi-type click log: event types mapped, kept and carried.

Usage::

    .venv/bin/python -m benchmarks.speed.bench_prepare_types [--events 10000000]
        [--layout taobao|parquet] [--seed 0] [--workdir DIR] [--write-dataset]

Two steps, each in its own child process so that its wall time and peak memory (the
child's ``ru_maxrss``) are its own:

1. **write**: :func:`sessionrec.data.synthetic.generate_clicks` draws a visitor log with
   planted intents (views, carts, purchases) and writes it to a temporary folder, either
   as Taobao's ``UserBehavior.csv`` (``--layout taobao``, the default: no header,
   ``user_id,item_id,category_id,behavior_type,timestamp``, raw types ``pv``/``cart``/
   ``buy`` and 3% of the views written as ``fav``, whole seconds) or as Parquet with the
   columns ``user_id, item_id, timestamp, event_type`` in OTTO's words ``clicks``/
   ``carts``/``orders`` (``--layout parquet``, read without a preset);
2. **prepare**: :func:`sessionrec.data.prepare.prepare` with the defaults (the taobao
   preset, or the column names): read, map the raw types to view/cart/purchase (keeping
   ``raw_event_type``), cut 30-minute sessions, remove repeats keeping the strongest type,
   filter, split; ``--write-dataset`` also times :func:`write_prepared`.

Prints the per-stage times of prepare (from its log), the event types before and after,
and one Markdown row. Target on the 2-core development machine: prepare of 10M events
under 30 s.
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

from benchmarks.common import child_done, load_average, print_stages, run_child

FAV_SHARE = 0.03  # views written as Taobao favourites (fav -> view by default)


def child_write(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import polars as pl

    from sessionrec.data.synthetic import generate_shop

    started = time.perf_counter()
    shop = generate_shop(args.events, seed=args.seed, n_items=200_000)
    generate_s = time.perf_counter() - started
    log = shop.clicks
    started = time.perf_counter()
    if args.layout == "taobao":
        words = pl.Series(["pv", "cart", "buy"])
        codes = log["event_type"].replace_strict({"view": 0, "cart": 1, "purchase": 2})
        fav = (np.random.default_rng(args.seed).random(log.height) < FAV_SHARE) & (
            codes.to_numpy() == 0
        )
        category = shop.catalog.select(
            "item_id", pl.col("category").rank("dense").cast(pl.Int64).alias("category_id")
        )
        out = log.join(category, on="item_id", how="left", maintain_order="left").select(
            "user_id",
            "item_id",
            "category_id",
            pl.when(pl.Series(fav))
            .then(pl.lit("fav"))
            .otherwise(words.gather(codes))
            .alias("behavior_type"),
            pl.col("timestamp").floor().cast(pl.Int64),
        )
        out.write_csv(args.path, include_header=False)
    else:
        words = {"view": "clicks", "cart": "carts", "purchase": "orders"}
        log.select(
            "user_id", "item_id", "timestamp", pl.col("event_type").replace_strict(words)
        ).write_parquet(args.path)
    counts = dict(log["event_type"].value_counts().iter_rows())
    return {
        "generate_s": generate_s,
        "write_s": time.perf_counter() - started,
        "bytes": Path(args.path).stat().st_size,
        "types": counts,
    }


class _StageClock(logging.Handler):
    """Records when each step of prepare logs its completion."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.marks: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.marks.append((time.perf_counter(), record.getMessage().split(": ")[0][:90]))


def child_prepare(args: argparse.Namespace) -> dict[str, Any]:
    from sessionrec.data.prepare import prepare, write_prepared

    clock = _StageClock()
    logger = logging.getLogger("sessionrec.data")
    logger.addHandler(clock)
    logger.setLevel(logging.INFO)
    started = time.perf_counter()
    if args.layout == "taobao":
        result = prepare(args.path, preset="taobao")
    else:
        columns = {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp"}
        result = prepare(args.path, columns={**columns, "event_type": "event_type"})
    prepare_s = time.perf_counter() - started
    stages, last = [], started
    for moment, message in clock.marks:
        stages.append((round(moment - last, 2), message))
        last = moment
    full = result.train_full
    kept = {name: int(full.type_mask(name).sum()) for name in ("view", "cart", "purchase")}
    out: dict[str, Any] = {
        "prepare_s": prepare_s,
        "stages": stages,
        "read_types": result.report["steps"]["event_types"],
        "train_full_types": kept,
        "raw_event_types": list(full.raw_event_types),
        **result.summary(),
    }
    if args.write_dataset:
        started = time.perf_counter()
        write_prepared(result, Path(args.workdir) / "dataset")
        out["write_dataset_s"] = time.perf_counter() - started
    return out


def run_step(step: str, args: argparse.Namespace, path: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.speed.bench_prepare_types",
        "--child",
        step,
        "--path",
        str(path),
        "--events",
        str(args.events),
        "--seed",
        str(args.seed),
        "--layout",
        args.layout,
        "--workdir",
        str(path.parent),
    ] + (["--write-dataset"] if args.write_dataset else [])
    return run_child(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=["taobao", "parquet"], default="taobao")
    parser.add_argument("--workdir", help="folder for the log (default: a temporary one)")
    parser.add_argument("--write-dataset", action="store_true", help="also time write_prepared")
    parser.add_argument("--child", choices=["write", "prepare"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child_done(child_write(args) if args.child == "write" else child_prepare(args))
        return

    load_before = load_average()
    suffix = "csv" if args.layout == "taobao" else "parquet"
    with tempfile.TemporaryDirectory(prefix="sessionrec-types-", dir=args.workdir) as tmp:
        path = Path(tmp) / f"UserBehavior.{suffix}"
        write = run_step("write", args, path)
        prepared = run_step("prepare", args, path)
    print_stages("prepare", prepared["stages"])
    sys.stderr.write(
        f"generated types {write['types']}; read as {prepared['read_types']}; "
        f"train_full keeps {prepared['train_full_types']} "
        f"(raw {prepared['raw_event_types']})\n"
        f"load average before: {load_before}; after: {load_average()}\n"
    )
    cpu = os.cpu_count()
    print(
        "| events | input | generate s | write s (MB) | prepare s | peak MB | train_full "
        "clicks | test clicks | machine |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {args.events:,} | {args.layout} | {write['generate_s']:.1f} "
        f"| {write['write_s']:.1f} ({write['bytes'] / 1e6:,.0f}) "
        f"| {prepared['prepare_s']:.1f} | {prepared['peak_mb']:,.0f} "
        f"| {prepared['train_full_events']:,} | {prepared['test_events']:,} "
        f"| {cpu} CPUs, {platform.machine()}, Python {platform.python_version()} |"
    )
    if args.write_dataset:
        sys.stderr.write(f"write_prepared: {prepared['write_dataset_s']:.1f} s\n")


if __name__ == "__main__":
    main()
