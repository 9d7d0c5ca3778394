"""A/B of :mod:`sessionrec._heap` (freed large blocks kept in the heap) on any benchmark command.

Runs the command given after ``--`` alternately with ``SESSIONREC_REUSE_FREED_MEMORY=0``
(glibc's defaults: every large array a fresh mapping) and without it (the library's default),
``--rounds`` times each, and prints one JSON line per run: wall, user and system seconds of
the child process, and the fields of the command's last JSON line named by ``--fields``.
Then the medians of each arm. Example (one thread, STAMP on 10,000 Diginetica sessions)::

    .venv/bin/python -m benchmarks.speed.bench_heap_reuse --rounds 2 \
        --fields train_cases_per_second predict_seconds -- \
        env OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_prefix_models \
        --model stamp --dataset diginetica --epochs 1 --threads 1 \
        --train-sessions 10000 --valid-sessions 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

ARMS = {"glibc defaults": "0", "reuse (default)": "1"}


def run_once(command: list[str], setting: str, fields: list[str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env={**os.environ, "SESSIONREC_REUSE_FREED_MEMORY": setting},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"the command failed ({done.returncode}):\n{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    reported = json.loads(lines[-1]) if lines else {}
    row: dict[str, Any] = {
        "wall_s": round(wall, 1),
        "user_s": round(after.ru_utime - before.ru_utime, 1),
        "sys_s": round(after.ru_stime - before.ru_stime, 1),
    }
    for field in fields:
        value = reported.get(field)
        row[field] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fields", nargs="*", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    for round_ in range(1, args.rounds + 1):
        for arm, setting in ARMS.items():
            row = run_once(command, setting, args.fields)
            rows[arm].append(row)
            print(json.dumps({"round": round_, "arm": arm, **row}), flush=True)
    for arm, runs in rows.items():
        medians = {
            key: statistics.median(run[key] for run in runs)
            for key in runs[0]
            if all(isinstance(run[key], (int, float)) for run in runs)
        }
        print(json.dumps({"arm": arm, "median": medians}), flush=True)


if __name__ == "__main__":
    main()
