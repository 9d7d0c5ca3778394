"""The CLI's exact forms (other tools rely on them), its JSON output and its error lines."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sessionrec.cli import main
from sessionrec.models.persist import COUNTS, MANIFEST
from sessionrec.models.registry import load_model


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_json_has_the_documented_keys(bench, capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--benchmark",
        str(bench),
        "--model",
        "markov",
        "--cutoffs",
        "1,2",
        "--json",
    )
    assert code == 0
    payload = json.loads(out)  # stdout holds only the JSON object
    # cases: [1]->2, [1,2]->3, [2]->3, [2,3]->9 (unknown: miss), [4]->1
    assert payload["n_cases"] == 5
    for key in ("hr@1", "mrr@1", "ndcg@1", "coverage@1", "popularity@1", "hr@2", "mrr@2"):
        assert key in payload
    assert payload["fit_seconds"] >= 0 and payload["predict_seconds"] >= 0
    # markov from the last item: 1->2 (3 times): hit@1; 2->3 (4x) vs 2->... hit@1 twice;
    # 4 -> nothing follows 4 in training: miss. So 3 hits of 5 at rank 1.
    assert payload["hr@1"] == pytest.approx(60.0)


def test_train_then_evaluate_saved_model_gives_same_numbers(bench, tmp_path, capsys):
    out_dir = tmp_path / "model"
    code, _, _ = run(
        capsys,
        "train",
        "--benchmark",
        str(bench),
        "--model",
        "sr",
        "--param",
        "steps=2",
        "--output",
        str(out_dir),
    )
    assert code == 0 and (out_dir / MANIFEST).is_file()
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert manifest["params"]["steps"] == 2
    _, fitted, _ = run(
        capsys,
        "evaluate",
        "--benchmark",
        str(bench),
        "--model",
        "sr",
        "--param",
        "steps=2",
        "--json",
    )
    _, loaded, _ = run(
        capsys, "evaluate", "--benchmark", str(bench), "--model-dir", str(out_dir), "--json"
    )
    fitted, loaded = json.loads(fitted), json.loads(loaded)
    assert loaded["fit_seconds"] == manifest["metrics"]["fit_seconds"]  # recorded by train
    for key in ("n_cases", "hr@20", "mrr@20", "ndcg@5", "coverage@10"):
        assert loaded[key] == fitted[key]


def test_train_refit_trains_again_for_the_epochs_validation_chose(bench, tmp_path, capsys):
    pytest.importorskip("torch")
    from sessionrec.data.formats import read_sessions_txt
    from sessionrec.models.registry import create_model

    params = {"n_epochs": 6, "patience": 6, "valid_fraction": 0.34, "embedding_size": 8}
    params |= {"hidden_size": 8, "batch_size": 4, "learning_rate": 0.05}
    train = read_sessions_txt(bench / "train_sessions.txt")
    chosen = create_model("narm", params).fit(train).best_epoch_
    assert 1 <= chosen < 6  # fewer than n_epochs: the refit's count tells where it came from
    argv = [arg for key, value in params.items() for arg in ("--param", f"{key}={value}")]
    out_dir = tmp_path / "refit"
    code, _, _ = run(
        capsys, "train", "--benchmark", str(bench), "--model", "narm", *argv, "--refit",
        "--output", str(out_dir),
    )  # fmt: skip
    assert code == 0
    refit = load_model(out_dir)
    assert refit.get_params()["n_epochs"] == chosen
    assert refit.get_params()["valid_fraction"] == 0.0
    assert len(refit.epoch_losses_) == chosen  # every session trained, no early stop
    # the same model as one trained for that many epochs on everything from the start
    direct = create_model("narm", params | {"n_epochs": chosen, "valid_fraction": 0.0})
    direct.fit(train)
    batch = direct.encode_sessions([["1", "2"], ["3"]])
    np.testing.assert_array_equal(refit.score(batch), direct.score(batch))


def test_refit_needs_a_validation_split_and_a_model_to_fit(bench, tmp_path, capsys):
    for argv in (
        ["train", "--model", "sr", "--refit", "--output", str(tmp_path / "m")],
        ["train", "--model", "narm", "--refit", "--output", str(tmp_path / "m")],
        ["evaluate", "--model-dir", str(tmp_path), "--refit"],
    ):
        code, _, err = run(capsys, argv[0], "--benchmark", str(bench), *argv[1:])
        assert code != 0
        assert "--refit" in err
    assert not (tmp_path / "m").exists()


def test_predictions_file(bench, tmp_path, capsys):
    pred = tmp_path / "pred.tsv"
    code, _, _ = run(
        capsys,
        "evaluate",
        "--benchmark",
        str(bench),
        "--model",
        "pop",
        "--cutoffs",
        "3",
        "--predictions",
        str(pred),
        "--json",
    )
    assert code == 0
    lines = pred.read_text().splitlines()
    assert len(lines) == 5
    # pop counts in training: 2 -> 5, 3 -> 5, 1 -> 3, 4 -> 3: the tie {1, 4} straddles place 3
    index, items, scores = lines[0].split("\t")
    assert index == "0" and items == "2 3" and scores == "5 5"
    assert [line.split("\t")[0] for line in lines] == ["0", "1", "2", "3", "4"]


def test_recommend_prints_top_k(bench, tmp_path, capsys):
    out_dir = tmp_path / "model"
    run(capsys, "train", "--benchmark", str(bench), "--model", "markov", "--output", str(out_dir))
    code, out, err = run(
        capsys, "recommend", "--model-dir", str(out_dir), "1", "2", "-k", "2", "--json"
    )
    assert code == 0
    payload = json.loads(out)
    # Only 3 ever follows 2; ids come back as the strings they were given in (regression:
    # integer-looking ids were printed as JSON numbers while the session stayed strings).
    assert [x["item_id"] for x in payload["items"]] == ["3"]
    assert payload["session"] == ["1", "2"]
    assert payload["fallback"] is False and payload["items"][0]["source"] == "model"
    code, out, err = run(capsys, "recommend", "--model-dir", str(out_dir), "1", "77", "--json")
    assert code == 0 and "77" in err and "unknown" in err


# Clicks per item in TRAIN (conftest.py): 2 -> 5, 3 -> 5, 1 -> 3, 4 -> 3 (ties by the lower
# index: the vocabulary follows first appearance, 1 2 3 4).
MOST_CLICKED = ["2", "3", "1", "4"]


@pytest.mark.parametrize("model", ["sr", "markov", "vsknn", "pop"])
@pytest.mark.parametrize("session", [["77"], ["77", "78"], []])
def test_recommend_falls_back_for_sessions_the_model_cannot_answer(
    bench, tmp_path, capsys, model, session
):
    # Regression (issue 22 item 5): sr printed nothing for an unknown-only session; every
    # model now answers it with the training popularity, flagged as a fallback.
    out_dir = tmp_path / "model"
    run(capsys, "train", "--benchmark", str(bench), "--model", model, "--output", str(out_dir))
    argv = ["recommend", "--model-dir", str(out_dir), *session, "-k", "3", "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    payload = json.loads(out)
    assert payload["fallback"] is True and payload["session"] == session
    assert [x["item_id"] for x in payload["items"]] == MOST_CLICKED[:3]

    code, out, _ = run(capsys, *argv[:-1])  # the text form says so too
    assert code == 0 and [line.split()[1] for line in out.splitlines()] == MOST_CLICKED[:3]


def test_recommend_falls_back_for_gru4rec(bench, tmp_path, capsys):
    pytest.importorskip("torch")
    out_dir = tmp_path / "model"
    params = ("hidden_size=8", "batch_size=2", "n_sample=2", "n_epochs=1")
    argv = ["train", "--benchmark", str(bench), "--model", "gru4rec", "--output", str(out_dir)]
    run(capsys, *argv, *(x for p in params for x in ("--param", p)))
    code, out, _ = run(capsys, "recommend", "--model-dir", str(out_dir), "77", "-k", "3", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["fallback"] is True
    assert [x["item_id"] for x in payload["items"]] == MOST_CLICKED[:3]


def test_recommend_falls_back_when_the_model_has_nothing(bench, tmp_path, capsys):
    # Nothing ever follows 4 in TRAIN (conftest.py): sequential rules have no item for it.
    out_dir = tmp_path / "model"
    run(capsys, "train", "--benchmark", str(bench), "--model", "sr", "--output", str(out_dir))
    code, out, _ = run(capsys, "recommend", "--model-dir", str(out_dir), "4", "-k", "3", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["fallback"] is True
    assert [x["item_id"] for x in payload["items"]] == MOST_CLICKED[:3]
    assert {x["source"] for x in payload["items"]} == {"popular"}


def test_recommend_keeps_string_ids_strings(tmp_path, capsys):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "train_sessions.txt").write_text("a 007\n007 b\n007 b\n")
    (bench / "test_sessions.txt").write_text("a b\n")
    out_dir = tmp_path / "model"
    run(capsys, "train", "--benchmark", str(bench), "--model", "markov", "--output", str(out_dir))
    assert load_model(out_dir).vocab_.kind == "str"
    code, out, _ = run(capsys, "recommend", "--model-dir", str(out_dir), "a", "--json")
    assert code == 0 and [x["item_id"] for x in json.loads(out)["items"]] == ["007"]


def test_recommend_k_is_bounded_like_the_service(bench, tmp_path, capsys):
    from sessionrec.serve.config import ServeConfig

    out_dir = tmp_path / "model"
    run(capsys, "train", "--benchmark", str(bench), "--model", "pop", "--output", str(out_dir))
    limit = ServeConfig.max_k
    code, out, _ = run(capsys, "recommend", "--model-dir", str(out_dir), "1", "-k", str(limit))
    assert code == 0 and len(out.splitlines()) == 4  # every item there is
    code, out, err = run(
        capsys, "recommend", "--model-dir", str(out_dir), "1", "-k", str(limit + 1)
    )
    assert code == 1 and out == ""
    assert f"k must be at most {limit}" in err and "Traceback" not in err


def test_recommend_from_a_folder_saved_without_counts(bench, tmp_path, capsys):
    out_dir = tmp_path / "model"
    run(capsys, "train", "--benchmark", str(bench), "--model", "sr", "--output", str(out_dir))
    manifest = json.loads((out_dir / MANIFEST).read_text())
    del manifest["files"][COUNTS]  # as saved by a sessionrec that kept no counts
    (out_dir / MANIFEST).write_text(json.dumps(manifest))
    (out_dir / COUNTS).unlink()
    argv = ["recommend", "--model-dir", str(out_dir), "77", "-k", "3", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0 and json.loads(out)["items"] == []
    assert "no training counts" in err and "--popularity" in err
    code, out, err = run(capsys, *argv, "--popularity", str(bench / "train_sessions.txt"))
    assert code == 0 and "no training counts" not in err
    payload = json.loads(out)
    assert payload["fallback"] is True
    assert [x["item_id"] for x in payload["items"]] == MOST_CLICKED[:3]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--model", "nope"], "unknown model 'nope'"),
        (["evaluate", "--model", "sr", "--param", "steps=x"], "steps"),
        (["evaluate", "--model", "sr", "--param", "stepz=1"], "no hyperparameter 'stepz'"),
        (["evaluate", "--model", "sr", "--cutoffs", "0"], "--cutoffs"),
        (["evaluate"], "exactly one of --model"),
    ],
)
def test_errors_are_one_line_with_exit_1(bench, capsys, argv, message):
    code, out, err = run(capsys, argv[0], "--benchmark", str(bench), *argv[1:])
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("sessionrec: error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in err


def test_recommend_k_zero_and_broken_model_folders(bench, tmp_path, capsys):
    out_dir = tmp_path / "model"
    run(capsys, "train", "--benchmark", str(bench), "--model", "pop", "--output", str(out_dir))
    code, _, err = run(capsys, "recommend", "--model-dir", str(out_dir), "1", "-k", "0")
    assert code == 1 and "k must be a positive integer" in err

    manifest = json.loads((out_dir / MANIFEST).read_text())
    manifest["format_version"] = 99
    (out_dir / MANIFEST).write_text(json.dumps(manifest))
    code, _, err = run(capsys, "recommend", "--model-dir", str(out_dir), "1")
    assert code == 1 and "format_version" in err and "upgrade" in err

    run(capsys, "train", "--benchmark", str(bench), "--model", "pop", "--output", str(out_dir))
    state = out_dir / "state.npz"
    state.write_bytes(state.read_bytes() + b"x")
    code, _, err = run(capsys, "recommend", "--model-dir", str(out_dir), "1")
    assert code == 1 and "checksum" in err and "state.npz" in err

    code, _, err = run(capsys, "evaluate", "--benchmark", str(tmp_path), "--model", "pop")
    assert code == 1 and "not a benchmark folder" in err


def test_console_script_runs_as_module(bench):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionrec",
            "evaluate",
            "--benchmark",
            str(bench),
            "--model",
            "pop",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_cases"] == 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SESSIONREC_PORT", "abc"),
        ("SESSIONREC_MAX_K", "1.5"),
        ("SESSIONREC_AVAILABLE_ONLY", "maybe"),
    ],
)
def test_a_bad_environment_variable_is_one_error_line_naming_it(
    monkeypatch, capsys, variable, value
):
    # The serve options read their defaults from the environment while the parser is built,
    # before any subcommand runs: even `models` must fail with one line, not a traceback.
    monkeypatch.setenv(variable, value)
    code, out, err = run(capsys, "models")
    assert code == 1 and out == ""
    assert err == f"sessionrec: error: environment {variable}={value!r} is invalid\n"


def test_a_bad_environment_variable_exits_1_without_a_traceback_from_the_console():
    env = {**os.environ, "SESSIONREC_PORT": "abc"}
    proc = subprocess.run(
        [sys.executable, "-m", "sessionrec", "models"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "sessionrec: error: environment SESSIONREC_PORT='abc' is invalid\n"
