"""evaluate --model-dir checks the model's training data against the benchmark's, reports
the recorded fit time, and flags test sets too small to measure anything (issue 22)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest

from sessionrec.cli import main
from sessionrec.cli_logging import configure_logging
from sessionrec.evaluation.protocol import BenchmarkFolder
from sessionrec.fingerprint_check import (
    check_training_data,
    data_mismatch,
    recorded_fingerprints,
    training_fingerprint,
)
from sessionrec.models.persist import MANIFEST
from sessionrec.models.registry import create_model, load_model

TRAIN = ["1 2 3", "2 3 4", "1 2 3 4", "3 4", "2 3", "1 2"] * 30
OTHER_TRAIN = ["1 2 4", "2 3 4", "1 3 4", "4 3", "2 1", "1 2"] * 30
TEST = ["1 2 3", "2 3 9", "4 1"]


def make_bench(folder: Path, train: list[str]) -> Path:
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("\n".join(train) + "\n")
    (folder / "test_sessions.txt").write_text("\n".join(TEST) + "\n")
    return folder


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    return make_bench(tmp_path / "bench", TRAIN)


@pytest.fixture
def other(tmp_path: Path) -> Path:
    return make_bench(tmp_path / "other", OTHER_TRAIN)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys: pytest.CaptureFixture[str], bench: Path, out: Path, *model: str) -> Path:
    code, _, err = run(capsys, "train", "--benchmark", str(bench), *model, "--output", str(out))
    assert code == 0, err
    return out


# ------------------------------------------------------------------- fingerprints
def test_the_benchmark_fingerprint_is_the_one_fit_records(bench: Path) -> None:
    data = BenchmarkFolder(bench).train()
    model = create_model("pop").fit(data)
    assert recorded_fingerprints(model) == [data.fingerprint()]
    assert training_fingerprint(bench) == (data.fingerprint(), str(bench / "train_sessions.txt"))
    assert check_training_data(model, bench).verdict == "same"
    assert data_mismatch(model, bench) is None


def test_data_mismatch_names_both_fingerprints(bench: Path, other: Path) -> None:
    model = create_model("pop").fit(BenchmarkFolder(bench).train())
    message = data_mismatch(model, other, model_name="m")
    assert message is not None
    assert model.data_fingerprint_ in message
    assert BenchmarkFolder(other).train().fingerprint() in message
    assert str(other / "train_sessions.txt") in message


def test_evaluate_refuses_a_model_trained_on_other_data(
    bench: Path, other: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = train(capsys, other, tmp_path / "m", "--model", "pop")
    code, out, err = run(
        capsys, "evaluate", "--benchmark", str(bench), "--model-dir", str(model_dir)
    )
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("sessionrec: error:")]
    assert len(lines) == 1 and "trained on other data" in lines[0]
    recorded = json.loads((model_dir / MANIFEST).read_text())["data_fingerprint"]
    assert recorded in lines[0]
    assert BenchmarkFolder(bench).train().fingerprint() in lines[0]
    assert "--allow-other-data" in lines[0]

    argv = ("evaluate", "--benchmark", str(bench), "--model-dir", str(model_dir))
    code, out, err = run(capsys, *argv, "--allow-other-data", "--json")
    assert code == 0 and json.loads(out)["n_cases"] == 5
    assert "trained on other data" in err and "--allow-other-data" in err


def test_evaluate_accepts_the_model_of_its_benchmark_without_a_warning(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = train(capsys, bench, tmp_path / "m", "--model", "pop")
    code, _, err = run(capsys, "evaluate", "--benchmark", str(bench), "--model-dir", str(model_dir))
    assert code == 0 and "fingerprint" not in err


def test_a_model_without_a_fingerprint_is_warned_about_not_refused(
    other: Path, bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = train(capsys, other, tmp_path / "m", "--model", "pop")
    manifest = json.loads((model_dir / MANIFEST).read_text())
    manifest["data_fingerprint"] = None  # as saved before fingerprints were recorded
    (model_dir / MANIFEST).write_text(json.dumps(manifest))
    code, out, err = run(
        capsys, "evaluate", "--benchmark", str(bench), "--model-dir", str(model_dir), "--json"
    )
    assert code == 0 and json.loads(out)["n_cases"] == 5
    assert "records no training-data fingerprint" in err


def test_composite_models_are_checked_through_their_fingerprints(
    bench: Path, other: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", "repeat", "--param", "base=pop", "--param", "min_cases=1"]
    model_dir = train(capsys, bench, tmp_path / "r", *model)
    argv = ["evaluate", "--model-dir", str(model_dir), "--json"]
    assert run(capsys, *argv, "--benchmark", str(bench))[0] == 0
    code, _, err = run(capsys, *argv, "--benchmark", str(other))
    assert code == 1 and "trained on other data" in err
    # a composite saved without its own fingerprint: its members' still tell
    manifest = json.loads((model_dir / MANIFEST).read_text())
    manifest["data_fingerprint"] = None
    (model_dir / MANIFEST).write_text(json.dumps(manifest))
    assert recorded_fingerprints(load_model(model_dir)) == [
        BenchmarkFolder(bench).train().fingerprint()
    ]
    code, _, err = run(capsys, *argv, "--benchmark", str(bench))
    assert code == 0 and "fingerprint" not in err
    code, _, err = run(capsys, *argv, "--benchmark", str(other))
    assert code == 1 and "trained on other data" in err


# ------------------------------------------------------------------------ fit time
def test_evaluate_model_dir_reports_the_recorded_fit_seconds(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = train(capsys, bench, tmp_path / "m", "--model", "pop")
    manifest = json.loads((model_dir / MANIFEST).read_text())
    recorded = manifest["metrics"]["fit_seconds"]
    assert isinstance(recorded, float)
    results = tmp_path / "results.json"
    code, out, _ = run(
        capsys,
        "evaluate",
        "--benchmark",
        str(bench),
        "--model-dir",
        str(model_dir),
        "--json",
        "--save-results",
        str(results),
        "--latency-calls",
        "0",
    )
    assert code == 0 and json.loads(out)["fit_seconds"] == recorded
    assert json.loads(results.read_text())["timing"]["fit_seconds"] == recorded


# --------------------------------------------------------------- small test sets
def test_evaluate_flags_a_small_test_set_next_to_its_numbers(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    argv = ["evaluate", "--benchmark", str(bench), "--model", "pop"]
    code, out, err = run(capsys, *argv, "--save-results", str(results), "--latency-calls", "0")
    assert code == 0
    (line,) = [line for line in out.splitlines() if line.split()[0] == "n_cases"]
    assert line.split()[1] == "5" and "noise" in line
    assert err.count("only 5 test case(s), fewer than 1,000") == 1
    saved = json.loads(results.read_text())
    assert saved["n_cases"] == 5 and "fewer than 1,000" in saved["test_warning"]
    code, out, _ = run(capsys, *argv, "--json")
    payload = json.loads(out)
    assert payload["n_cases"] == 5 and "noise" in payload["warnings"][0]


def test_a_large_test_set_has_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("\n".join(TRAIN) + "\n")
    (folder / "test_sessions.txt").write_text("1 2 3 4 1 2 3 4 1 2 3\n" * 100)  # 1,000 cases
    results = tmp_path / "results.json"
    argv = ["evaluate", "--benchmark", str(folder), "--model", "pop", "--latency-calls", "0"]
    code, out, err = run(capsys, *argv, "--save-results", str(results))
    assert code == 0 and "noise" not in out and "fewer than" not in err
    assert json.loads(results.read_text())["test_warning"] is None
    code, out, _ = run(capsys, *argv[:-2], "--json")
    assert "warnings" not in json.loads(out)


# ------------------------------------------------------------------ warnings once
def test_a_warning_both_raised_and_logged_prints_once(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(0, False)
    log = logging.getLogger("sessionrec.models")
    message = "n_sample=5000 is more than the 50 items with training clicks"
    warnings.warn(message, UserWarning, stacklevel=1)
    log.warning(message)
    other = logging.getLogger("sessionrec.serve")
    other.warning("store unreachable")
    other.warning("store unreachable")  # logged twice on purpose: printed twice
    err = capsys.readouterr().err
    assert err.count(message) == 1 and "UserWarning" not in err
    assert err.count("store unreachable") == 2


def test_gru4rec_n_sample_warning_prints_once(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    params = ["--param", "n_sample=5000", "--param", "n_epochs=1", "--param", "hidden_size=8"]
    code, _, err = run(
        capsys,
        "train",
        "--benchmark",
        str(bench),
        "--model",
        "gru4rec",
        *params,
        "--output",
        str(tmp_path / "g"),
    )
    assert code == 0
    assert err.count("n_sample=5000 is more than") == 1
