"""Distributed training (torchrun, gloo on the CPU): the collectives and whole runs.

The collectives are checked in two real gloo processes against hand-computed answers; whole
``torchrun --nproc-per-node 2 -m sessionrec train`` runs are checked against a single-process
run of the same model on the same real data (accuracy within noise, a valid model folder
written once).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from sessionrec.cli import main  # noqa: E402
from sessionrec.data.sessions import SessionData  # noqa: E402
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate  # noqa: E402
from sessionrec.models.neural.distributed import ReplicaMismatch, current  # noqa: E402
from sessionrec.models.persist import read_manifest  # noqa: E402
from sessionrec.models.registry import create_model, load_model  # noqa: E402

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# ------------------------------------------------------------------------- the collectives
def _collectives(rank: int, world: int, store: str, out: str) -> None:
    """Run in each of two gloo processes; writes what the collectives returned."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        workers = current()
        assert workers is not None and workers.rank == rank and workers.world_size == world
        data = SessionData.from_sequences([[1, 2], [3, 4, 5], [6], [7, 8], [9, 1, 2]])
        shard = workers.shard(data)
        # Rank 0 touches rows 3, 3 of a width-2 table and row 7 of a width-1 table; rank 1
        # touches row 5 only, and nothing in the second table.
        if rank == 0:
            parts = [
                (torch.tensor([3, 3]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])),
                (torch.tensor([7]), torch.tensor([[0.5]])),
            ]
        else:
            parts = [
                (torch.tensor([5]), torch.tensor([[10.0, 20.0]])),
                (torch.zeros(0, dtype=torch.int64), torch.zeros((0, 1))),
            ]
        dense = torch.tensor([1.0, 2.0]) * (rank + 1)
        exchanged, gathered = workers.exchange(dense, parts, capacities=[2, 1])
        summed = workers.sum_(torch.tensor([0.5, 1.5]) * (rank + 1))
        # Rank 1 has no case: its NaN must not spoil the mean.
        mean, weight = workers.weighted_mean(50.0 if rank == 0 else math.nan, 4 if rank == 0 else 0)
        workers.check_replicas("m", [torch.ones(3), torch.arange(4.0)])  # equal: passes
        try:
            workers.check_replicas("m", [torch.ones(3) * (rank + 1)])
            mismatch = ""
        except ReplicaMismatch as exc:
            mismatch = str(exc)
        result = {
            "mismatch": mismatch,
            "shard": [shard.session(s).tolist() for s in range(shard.n_sessions)],
            "shard_vocab": len(shard.vocab),
            "local_batch": workers.local_batch(5),
            "max": workers.max_int(10 + rank),
            "total": workers.total_cases(3 + rank),
            "rows": [rows.tolist() for rows, _ in gathered],
            "grads": [grads.tolist() for _, grads in gathered],
            "exchanged": exchanged.tolist(),
            "sum": summed.tolist(),
            "mean": [mean, weight],
        }
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_collectives_in_two_gloo_processes(tmp_path: Path) -> None:
    mp.spawn(_collectives, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # Sessions r, r + 2, ... of the (chronological) data, internal item indices, one vocab.
    assert ranks[0]["shard"] == [[0, 1], [5], [8, 0, 1]]
    assert ranks[1]["shard"] == [[2, 3, 4], [6, 7]]
    assert ranks[0]["shard_vocab"] == ranks[1]["shard_vocab"] == 9
    for result in ranks:  # every rank sees the same answers
        assert result["local_batch"] == 3  # ceil(5 / 2)
        assert result["max"] == 11
        assert result["total"] == 7
        assert result["rows"] == [[3, 3, 5], [7]]  # padding cut off, rank order
        assert result["grads"] == [[[1.0, 2.0], [3.0, 4.0], [10.0, 20.0]], [[0.5]]]
        assert result["exchanged"] == [3.0, 6.0]
        assert result["sum"] == [1.5, 4.5]
        assert result["mean"] == [50.0, 4.0]
        assert "copies of the weights differ" in result["mismatch"]  # found on both ranks


def test_single_process_is_not_distributed() -> None:
    assert current() is None


# ------------------------------------------------------------------------------ whole runs
@pytest.fixture(scope="module")
def small_split(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The most recent 6,000 training sessions of YooChoose 1/64 and 1,500 test sessions."""
    source = shared_data / "yoochoose" / "srgnn-1_64"
    if not (source / "train_sessions.txt").is_file():
        pytest.skip(f"{source} not found")
    folder = tmp_path_factory.mktemp("yoochoose_small")
    train = (source / "train_sessions.txt").read_text().splitlines()
    test = (source / "test_sessions.txt").read_text().splitlines()
    (folder / "train_sessions.txt").write_text("\n".join(train[-6000:]) + "\n")
    (folder / "test_sessions.txt").write_text("\n".join(test[:1500]) + "\n")
    return folder


def _train(folder: Path, output: Path, model: str, params: list[str], processes: int) -> dict:
    """``sessionrec train`` as a plain process (1) or under torchrun; rank 0's JSON line."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [
        *(launcher if processes > 1 else []),
        *("-m", "sessionrec", "train", "--json", "--benchmark", str(folder)),
        *("--model", model, "--output", str(output)),
        *[arg for param in params for arg in ("--param", param)],
    ]
    done = subprocess.run(
        [sys.executable, *command],
        env={**os.environ, **ONE_THREAD},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout  # only rank 0 reports (and writes)
    payload: dict = json.loads(lines[0])
    return payload


CASES = {
    "gru4rec": ["n_epochs=3", "batch_size=32", "valid_fraction=0.1"],
    "narm": ["n_epochs=2", "batch_size=128", "hidden_size=50", "learning_rate=0.005"],
    "sasrec": [
        "n_epochs=4",
        "loss=sampled",
        "n_negatives=256",
        "batch_size=256",
        "learning_rate=0.003",
    ],
}


@pytest.mark.parametrize("model", sorted(CASES))
def test_two_processes_train_as_well_as_one(small_split: Path, tmp_path: Path, model: str) -> None:
    params = [*CASES[model], "device=cpu"]
    single = _train(small_split, tmp_path / "one", model, params, processes=1)
    double = _train(small_split, tmp_path / "two", model, params, processes=2)
    assert double["processes"] == 2 and "processes" not in single
    assert read_manifest(tmp_path / "two")["metrics"]["processes"] == 2

    folder = BenchmarkFolder(small_split)
    results = {}
    for name in ("one", "two"):
        fitted = load_model(tmp_path / name)
        # The whole training data's counts, not one shard's; every example of every rank.
        assert np.array_equal(fitted.item_counts_, load_model(tmp_path / "one").item_counts_)
        results[name] = evaluate(fitted, folder.test(), cutoffs=(20,)).metrics()
    one, two = results["one"], results["two"]
    # Within noise: about 2,900 test cases give HR@20 a standard error near 0.9 points.
    assert abs(one["hr@20"] - two["hr@20"]) < 3.0, (one, two)
    assert abs(one["mrr@20"] - two["mrr@20"]) < 2.0, (one, two)
    popular = create_model("pop").fit(folder.train())
    baseline = evaluate(popular, folder.test(), cutoffs=(20,)).metrics()["hr@20"]
    assert two["hr@20"] > baseline + 15.0, (two, baseline)  # a trained model


def test_epoch_examples_count_every_rank(small_split: Path, tmp_path: Path) -> None:
    params = ["n_epochs=1", "batch_size=64", "device=cpu"]
    _train(small_split, tmp_path / "one", "gru4rec", params, processes=1)
    _train(small_split, tmp_path / "two", "gru4rec", params, processes=2)
    one, two = load_model(tmp_path / "one"), load_model(tmp_path / "two")
    # Every click with a next click is one training example, on one process or split on two.
    assert one.epoch_examples_.tolist() == two.epoch_examples_.tolist()


# ------------------------------------------------------------------------------ bad input
def test_models_without_distributed_training_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["train", "--benchmark", str(tmp_path), "--model", "sr", "--output", "x"]
    assert main(args) == 1
    assert "'sr' does not train on several processes" in capsys.readouterr().err


def test_only_train_runs_under_torchrun(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["evaluate", "--benchmark", str(tmp_path), "--model", "pop"]) == 1
    assert "only `sessionrec train` runs under torchrun" in capsys.readouterr().err


def test_missing_torchrun_environment_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    args = ["train", "--benchmark", str(tmp_path), "--model", "narm", "--output", "x"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "needs the environment torchrun sets" in err and "MASTER_ADDR" in err
