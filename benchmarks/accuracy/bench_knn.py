"""The session-kNN family on the public benchmark splits: accuracy, speed, latency, memory.

Usage (single-threaded, as in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_knn \\
        [--data ../shared/data] [--datasets diginetica,yoochoose-1_64] \\
        [--models sknn,vsknn,stan,vstan,vmisknn] [--params-dir DIR] [--protocol] [--cold]

For every (dataset, model) it prints one Markdown row:

- HR@20 / MRR@20 (percent, benchmark protocol, pessimistic ties). By default from the models'
  sparse ``target_ranks`` (identical to the protocol's ranks, see tests/models/test_knn.py);
  ``--protocol`` also runs :func:`sessionrec.evaluation.protocol.evaluate` (dense rows) and
  reports its metrics and time.
- fit seconds (median of 3), evaluation seconds (all test cases), both as wall clock and as
  CPU time of the process (the fairer figure on a shared machine), and the first-call seconds
  (Numba: loading cached machine code, or compiling it with ``--cold``, which points
  ``NUMBA_CACHE_DIR`` at an empty folder).
- single-session latency: ``model.top_k`` on one-session batches, k=20, over every test
  prefix, p50 / p99 in milliseconds, as wall clock and as the thread's CPU time (which
  leaves out time descheduled on a busy machine), and the wall-clock p50 / p99 of a fixed
  amount of work of similar duration timed the same way (the machine's noise floor).
- model size on disk (``save``) and in memory (the arrays of the learned state), and the
  process's resident-set growth while fitting.

``--params-dir`` reads tuned hyperparameters from ``DIR/<model>-<dataset>.json`` or
``DIR/best_<dataset>_<model>.json`` (what ``sessionrec tune --output`` writes); without it,
or for a pair without a file, the defaults run. ``--yardstick`` adds the
issue's V-SKNN configuration (k=100 of 500, linear decay, dot product / distinct items).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BENCHMARK_FOLDERS, PARAMS, SHARED_DATA, read_params_file

MODELS = ("sknn", "vsknn", "stan", "vstan", "vmisknn")
# The V-SKNN configuration: k=100 of 500, linear decay, dot product / distinct items.
YARDSTICK = read_params_file(PARAMS / "vsknn-yardstick.json")
REFERENCE = {  # HR@20 / MRR@20 of the issue: yardstick and targets
    ("diginetica", "yardstick"): (49.08, 17.42),
    ("yoochoose-1_64", "yardstick"): (63.81, 25.70),
    ("diginetica", "target"): (50.73, 17.59),
    ("yoochoose-1_64", "target"): (68.0, 29.0),
}


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def load_params(params_dir: Path | None, dataset: str, model: str) -> dict[str, Any]:
    if params_dir is None:
        return {}
    # benchmarks/params/ names them MODEL-DATASET.json; best_DATASET_MODEL.json is the
    # name the tuning runs of BENCHMARKS.md wrote.
    names = (f"{model}-{dataset}.json", f"best_{dataset}_{model}.json")
    for path in (params_dir / name for name in names):
        if path.is_file():
            return read_params_file(path)
    print(f"# no tuned parameters for {model} on {dataset} in {params_dir}", file=sys.stderr)
    return {}


def run(
    dataset: str, label: str, name: str, params: dict[str, Any], data: Any, args: Any
) -> dict[str, Any]:
    from sessionrec.data.sessions import gather_ranges
    from sessionrec.evaluation import metrics
    from sessionrec.evaluation.protocol import evaluate, make_cases
    from sessionrec.models.base import SessionBatch
    from sessionrec.models.registry import create_model

    train, test = data
    rss_before = rss_bytes()
    fit_times, fit_cpu = [], []
    for _ in range(3):
        model = create_model(name, params)
        started, started_cpu = time.perf_counter(), time.process_time()
        model.fit(train)
        fit_times.append(time.perf_counter() - started)
        fit_cpu.append(time.process_time() - started_cpu)
    rss_growth = rss_bytes() - rss_before

    mapped = model.vocab_.encode(test.vocab.ids).astype(np.int64)[test.items]
    cases = make_cases(test, "next")
    targets = mapped[cases.starts + cases.lengths]

    def prefix_batch(lo: int, hi: int) -> SessionBatch:
        lengths = cases.lengths[lo:hi]
        click = gather_ranges(cases.starts[lo:hi], lengths)
        items = mapped[click]
        keep = items >= 0
        owner = np.repeat(np.arange(hi - lo), lengths)[keep]
        offsets = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=hi - lo), out=offsets[1:])
        return SessionBatch(offsets=offsets, items=items[keep].astype(np.int32))

    started = time.perf_counter()
    first = prefix_batch(0, 2)
    model.top_k(first, 20)
    model.target_ranks(first, targets[:2])
    model.score(first)
    first_call = time.perf_counter() - started

    started, started_cpu = time.perf_counter(), time.process_time()
    ranks = np.concatenate(
        [
            model.target_ranks(
                prefix_batch(lo, min(lo + 8192, len(cases))), targets[lo : lo + 8192]
            )
            for lo in range(0, len(cases), 8192)
        ]
    )
    eval_seconds = time.perf_counter() - started
    eval_cpu = time.process_time() - started_cpu
    row: dict[str, Any] = {
        "dataset": dataset,
        "model": label,
        "params": model.get_params(),
        "n_cases": len(cases),
        "hr@20": 100 * metrics.hit_rate(ranks, 20),
        "mrr@20": 100 * metrics.mrr(ranks, 20),
        "fit_seconds": float(np.median(fit_times)),
        "fit_cpu_seconds": float(np.median(fit_cpu)),
        "eval_seconds": eval_seconds,
        "eval_cpu_seconds": eval_cpu,
        "first_call_seconds": first_call,
    }
    if args.protocol:
        result = evaluate(model, test, protocol="benchmark", cutoffs=(20,))
        row["protocol_hr@20"] = result.metrics()["hr@20"]
        row["protocol_mrr@20"] = result.metrics()["mrr@20"]
        row["protocol_eval_seconds"] = result.predict_seconds

    # Single-session latency: one top_k call per test prefix, batches built beforehand.
    # Wall clock includes time the process spends descheduled on a busy machine; the
    # thread's CPU time does not. The same loop around a fixed amount of work of similar
    # duration (sorting 3,000 floats) shows the machine's own noise at that duration.
    singles = [prefix_batch(i, i + 1) for i in range(len(cases))]
    wall, cpu, floor = (np.empty(len(singles)) for _ in range(3))
    fixed = np.random.default_rng(0).random(3000)
    for i, batch in enumerate(singles):
        started_ns, started_cpu_ns = time.perf_counter_ns(), time.thread_time_ns()
        model.top_k(batch, 20)
        wall[i] = (time.perf_counter_ns() - started_ns) / 1e6
        cpu[i] = (time.thread_time_ns() - started_cpu_ns) / 1e6
        started_ns = time.perf_counter_ns()
        np.sort(fixed)
        floor[i] = (time.perf_counter_ns() - started_ns) / 1e6
    for key, values in (("latency_ms", wall), ("latency_cpu_ms", cpu), ("noise_floor_ms", floor)):
        row[key] = {
            "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)),
            "mean": float(values.mean()),
        }

    state = model._get_state()
    row["state_mb"] = sum(a.nbytes for a in state.values()) / 2**20
    row["weights_mb"] = sum(a.nbytes for a in model.weights_) / 2**20
    row["rss_growth_mb"] = rss_growth / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        row["disk_mb"] = folder_bytes(model.save(Path(tmp) / "model")) / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--datasets", default=",".join(BENCHMARK_FOLDERS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--params-dir",
        type=Path,
        help="tuned parameters: <model>-<dataset>.json or best_<dataset>_<model>.json",
    )
    parser.add_argument("--yardstick", action="store_true", help="add the issue's V-SKNN row")
    parser.add_argument("--protocol", action="store_true", help="also time the dense protocol")
    parser.add_argument("--cold", action="store_true", help="compile the kernels from scratch")
    parser.add_argument("--json-out", type=Path, help="also write the raw rows here")
    args = parser.parse_args()
    if args.cold:  # must happen before numba is imported
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cold-")

    from sessionrec.evaluation.protocol import BenchmarkFolder

    columns = [
        "dataset",
        "model",
        "HR@20",
        "MRR@20",
        "fit s (cpu)",
        "eval s (cpu)",
        "first call s",
        "latency p50 / p99 ms",
        "disk MB",
        "state MB",
        "RSS growth MB",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * (len(columns) - 2))
    rows = []
    for dataset in args.datasets.split(","):
        folder = BenchmarkFolder(args.data / BENCHMARK_FOLDERS[dataset])
        data = (folder.train(), folder.test())
        runs = [("vsknn (yardstick)", "vsknn", YARDSTICK)] if args.yardstick else []
        runs += [
            (name, name, load_params(args.params_dir, dataset, name))
            for name in args.models.split(",")
            if name  # --models '' with --yardstick: the yardstick alone
        ]
        for label, name, params in runs:
            row = run(dataset, label, name, params, data, args)
            rows.append(row)
            lat = row["latency_ms"]
            cells = [
                dataset,
                label,
                f"{row['hr@20']:.2f}",
                f"{row['mrr@20']:.2f}",
                f"{row['fit_seconds']:.2f} ({row['fit_cpu_seconds']:.2f})",
                f"{row['eval_seconds']:.1f} ({row['eval_cpu_seconds']:.1f})",
                f"{row['first_call_seconds']:.2f}",
                f"{lat['p50']:.3f} / {lat['p99']:.3f}",
                f"{row['latency_cpu_ms']['p50']:.3f} / {row['latency_cpu_ms']['p99']:.3f}",
                f"{row['noise_floor_ms']['p50']:.3f} / {row['noise_floor_ms']['p99']:.3f}",
                f"{row['disk_mb']:.1f}",
                f"{row['state_mb']:.1f}",
                f"{row['rss_growth_mb']:.0f}",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
            if args.protocol:
                cells = ["", "(protocol evaluate)", f"{row['protocol_hr@20']:.2f}"]
                cells += [f"{row['protocol_mrr@20']:.2f}", ""]
                cells += [f"{row['protocol_eval_seconds']:.1f}", "", "", "", "", "", "", ""]
                print("| " + " | ".join(cells) + " |", flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
