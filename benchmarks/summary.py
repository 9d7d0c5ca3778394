"""Regenerate the accuracy column of BENCHMARKS.md's summary table from the committed
hyperparameters: one command for every row that a model fitted on a public split gives.

Usage (from the repository root, one thread per library as in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \\
        .venv/bin/python -m benchmarks.summary [--rows B,K,R,E] [--device cuda] \\
        [--write] [--json-out FILE]

``--rows`` takes row ids (``K6``) or whole groups (``K``); the default is every row that fits
in about an hour on two CPU cores (B, K, R, E). The neural rows (N) train for tens of epochs
on the full split: ask for them by name, with ``--device cuda`` on a GPU (on the CPU a row
takes hours, and GRU4Rec's rows give other digits than on a GPU, its sampling generator
living on the training device). The A rows (``sessionrec auto``, a wall-clock budget: their
figures depend on the machine's speed) run with ``--rows A``.

Every row is defined below from what is committed: ``benchmarks/params/MODEL-DATASET.json``
(the tuned kNN rows, the neural settings and their refit epochs), GRU4Rec's presets, and the
defaults. The test file is read only to evaluate (benchmark protocol: every prefix of every
test session, the whole training vocabulary, pessimistic ties). The script prints a table of
each row's measured HR@20 / MRR@20 next to the table's, and ``--write`` puts the measured
figures into BENCHMARKS.md (atomically). The P rows (peer side-by-sides on other protocols)
and the timing columns come from the scripts listed under "Commands" there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PARAMS,
    REPOSITORY,
    SHARED_DATA,
    load_average,
    read_params_file,
)

TABLE = REPOSITORY / "BENCHMARKS.md"
DEFAULT_GROUPS = ("B", "K", "R", "E")


@dataclass(frozen=True)
class Row:
    """One row of the summary table: the model and how its hyperparameters are found."""

    model: str
    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    params_file: str | None = None
    """A file of ``benchmarks/params/`` whose ``params`` are used (and ``refit_epochs``)."""
    preset: str | None = None
    """A GRU4Rec preset."""
    refit_epochs: int | None = None
    """Neural rows: the epochs validation chose, trained again on the whole training file."""
    auto_budget: str | None = None


def _tuned(model: str, dataset: str) -> Row:
    return Row(model, dataset, params_file=f"{model}-{dataset}.json")


def _repeat_over(base: str, dataset: str, tuned: bool) -> Row:
    params: dict[str, Any] = {"base": base}
    if tuned:
        params["base_params"] = read_params_file(PARAMS / f"{base}-{dataset}.json")
    return Row("repeat", dataset, params=params)


def _ensemble(dataset: str) -> Row:
    """vstan, stan, sr and spop, with the committed file of each member that has one."""
    members = "vstan,stan,sr,spop"
    files = {m: PARAMS / f"{m}-{dataset}.json" for m in members.split(",")}
    member_params = {m: read_params_file(p) for m, p in files.items() if p.is_file()}
    return Row("ensemble", dataset, params={"members": members, "member_params": member_params})


D, Y = "diginetica", "yoochoose-1_64"
ROWS: dict[str, Callable[[], Row]] = {
    **{
        f"B{i + 1 + 5 * j}": (lambda m=m, d=d: Row(m, d))
        for j, d in enumerate((D, Y))
        for i, m in enumerate(("pop", "spop", "markov", "sr", "itemknn"))
    },
    "K1": lambda: Row("vsknn", D, params_file="vsknn-yardstick.json"),
    "K2": lambda: Row("vsknn", Y, params_file="vsknn-yardstick.json"),
    **{
        f"K{3 + i + 5 * j}": (lambda m=m, d=d: _tuned(m, d))
        for j, d in enumerate((D, Y))
        for i, m in enumerate(("sknn", "vsknn", "stan", "vstan", "vmisknn"))
    },
    "R1": lambda: _repeat_over("vstan", D, tuned=True),
    "R2": lambda: _repeat_over("vstan", D, tuned=False),
    "R3": lambda: _repeat_over("sr", D, tuned=False),
    "R4": lambda: _repeat_over("vstan", Y, tuned=False),
    "R5": lambda: _repeat_over("sr", Y, tuned=False),
    "E1": lambda: _ensemble(D),
    "E2": lambda: _ensemble(Y),
    "A1": lambda: Row("auto", D, auto_budget="15m"),
    "A2": lambda: Row("auto", D, auto_budget="60m"),
    "A3": lambda: Row("auto", Y, auto_budget="60m"),
    "A4": lambda: Row("auto", "rsc15-100k", auto_budget="30m"),
    "N1": lambda: Row("gru4rec", D, preset="benchmark-diginetica", refit_epochs=9),
    "N2": lambda: Row("gru4rec", Y, preset="benchmark-yoochoose-1_64", refit_epochs=23),
    "N3": lambda: Row("sasrec", D, params_file="sasrec-diginetica.json"),
    "N4": lambda: Row("sasrec", Y, params_file="sasrec-yoochoose-1_64.json"),
    "N5": lambda: Row("srgnn", D, params_file="srgnn-diginetica.json", refit_epochs=5),
    "N6": lambda: Row("srgnn", Y, params_file="srgnn-yoochoose-1_64.json", refit_epochs=4),
    "N7": lambda: Row("narm", D, params_file="narm-diginetica.json", refit_epochs=17),
    "N8": lambda: Row("narm", Y, params_file="narm-yoochoose-1_64.json", refit_epochs=25),
    "N9": lambda: Row("stamp", D, params_file="stamp-diginetica.json", refit_epochs=5),
    "N10": lambda: Row("stamp", Y, params_file="stamp-yoochoose-1_64.json", refit_epochs=6),
}


def select(spec: str) -> list[str]:
    """``"B,K6"`` -> the ids of group B and K6, in the table's order."""
    wanted = [part.strip() for part in spec.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in ROWS and not any(_group(r) == w for r in ROWS)]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; rows are {', '.join(ROWS)} or their letters")
    return [r for r in ROWS if r in wanted or _group(r) in wanted]


def _group(row_id: str) -> str:
    return re.sub(r"\d+$", "", row_id)


def hyperparameters(row: Row, device: str | None) -> dict[str, Any]:
    """The parameters ``create_model`` gets for ``row``."""
    params = dict(row.params)
    refit_epochs = row.refit_epochs
    if row.params_file is not None:
        path = PARAMS / row.params_file
        params = {**read_params_file(path), **params}
        refit_epochs = refit_epochs or json.loads(path.read_text()).get("refit_epochs")
    if row.preset is not None:
        from sessionrec.models.neural.gru4rec import presets

        params = {**presets()[row.preset], **params}
    if refit_epochs is not None:
        from sessionrec.models.neural.common import refit_params

        params = refit_params(params, int(refit_epochs))
        if device is not None:
            params["device"] = device
    return params


def run_row(row: Row, device: str | None) -> dict[str, float]:
    """Fit ``row`` on its split's training file and evaluate it on the test file."""
    from benchmarks.accuracy.bench_auto import load
    from sessionrec.evaluation.protocol import evaluate
    from sessionrec.models.registry import create_model, load_model

    train, test, protocol = load(SHARED_DATA, row.dataset)
    started = time.perf_counter()
    if row.auto_budget is not None:
        from sessionrec.auto import auto, parse_budget

        with tempfile.TemporaryDirectory() as tmp:
            auto(train, Path(tmp) / "model", parse_budget(row.auto_budget))
            model = load_model(Path(tmp) / "model")
    else:
        model = create_model(row.model, hyperparameters(row, device)).fit(train)
    seconds = time.perf_counter() - started
    metrics = evaluate(model, test, protocol=protocol, cutoffs=(20,)).metrics()
    return {"hr@20": metrics["hr@20"], "mrr@20": metrics["mrr@20"], "seconds": seconds}


# ---------------------------------------------------------------------- the table
CELL = re.compile(r"^\| (?P<id>[A-Z]\d+) \|(?:[^|]*\|){2} (?P<hr>\d+\.\d+) / (?P<mrr>\d+\.\d+) \|")


def table_figures(text: str) -> dict[str, tuple[str, str]]:
    """Row id -> (HR@20, MRR@20) as written in the summary table."""
    return {m["id"]: (m["hr"], m["mrr"]) for line in text.splitlines() if (m := CELL.match(line))}


def with_figures(text: str, measured: dict[str, dict[str, float]]) -> str:
    """``text`` with the HR@20 / MRR@20 cell of each measured row replaced."""
    lines = []
    for line in text.splitlines(keepends=True):
        m = CELL.match(line)
        if m and m["id"] in measured:
            figures = measured[m["id"]]
            cell = f"{figures['hr@20']:.2f} / {figures['mrr@20']:.2f}"
            line = line[: m.start("hr")] + cell + line[m.end("mrr") :]
        lines.append(line)
    return "".join(lines)


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(DEFAULT_GROUPS), help="ids or groups")
    parser.add_argument("--device", help="neural rows: cuda or cpu (default: the model's)")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--json-out", type=Path, help="also write the measured figures here")
    args = parser.parse_args()

    ids = select(args.rows)
    written = table_figures(TABLE.read_text())
    measured: dict[str, dict[str, float]] = {}
    print(f"load before: {load_average()}")
    print("| # | model | data | HR@20 / MRR@20 | in BENCHMARKS.md | same | seconds |")
    print("|---|---|---|---|---|---|---:|")
    for row_id in ids:
        row = ROWS[row_id]()
        figures = run_row(row, args.device)
        measured[row_id] = figures
        now = f"{figures['hr@20']:.2f} / {figures['mrr@20']:.2f}"
        before = " / ".join(written.get(row_id, ("-", "-")))
        print(
            f"| {row_id} | {row.model} | {row.dataset} | {now} | {before} | "
            f"{'yes' if now == before else 'NO'} | {figures['seconds']:.0f} |",
            flush=True,
        )
    print(f"load after: {load_average()}")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(measured, indent=2) + "\n")
    if args.write:
        write_atomically(TABLE, with_figures(TABLE.read_text(), measured))
        print(f"wrote {len(measured)} rows into {TABLE}")


if __name__ == "__main__":
    main()
