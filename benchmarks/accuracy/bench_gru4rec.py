"""GRU4Rec: ours side by side with the official PyTorch code, and the benchmark protocol.

The official code (github.com/hidasib/GRU4Rec_PyTorch_Official) is licensed for research
only: it is never copied here. Check it out outside the repository and give its folder and a
Python that has torch, numpy<2 and pandas<2.3 (what it runs with today)::

    git clone <the official repository> /tmp/gru4rec_official
    python -m venv /tmp/offvenv && /tmp/offvenv/bin/pip install torch "numpy<2" "pandas<2.3"

Commands (always pin the thread count: on a shared 2-core machine it changes speed 20x)::

    # YooChoose rsc15-100k, train_full -> test, next-item protocol, the official rsc15
    # cross-entropy parameters (100 units, batch 32, n_sample 2048), both implementations
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_gru4rec side-by-side \
        --dataset rsc15-100k --epochs 5 --threads 1 \
        --official /tmp/gru4rec_official --official-python /tmp/offvenv/bin/python
    # Diginetica benchmark split, the official Diginetica BPR-max parameters, epoch time
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_gru4rec side-by-side \
        --dataset diginetica --epochs 1 --threads 1 --official ... --official-python ...
    # serving latency of a saved model: served (exact int8-assisted) vs dense top-20
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_gru4rec serving \
        --dataset diginetica --model-dir models/gru4rec
    # benchmark protocol with selection on validation only (last 10% of train_sessions.txt):
    # train on the first 90%, keep the epoch with the best validation HR@20, report test
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_gru4rec protocol \
        --dataset diginetica --threads 1 [--param key=value ...]
    # ... then train on the whole training file for the selected epochs and test that too
    # (--refit), or only that for N epochs chosen by an earlier validation run
    # (--refit-epochs N; benchmarks/accuracy/protocol_refit.py)
    # the setting chosen on validation for a folder, trained on all of train_sessions.txt
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_gru4rec protocol \
        --dataset yoochoose-1_64 --preset benchmark-yoochoose-1_64 --refit-epochs 23

Both implementations get the same data in the same order (sessions by start time) and the
same hyperparameters; both are timed per epoch (wall clock, and process CPU time, which is
steadier when other jobs share the machine). Throughput is training examples (clicks with a
next click) per second of epoch wall time, the same count for both. The official code
ranks with its own evaluation (here in "conservative" mode: ties count against the target,
as ours); ours goes through :func:`sessionrec.evaluation.protocol.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.accuracy.protocol_refit import add_refit_arguments, refit
from benchmarks.common import SHARED_DATA
from sessionrec.data.events import read_events
from sessionrec.data.formats import read_sessions_txt
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate
from sessionrec.models.base import Recommender
from sessionrec.models.neural.gru4rec import GRU4Rec, presets
from sessionrec.models.neural.gru4rec_training import SessionParallelEpoch
from sessionrec.models.registry import load_model, parse_params

DATASETS: dict[str, dict[str, Any]] = {
    "rsc15-100k": {
        "train": "yoochoose/rsc15-100k/yoochoose-clicks-100k_train_full.txt",
        "test": "yoochoose/rsc15-100k/yoochoose-clicks-100k_test.txt",
        "preset": "rsc15-100",
        "protocol": "next",
    },
    "diginetica": {"folder": "diginetica/srgnn", "preset": "diginetica", "protocol": "benchmark"},
    "yoochoose-1_64": {
        "folder": "yoochoose/srgnn-1_64",
        "preset": "yoochoose",
        "protocol": "benchmark",
    },
}
# Our names -> the official code's (layers is a list there, written "100" on its command line).
OFFICIAL_NAMES = {
    "loss": "loss",
    "constrained_embedding": "constrained_embedding",
    "hidden_size": "layers",
    "batch_size": "batch_size",
    "dropout_p_embed": "dropout_p_embed",
    "dropout_p_hidden": "dropout_p_hidden",
    "learning_rate": "learning_rate",
    "momentum": "momentum",
    "n_sample": "n_sample",
    "sample_alpha": "sample_alpha",
    "bpreg": "bpreg",
    "elu_param": "elu_param",
    "logq": "logq",
    "n_epochs": "n_epochs",
}

# Runs in the official code's environment: imports its module from the checkout, fits with
# the given parameters, and times every epoch by handing its epoch timer a clock that reads
# process CPU time while recording wall time (its own output stays untouched).
OFFICIAL_DRIVER = r"""
import contextlib, io, json, re, sys, time, types
args = json.loads(sys.argv[1])
sys.path.insert(0, args["official"])
import pandas as pd, torch
torch.set_num_threads(args["threads"])
import gru4rec_pytorch, evaluation
walls = []
def clock():
    walls.append(time.perf_counter())
    return time.process_time()
gru4rec_pytorch.time = types.SimpleNamespace(time=clock)
read = lambda p: pd.read_csv(p, sep="\t", dtype={"SessionId": "int32", "ItemId": "str"})
train, test = read(args["train"]), read(args["test"])
gru = gru4rec_pytorch.GRU4Rec(device=torch.device("cpu"))
with contextlib.redirect_stdout(io.StringIO()) as log:
    gru.set_params(**args["params"])
    started = time.perf_counter()
    gru.fit(train)
    fit_wall = time.perf_counter() - started
lines = [l for l in log.getvalue().splitlines() if l.startswith("Epoch")]
cpu = [float(re.search(r"\(([0-9.]+)s\)", l).group(1)) for l in lines]
ends = walls[-2 * len(cpu):]
wall = [ends[2 * i + 1] - ends[2 * i] for i in range(len(cpu))]
with contextlib.redirect_stdout(io.StringIO()):
    recall, mrr = evaluation.batch_eval(gru, test, cutoff=[20], mode="conservative")
print(json.dumps({"epoch_wall": wall, "epoch_cpu": cpu, "fit_wall": fit_wall,
                  "hr@20": 100 * float(recall[20]), "mrr@20": 100 * float(mrr[20]),
                  "log": lines}))
"""


def load(dataset: str) -> tuple[SessionData, SessionData]:
    spec = DATASETS[dataset]
    if "folder" in spec:
        folder = BenchmarkFolder(SHARED_DATA / spec["folder"])
        return folder.train(), folder.test()
    train = SessionData.from_frame(read_events(SHARED_DATA / spec["train"], preset="gru4rec"))
    test = SessionData.from_frame(read_events(SHARED_DATA / spec["test"], preset="gru4rec"))
    return train, test


def write_tsv(data: SessionData, path: Path) -> None:
    """The official code's input: SessionId, ItemId (external), Time keeping our order."""
    session = data.session_index()
    position = np.arange(data.n_events) - data.offsets[session]
    times = data.times if data.times is not None else session * 1000.0 + position
    ids = data.vocab.ids[data.items]
    with path.open("w") as handle:
        handle.write("SessionId\tItemId\tTime\n")
        for s, i, t in zip(session.tolist(), ids.tolist(), times.tolist(), strict=True):
            handle.write(f"{s}\t{i}\t{t!r}\n")


def official_params(params: dict[str, Any]) -> dict[str, str]:
    out = {OFFICIAL_NAMES[k]: str(v) for k, v in params.items() if k in OFFICIAL_NAMES}
    out.setdefault("embedding", "0")
    return out


def run_ours(
    params: dict[str, Any], train: SessionData, test: SessionData, protocol: str
) -> dict[str, Any]:
    """Fit and evaluate ours, timing every epoch (wall and process CPU)."""
    cpu: list[float] = []
    wall: list[float] = []
    run = SessionParallelEpoch.run

    def timed(self: Any, epoch: int) -> tuple[float, int]:
        c, w = time.process_time(), time.perf_counter()
        out = run(self, epoch)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
        return out

    SessionParallelEpoch.run = timed  # type: ignore[method-assign]
    try:
        model = GRU4Rec(**params)
        started = time.perf_counter()
        model.fit(train)
        fit_wall = time.perf_counter() - started
    finally:
        SessionParallelEpoch.run = run  # type: ignore[method-assign]
    metrics = evaluate(model, test, protocol=protocol, cutoffs=(20,)).metrics()
    return {
        "epoch_wall": wall,
        "epoch_cpu": cpu,
        "fit_wall": fit_wall,
        "examples": int(model.epoch_examples_[0]),
        "loss": model.epoch_losses_.tolist(),
        "hr@20": metrics["hr@20"],
        "mrr@20": metrics["mrr@20"],
    }


def side_by_side(args: argparse.Namespace) -> None:
    spec = DATASETS[args.dataset]
    params = {**presets()[spec["preset"]], "n_epochs": args.epochs, **args.params}
    params.update(patience=0, valid_fraction=0.0, device="cpu")
    train, test = load(args.dataset)
    results: dict[str, Any] = {"dataset": args.dataset, "threads": args.threads, "params": params}
    with tempfile.TemporaryDirectory() as tmp:
        train_tsv, test_tsv = Path(tmp) / "train.tsv", Path(tmp) / "test.tsv"
        write_tsv(train, train_tsv)
        write_tsv(test, test_tsv)
        if args.official:
            payload = {
                "official": str(args.official),
                "threads": args.threads,
                "train": str(train_tsv),
                "test": str(test_tsv),
                "params": official_params(params),
            }
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            done = subprocess.run(
                [str(args.official_python), "-c", OFFICIAL_DRIVER, json.dumps(payload)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if done.returncode:
                sys.exit(f"the official code failed:\n{done.stderr[-3000:]}")
            results["official"] = json.loads(done.stdout.strip().splitlines()[-1])
        results["ours"] = run_ours(params, train, test, spec["protocol"])
    examples = results["ours"]["examples"]
    print(f"{args.dataset}, {args.threads} thread(s), {args.epochs} epoch(s), {examples} examples")
    print("| implementation | HR@20 | MRR@20 | s/epoch (median wall) | CPU s/epoch | examples/s |")
    print("|---|---:|---:|---:|---:|---:|")
    rates = {}
    for name in ("official", "ours"):
        if name not in results:
            continue
        r = results[name]
        wall = statistics.median(r["epoch_wall"])
        rates[name] = examples / wall
        print(
            f"| {name} | {r['hr@20']:.2f} | {r['mrr@20']:.2f} | {wall:.1f} | "
            f"{statistics.median(r['epoch_cpu']):.1f} | {rates[name]:,.0f} |"
        )
    if len(rates) == 2:
        o, u = results["official"], results["ours"]
        print(
            f"ours / official: throughput x{rates['ours'] / rates['official']:.2f}, "
            f"HR@20 {100 * (u['hr@20'] / o['hr@20'] - 1):+.1f}%, "
            f"MRR@20 {100 * (u['mrr@20'] / o['mrr@20'] - 1):+.1f}% (relative)"
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")


def protocol(args: argparse.Namespace) -> None:
    """Select epochs on the last 10% of train_sessions.txt; report test of the selection."""
    spec = DATASETS[args.dataset]
    if "folder" not in spec:
        sys.exit("protocol runs use a benchmark folder (diginetica, yoochoose-1_64)")
    preset = args.preset or spec["preset"]
    params = {**presets()[preset], "device": "cpu", **args.params}  # --param device=cuda
    full = read_sessions_txt(SHARED_DATA / spec["folder"] / "train_sessions.txt")
    test = read_sessions_txt(SHARED_DATA / spec["folder"] / "test_sessions.txt")
    if args.refit_epochs:
        figures = refit(lambda p: GRU4Rec(**p), params, full, test, args.refit_epochs)
        result = {"dataset": args.dataset, "threads": args.threads}
        print(json.dumps(result | {"refit": figures}, indent=2))
        return
    train, valid = last_fraction_split(full, 0.1)
    started = time.perf_counter()
    model = GRU4Rec(**params).fit(train, valid)
    fit_wall = time.perf_counter() - started
    metrics = evaluate(model, test, protocol="benchmark", cutoffs=(20,)).metrics()
    serving = serving_latency(model, test)
    result = {
        "dataset": args.dataset,
        "threads": args.threads,
        "params": params,
        "epoch_valid": model.epoch_valid_.tolist(),
        "epoch_seconds": model.epoch_seconds_.tolist(),
        "epoch_loss": model.epoch_losses_.tolist(),
        "best_epoch": model.best_epoch_,
        "fit_seconds": fit_wall,
        "test_hr@20": metrics["hr@20"],
        "test_mrr@20": metrics["mrr@20"],
        "serving": serving,
    }
    print(json.dumps(result, indent=2), flush=True)
    if args.refit:  # printed on its own: the selection's figures are out if the refit dies
        figures = refit(lambda p: GRU4Rec(**p), params, full, test, model.best_epoch_)
        result["refit"] = figures
        print(json.dumps({"dataset": args.dataset, "refit": figures}, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")


def serving_latency(model: GRU4Rec, test: SessionData, n: int = 300) -> dict[str, Any]:
    """Median and p99 ms of the top 20 of one live five-click session, served and dense.

    "served" is the model's own top_k (the exact int8-assisted search for a few sessions),
    "dense" the base class's full product; both run on the same sessions in the same run,
    and every served list is compared with the dense one.
    """
    sessions = [test.vocab.decode(test.session(s))[:5] for s in range(test.n_sessions)]
    batches = [model.encode_sessions([x]) for x in sessions if len(x) == 5]
    batches = [b for b in batches if (model.item_counts_[b.items] > 0).any()][:n]
    result: dict[str, Any] = {"sessions": len(batches)}
    lists = {}
    for name, top_k in (
        ("served", model.top_k),
        ("dense", lambda batch, k: Recommender.top_k(model, batch, k)),
    ):
        latencies, lists[name] = [], []
        for batch in batches:
            started = time.perf_counter()
            lists[name].append(top_k(batch, 20)[0][0])
            latencies.append(1000 * (time.perf_counter() - started))
        result[f"{name}_ms_p50_p99"] = (
            statistics.median(latencies),
            float(np.percentile(latencies, 99)),
        )
    result["identical_lists"] = sum(
        np.array_equal(a, b) for a, b in zip(lists["served"], lists["dense"], strict=True)
    )
    return result


def serving(args: argparse.Namespace) -> None:
    """Serving latency of a saved model on a benchmark folder's test sessions."""
    model = load_model(args.model_dir)
    if not isinstance(model, GRU4Rec):
        sys.exit(f"{args.model_dir} is not a GRU4Rec model")
    test = read_sessions_txt(SHARED_DATA / DATASETS[args.dataset]["folder"] / "test_sessions.txt")
    result = {"model_dir": str(args.model_dir), "threads": args.threads}
    result.update(serving_latency(model, test))
    print(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("side-by-side", "protocol", "serving"):
        p = sub.add_parser(name)
        p.add_argument("--dataset", choices=sorted(DATASETS), required=True)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--param", action="append", default=[], help="override: key=value")
        p.add_argument("--json-out", type=Path)
        if name == "side-by-side":
            p.add_argument("--epochs", type=int, default=5)
            p.add_argument("--official", type=Path, help="checkout of the official code")
            p.add_argument("--official-python", type=Path, default=Path(sys.executable))
        if name == "protocol":
            add_refit_arguments(p)
            p.add_argument(
                "--preset",
                choices=sorted(presets()),
                help="the parameters --param overrides (default: the dataset's official file)",
            )
        if name == "serving":
            p.add_argument("--model-dir", type=Path, required=True, help="a saved gru4rec")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if os.environ.get("OMP_NUM_THREADS") != str(args.threads):
        print(f"warning: OMP_NUM_THREADS is not {args.threads}", file=sys.stderr)
    args.params = parse_params("gru4rec", args.param)
    {"side-by-side": side_by_side, "protocol": protocol, "serving": serving}[args.command](args)


if __name__ == "__main__":
    main()
