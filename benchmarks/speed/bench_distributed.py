"""Distributed training (``torchrun`` + DDP on CPU): throughput, scaling and accuracy vs 1 process.

Runs ``sessionrec train`` once per process count, each as a child process: 1 is the plain
``python -m sessionrec train``, N > 1 is ``python -m torch.distributed.run --standalone
--nproc-per-node N -m sessionrec train`` (gloo, data sharded by session, ``batch_size`` the
global batch, so every count trains the same model). Every child process gets one thread
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` = 1): on the shared
2-core machine N processes x 1 thread against 1 x 1 is the fair comparison (N cores against
one, no oversubscription). ``sessionrec train`` fits on the whole training file: no
validation split, so every epoch runs and the model of the last epoch is saved.

For each run it loads the saved model folder and prints one JSON line: wall seconds of the
whole command (interpreter and torch start-up, reading the data, training, saving), the
per-epoch seconds and examples (summed over all ranks; a rank whose shard runs out first
repeats a few shuffled examples, as ``DistributedSampler`` pads), the training throughput as
the median over epochs of examples / seconds (epoch 1 includes warm-up: with one or two
epochs the median is not warm-up free), and HR@20/MRR@20 in percent on the test file with the
benchmark protocol (:func:`sessionrec.evaluation.protocol.evaluate`: every prefix of every test
session, full ranking, pessimistic ties), so the accuracy of 1 and N processes is compared.
A final summary line gives, per N, the throughput ratio, the scaling efficiency
``throughput(N) / (N * throughput(1))`` (relative to the smallest count when 1 is not run),
the wall-clock speed-up and the accuracy differences. The machine is shared and noisy: the
load average is printed at the start, before and after each run and at the end; quote it
with the numbers. Commands::

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_distributed \
        --model narm --dataset diginetica --epochs 2 --processes 1,2
    # the most recent 20,000 training sessions of YooChoose 1/64 (the test set is complete)
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_distributed \
        --model stamp --dataset yoochoose-1_64 --train-sessions 20000 --epochs 2
    # GRU4Rec with its Diginetica preset, the most recent 40,000 training sessions
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_distributed \
        --model gru4rec --dataset diginetica --train-sessions 40000 --epochs 2 \
        --params-file src/sessionrec/models/neural/presets/diginetica.json
    # any benchmark folder (train_sessions.txt + test_sessions.txt), any hyperparameter
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.speed.bench_distributed \
        --model srgnn --dataset /path/to/folder --epochs 1 --param batch_size=200

Model folders and the ``--train-sessions`` subset go to a temporary folder (removed at the
end) unless ``--workdir`` names one to keep.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate
from sessionrec.models.registry import MODELS as REGISTRY
from sessionrec.models.registry import load_model

# The models that train on several processes (the others refuse under torchrun).
MODELS = tuple(name for name, cls in REGISTRY.items() if cls.trains_distributed)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# What torchrun sets for its children: inherited by the plain run, WORLD_SIZE would send
# `sessionrec train` down the distributed path without a process group to join.
TORCHRUN_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
)

log = logging.getLogger("bench_distributed")


def loadavg() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def benchmark_folder(dataset: str) -> Path:
    """A named shared benchmark or any folder with train_sessions.txt and test_sessions.txt."""
    folder = (
        SHARED_DATA / BENCHMARK_FOLDERS[dataset] if dataset in BENCHMARK_FOLDERS else Path(dataset)
    )
    BenchmarkFolder(folder)  # fails early, with a clear message, on anything else
    return folder


def recent_subset(folder: Path, n_sessions: int, target: Path) -> tuple[Path, int]:
    """A benchmark folder with the last ``n_sessions`` lines of ``folder``'s training file
    (the most recent sessions: the files are in time order) and its complete test file."""
    target.mkdir(parents=True, exist_ok=True)
    with (folder / "train_sessions.txt").open() as source:
        # deque(maxlen) keeps only the tail: the full file is never held in memory.
        lines = deque((line for line in source if line.strip()), maxlen=n_sessions)
    (target / "train_sessions.txt").write_text("".join(lines))
    # A link, not a copy: the test set stays complete and the shared data stay where they are.
    link = target / "test_sessions.txt"
    link.unlink(missing_ok=True)  # a --workdir from an earlier run
    link.symlink_to((folder / "test_sessions.txt").resolve())
    return target, len(lines)


def count_sessions(path: Path) -> int:
    with path.open() as handle:
        return sum(1 for line in handle if line.strip())


def train_command(
    model: str, processes: int, folder: Path, output: Path, params: list[str]
) -> list[str]:
    """The ``sessionrec train`` command line for ``processes`` processes."""
    if processes == 1:
        launcher = [sys.executable, "-m", "sessionrec"]
    else:
        # --standalone: a local rendezvous on a free port, so runs never collide on one.
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            "-m",
            "sessionrec",
        ]
    command = [*launcher, "train", "--model", model, "--benchmark", str(folder)]
    command += ["--output", str(output), "--json"]
    for param in params:
        command += ["--param", param]
    return command


def child_environment() -> dict[str, str]:
    """This environment with one thread per process and no inherited torchrun variables."""
    env = {key: value for key, value in os.environ.items() if key not in TORCHRUN_VARIABLES}
    env.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    return env


def train(
    model: str, processes: int, folder: Path, output: Path, params: list[str]
) -> dict[str, Any]:
    """Run ``sessionrec train`` and time it; its stderr (logs) passes through to ours."""
    command = train_command(model, processes, folder, output, params)
    log.info("running %s", " ".join(command))
    before = loadavg()
    started = time.perf_counter()
    # stdout is captured so that ours carries only this script's JSON lines.
    done = subprocess.run(command, env=child_environment(), stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    run: dict[str, Any] = {
        "processes": processes,
        "wall_seconds": round(wall, 1),
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }
    if done.returncode != 0:
        run["error"] = f"exit status {done.returncode}: {' '.join(command)}"
        return run
    # Rank 0 prints one JSON object (`--json`); anything else on stdout is not ours to parse.
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if reports:
        run["fit_seconds"] = round(float(reports[-1]["fit_seconds"]), 1)
    return run


def describe(run: dict[str, Any], output: Path, folder: BenchmarkFolder) -> None:
    """Add the saved model's epoch history and its test accuracy to ``run``."""
    model: Any = load_model(output)  # Any: the epoch attributes belong to the neural models
    seconds = [float(s) for s in model.epoch_seconds_]
    examples = [int(n) for n in model.epoch_examples_]
    rates = [n / s for n, s in zip(examples, seconds, strict=True)]
    run["best_epoch"] = int(model.best_epoch_)
    run["loss_per_epoch"] = [round(float(v), 4) for v in model.epoch_losses_]
    run["seconds_per_epoch"] = [round(s, 1) for s in seconds]
    run["examples_per_epoch"] = examples
    run["examples_per_second_per_epoch"] = [round(r) for r in rates]
    run["examples_per_second"] = round(statistics.median(rates), 1)
    result = evaluate(model, folder.test(), protocol="benchmark", cutoffs=(20,))
    scores = result.metrics()
    run["test_cases"] = result.n_cases
    run["hr@20"] = round(scores["hr@20"], 2)
    run["mrr@20"] = round(scores["mrr@20"], 2)
    run["evaluate_seconds"] = round(result.predict_seconds, 1)
    run["params"] = model.get_params()


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run against the one with the fewest processes (1, unless it was not run)."""
    done = [run for run in runs if "examples_per_second" in run]
    if len(done) < 2:
        return []
    base = min(done, key=lambda run: run["processes"])
    per_process = base["examples_per_second"] / base["processes"]
    rows = []
    for run in done:
        if run is base:
            continue
        rows.append(
            {
                "processes": run["processes"],
                "vs_processes": base["processes"],
                "throughput_ratio": round(
                    run["examples_per_second"] / base["examples_per_second"], 3
                ),
                "scaling_efficiency": round(
                    run["examples_per_second"] / (run["processes"] * per_process), 3
                ),
                "wall_speedup": round(base["wall_seconds"] / run["wall_seconds"], 3),
                "hr@20_difference": round(run["hr@20"] - base["hr@20"], 2),
                "mrr@20_difference": round(run["mrr@20"] - base["mrr@20"], 2),
            }
        )
    return rows


def parse_processes(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"process counts must be >= 1, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument(
        "--dataset",
        default="diginetica",
        help=f"{' | '.join(sorted(BENCHMARK_FOLDERS))} | a folder path",
    )
    parser.add_argument("--train-sessions", type=int, default=0, help="most recent N only")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--param", action="append", default=[], help="key=value (passed on)")
    parser.add_argument(
        "--params-file", type=Path, help="JSON hyperparameters (e.g. a GRU4Rec preset)"
    )
    parser.add_argument(
        "--processes", type=parse_processes, default=[1, 2], help="comma-separated (default 1,2)"
    )
    parser.add_argument("--workdir", type=Path, help="keep model folders here (default: a temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # The evaluation runs here: one thread, like each training process.
    torch.set_num_threads(1)

    preset = json.loads(args.params_file.read_text()) if args.params_file else {}
    # --param and --epochs win over the file (later --param values override earlier ones).
    params = [
        *(
            f"{key}={json.dumps(value) if isinstance(value, bool) else value}"
            for key, value in preset.items()
        ),
        f"n_epochs={args.epochs}",
        *args.param,
    ]
    if not any(param.split("=", 1)[0].strip() == "device" for param in args.param):
        params.append("device=cpu")  # "auto" would take a GPU where there is one
    print(
        json.dumps(
            {"loadavg_start": loadavg(), "cpus": os.cpu_count(), "torch": torch.__version__}
        ),
        flush=True,
    )
    source = benchmark_folder(args.dataset)
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.train_sessions:
            folder, n_train = recent_subset(source, args.train_sessions, workdir / "data")
        else:
            folder, n_train = source, count_sessions(source / "train_sessions.txt")
        benchmark = BenchmarkFolder(folder)
        runs = []
        for processes in args.processes:
            output = workdir / f"{args.model}-{processes}p"
            run = {
                "model": args.model,
                "dataset": args.dataset,
                "train_sessions": n_train,
                "epochs": args.epochs,
                **train(args.model, processes, folder, output, params),
            }
            if "error" not in run:
                describe(run, output, benchmark)
            print(json.dumps(run), flush=True)
            runs.append(run)
    summary = {
        "summary": summarise(runs),
        "model": args.model,
        "dataset": args.dataset,
        "train_sessions": n_train,
        "failed": [run["processes"] for run in runs if "error" in run],
        # Said in the output too: with one or two epochs the median still holds warm-up.
        "examples_per_second_is": "median over epochs; epoch 1 includes warm-up",
        "loadavg_end": loadavg(),
    }
    print(json.dumps(summary), flush=True)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
