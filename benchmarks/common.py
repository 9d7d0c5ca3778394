"""What the benchmark scripts share: where the public data sets are, how a parameter file
reads, and how a small model is made to score like one of the whole training file.

The scripts run as modules from the repository root (``python -m
benchmarks.accuracy.bench_knn``), so they import this module as ``benchmarks.common``
without any ``sys.path`` edit. It needs the standard library only when imported: the peer
scripts import it from other projects' virtual environments, which have no sessionrec and
perhaps no numpy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout, as the tests find it, unless the variable says otherwise.
SHARED_DATA = Path(os.environ.get("SESSIONREC_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))
# The two public benchmark splits (shared/data/README.md) by the names the scripts take.
BENCHMARK_FOLDERS = {"diginetica": "diginetica/srgnn", "yoochoose-1_64": "yoochoose/srgnn-1_64"}
# The committed hyperparameters of the rows of BENCHMARKS.md.
PARAMS = REPOSITORY / "benchmarks" / "params"


def read_params_file(path: Path) -> dict[str, Any]:
    """The hyperparameters of a JSON file as ``sessionrec train/evaluate --params-file``
    reads it: the object under ``"params"`` (what ``sessionrec tune --output`` writes, and
    the files in ``benchmarks/params/``) or, failing that, the whole object."""
    loaded = json.loads(Path(path).read_text())
    if isinstance(loaded, dict) and isinstance(loaded.get("params"), dict):
        loaded = loaded["params"]
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a JSON object of hyperparameters")
    return dict(loaded)


def run_child(command: list[str]) -> dict[str, Any]:
    """Run one measured step in a fresh process (so its peak memory is its own): the JSON
    object on the last line of its stdout, with the process's wall time as ``process_s``."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{' '.join(command[1:4])}: failed with status {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    return result


def child_done(result: dict[str, Any]) -> None:
    """End of a :func:`run_child` step: print ``result`` with the process's peak memory."""
    import resource

    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def print_stages(what: str, stages: list[tuple[float, str]]) -> None:
    """The log lines a step recorded, each with the seconds since the previous one."""
    sys.stderr.write(f"{what} stages (seconds since the previous log line, then the line):\n")
    for seconds, message in stages:
        sys.stderr.write(f"  {seconds:7.2f} s  {message}\n")


def load_average() -> str:
    """The machine's ``/proc/loadavg`` line: how much other work shared the run."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def as_whole_file_model(model: Any) -> Any:
    """Mark every item but one in 500 as having training clicks (a model fitted on a few
    thousand sessions then scores as one of the whole file: no empty sessions, few unseen
    items) and refresh what the model caches from its counts."""
    import numpy as np

    model.item_counts_ = np.maximum(model.item_counts_, 1)
    model.item_counts_[::500] = 0
    # A private method of the models: the scoring caches depend on the counts just changed.
    if hasattr(model, "_prepare_scoring"):  # SASRec at 04979b4 and earlier caches nothing
        model._prepare_scoring()
    return model
