"""``sessionrec train --init-from``: fine-tune a saved neural model on a newer benchmark.

The folder it writes is a model folder like any other: ``load_model`` reads it, and
``recommend`` and ``evaluate`` accept it. A mismatched model or architecture is one error
line. The model itself is tested in tests/models/test_fine_tune.py.
"""

import json
from pathlib import Path

import pytest

from sessionrec.cli import main
from sessionrec.data.formats import read_sessions_txt
from sessionrec.models.persist import read_manifest
from sessionrec.models.registry import load_model

TINY = ("hidden_size=8", "batch_size=2", "n_sample=2", "n_epochs=1")
NEWER = ["1 2 7", "2 7", "3 4 7", "2 7 1", "4 7"]  # item 7 is new
NEWER_TEST = ["1 2 7", "3 2 7"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def params(*pairs: str) -> list[str]:
    return [x for pair in pairs for x in ("--param", pair)]


@pytest.fixture
def newer(make_benchmark) -> Path:
    return make_benchmark("newer", NEWER, NEWER_TEST)


@pytest.fixture
def trained(bench: Path, tmp_path: Path, capsys) -> Path:
    pytest.importorskip("torch")
    out_dir = tmp_path / "gru4rec"
    argv = ["train", "--benchmark", str(bench), "--model", "gru4rec", "--output", str(out_dir)]
    code, _, err = run(capsys, *argv, *params(*TINY))
    assert code == 0, err
    return out_dir


def test_init_from_writes_a_folder_that_loads_recommends_and_evaluates(
    bench, newer, trained, tmp_path, capsys
):
    out_dir = tmp_path / "tuned"
    code, out, err = run(
        capsys,
        *("train", "--benchmark", str(newer), "--model", "gru4rec"),
        *("--init-from", str(trained), "--output", str(out_dir), "--json"),
        *params("n_epochs=2", "learning_rate=0.01"),
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["init_from"] == str(trained) and payload["output"] == str(out_dir)
    old, tuned = load_model(trained), load_model(out_dir)
    assert payload["n_items"] == tuned.n_items == old.n_items + 1
    assert tuned.vocab_.ids.tolist() == [*old.vocab_.ids.tolist(), 7]  # appended
    assert tuned.get_params()["learning_rate"] == 0.01
    assert tuned.get_params()["n_epochs"] == 2
    old_data = read_sessions_txt(bench / "train_sessions.txt").fingerprint()
    new_data = read_sessions_txt(newer / "train_sessions.txt").fingerprint()
    assert read_manifest(out_dir)["data_fingerprint"] == f"{old_data}+{new_data}"

    code, out, err = run(capsys, "recommend", "--model-dir", str(out_dir), "2", "--json")
    assert code == 0, err
    assert json.loads(out)["items"]  # answered
    # Trained on more than this benchmark's training file: evaluating says so first.
    evaluate = ("evaluate", "--benchmark", str(newer), "--model-dir", str(out_dir), "--json")
    code, _, err = run(capsys, *evaluate)
    assert code == 1 and "--allow-other-data" in err
    code, out, err = run(capsys, *evaluate, "--allow-other-data")
    assert code == 0, err
    assert "hr@20" in json.loads(out)


def test_a_service_serving_the_old_folder_reloads_the_fine_tuned_one(
    newer, trained, tmp_path, capsys
):
    from sessionrec.serve.config import ServeConfig, VariantSpec
    from sessionrec.serve.registry import ModelLoader, ModelRegistry

    out_dir = tmp_path / "tuned"
    argv = ["train", "--benchmark", str(newer), "--model", "gru4rec", "--output", str(out_dir)]
    code, _, err = run(capsys, *argv, "--init-from", str(trained), *params("n_epochs=1"))
    assert code == 0, err
    config = ServeConfig(variants=(VariantSpec("default", str(trained)),), reload_interval=0)
    registry = ModelRegistry(config.variants, ModelLoader(config))
    registry.load_all()
    old = registry.default.serving()
    registry.reload("default", str(out_dir))  # what POST /v1/admin/models/default/reload does
    new = registry.default.serving()
    assert new.version != old.version and new.path == str(out_dir)
    ranked = new.rules.recommend(new.model, ["2"], 5, exclude_seen=False)
    assert "7" in ranked.items  # the new item is served
    assert "7" not in old.rules.recommend(old.model, ["2"], 5, exclude_seen=False).items


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "sasrec"], "holds a 'gru4rec' model, not 'sasrec'"),
        (["--model", "gru4rec", *params("hidden_size=4")], "keeps the architecture"),
        (["--model", "gru4rec", "--refit"], "does not go with --init-from"),
    ],
)
def test_init_from_refuses_another_model_or_architecture(
    newer, trained, tmp_path, capsys, argv, message
):
    out_dir = tmp_path / "tuned"
    code, _, err = run(
        capsys,
        *("train", "--benchmark", str(newer), "--init-from", str(trained)),
        *("--output", str(out_dir), *argv),
    )
    assert code == 1 and message in err
    assert len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_init_from_refuses_a_model_that_is_not_neural(bench, newer, tmp_path, capsys):
    pop_dir = tmp_path / "pop"
    run(capsys, "train", "--benchmark", str(bench), "--model", "pop", "--output", str(pop_dir))
    code, _, err = run(
        capsys,
        *("train", "--benchmark", str(newer), "--model", "pop", "--init-from", str(pop_dir)),
        *("--output", str(tmp_path / "tuned")),
    )
    assert code == 1 and "only the neural models can" in err


def test_init_from_is_refused_under_torchrun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["train", "--benchmark", str(tmp_path), "--model", "gru4rec", "--output", "x"]
    code, _, err = run(capsys, *argv, "--init-from", str(tmp_path))
    assert code == 1 and "--init-from fine-tunes in one process" in err
