"""Hyperparameter tuning: validation split, selection, the result file, and the test file.

A tiny synthetic benchmark folder: its test file must never be opened, which the tests
enforce by making every attempt to open it fail.
"""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.data.formats import read_sessions_txt
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import evaluate
from sessionrec.models.registry import MODELS, create_model, model_params
from sessionrec.tuning import (
    DEFAULT_TRIAL_SECONDS,
    SEARCH_SPACES,
    Choice,
    TuningPlan,
    split_validation,
    tunable_models,
    tune,
    tuning_plan,
    validation_ranks,
)

pytest.importorskip("optuna")

N_SESSIONS = 400


def write_folder(path: Path) -> Path:
    """Sessions walking a ring of 30 items with noise (kNN parameters matter on it)."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(N_SESSIONS):
        item = int(rng.integers(30))
        session = [item]
        for _ in range(int(rng.integers(1, 7))):
            item = (
                (item + int(rng.choice([1, 1, 1, 2, 5]))) % 30
                if rng.random() < 0.8
                else int(rng.integers(30))
            )
            session.append(item)
        lines.append(" ".join(str(x + 1) for x in session))
    path.mkdir(parents=True, exist_ok=True)
    (path / "train_sessions.txt").write_text("\n".join(lines) + "\n")
    (path / "test_sessions.txt").write_text("1 2 3\n")
    return path


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A benchmark folder whose test file raises when anything tries to open it."""
    path = write_folder(tmp_path / "bench")
    forbidden = (path / "test_sessions.txt").resolve()

    def guard(file: Any) -> None:
        if isinstance(file, (str, Path)) and Path(file).resolve() == forbidden:
            raise AssertionError(f"tuning opened the test file {file}")

    real_open, real_path_open = builtins.open, Path.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        guard(file)
        return real_open(file, *args, **kwargs)

    def fake_path_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        guard(self)
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(Path, "open", fake_path_open)
    with pytest.raises(AssertionError, match="test file"):  # the guard works
        (path / "test_sessions.txt").read_text()
    return path


def test_tune_writes_the_best_parameters_and_never_reads_the_test_file(
    folder: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out" / "best.json"
    result = tune(folder, "vsknn", trials=8, seed=1, output=output)
    written = json.loads(output.read_text())
    assert written == result
    assert set(written) == {
        "model",
        "params",
        "metric",
        "value",
        "trials",
        "default_value",
        "valid_fraction",
        "seed",
    }
    assert written["model"] == "vsknn" and written["metric"] == "mrr@20"
    assert written["trials"] == 8 and written["seed"] == 1 and written["valid_fraction"] == 0.1
    assert set(written["params"]) == set(model_params("vsknn"))  # complete: defaults filled in
    assert written["params"]["sample_size"] >= written["params"]["k"]
    assert not list(output.parent.glob(".*"))  # no temporary file left behind
    # The chosen parameters are at least as good as the defaults on validation, and the
    # reported values are what an independent evaluation of the split gives.
    fit_part, valid = split_validation(read_sessions_txt(folder / "train_sessions.txt"), 0.1)

    def mrr(params: dict[str, Any]) -> float:
        ranks = validation_ranks(create_model("vsknn", params).fit(fit_part), valid)
        return 100 * float(np.mean(np.where(ranks <= 20, 1 / ranks, 0)))

    assert written["default_value"] == pytest.approx(mrr({}))
    assert written["value"] == pytest.approx(mrr(written["params"]))
    assert written["value"] >= written["default_value"]


def test_validation_is_the_chronologically_last_sessions() -> None:
    data = SessionData.from_sequences([[i, i + 1] for i in range(20)])
    fit_part, valid = split_validation(data, 0.1)
    assert fit_part.n_sessions == 18 and valid.n_sessions == 2
    assert valid.vocab == data.vocab
    np.testing.assert_array_equal(valid.items, data.items[-4:])
    for bad in (0.0, 1.0, -0.1, 0.01):
        with pytest.raises(ConfigError, match="--valid-fraction"):
            split_validation(data, bad)


def test_tuning_validates_on_the_split_the_neural_models_use() -> None:
    # 25 sessions at 10%: round(25 * 0.9) = 22 training sessions, 3 for validation, as
    # last_fraction_split (SR-GNN's rounding) cuts it. Tuning used to hold out round(2.5) = 2.
    data = SessionData.from_sequences([[i, i + 1] for i in range(25)])
    fit_part, valid = split_validation(data, 0.1)
    neural_fit, neural_valid = last_fraction_split(data, 0.1)
    assert (fit_part.n_sessions, valid.n_sessions) == (22, 3)
    np.testing.assert_array_equal(valid.items, neural_valid.items)
    np.testing.assert_array_equal(fit_part.items, neural_fit.items)


@pytest.mark.parametrize("name", ["vstan", "pop"])
def test_validation_ranks_equal_the_protocol(name: str, tmp_path: Path) -> None:
    data = read_sessions_txt(write_folder(tmp_path) / "train_sessions.txt")
    fit_part, valid = split_validation(data, 0.2)
    params = {"k": 20, "sample_size": 50} if name == "vstan" else {}
    model = create_model(name, params).fit(fit_part)
    expected = evaluate(model, valid, protocol="next", cutoffs=(20,)).ranks
    np.testing.assert_array_equal(validation_ranks(model, valid, batch_size=37), expected)


def test_time_budget_fixed_params_and_custom_space(folder: Path) -> None:
    result = tune(
        folder,
        "sknn",
        time_budget=0.01,
        metric="hr@10",
        fixed_params={"k": 30},
        search_space={"similarity": Choice(("jaccard", "vec"))},
    )
    assert result["trials"] >= 1 and result["metric"] == "hr@10"
    assert result["params"]["k"] == 30
    assert result["params"]["similarity"] in ("cosine", "jaccard", "vec")


def test_every_search_space_names_real_hyperparameters() -> None:
    for name, space in SEARCH_SPACES.items():
        assert set(space) <= set(model_params(name)), name


def _end(rng: Any, i: int) -> Any:
    """The ``i``-th end of a range: its bounds in turn, or its choices in turn."""
    values = rng.values if isinstance(rng, Choice) else (rng.low, rng.high)
    return values[i % len(values)]


def test_the_ends_of_every_range_make_valid_models() -> None:
    for name, space in SEARCH_SPACES.items():
        rounds = max(len(r.values) if isinstance(r, Choice) else 2 for r in space.values())
        for i in range(rounds):  # every bound and every choice at least once
            drawn = {key: _end(rng, i) for key, rng in space.items()}
            create_model(name, TuningPlan(name, space, model_params(name)).params(drawn))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_name": "pop"}, "'pop' has no hyperparameter to tune"),
        ({"model_name": "vsknn", "metric": "recall"}, "--metric"),
        ({"model_name": "vsknn", "metric": "mrr@0"}, "metric"),
        ({"model_name": "vsknn", "trials": 0}, "--trials"),
        ({"model_name": "vsknn", "time_budget": -1}, "--time-budget"),
        ({"model_name": "vsknn", "fixed_params": {"nope": 1}}, "nope"),
        ({"model_name": "vsknn", "valid_fraction": 1.5}, "--valid-fraction"),
    ],
)
def test_bad_arguments_are_rejected(folder: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        tune(folder, **{"trials": 1, **kwargs})


def test_missing_optuna_says_how_to_install_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` fail
    with pytest.raises(ConfigError, match=r"pip install 'sessionrec\[tune\]'"):
        tune(folder, "vsknn", trials=1)


# ------------------------------------------------------------------ every registered model
PYTHON_NAMES = ("n_trials", "time_budget", "timeout", "valid_fraction", "search_space", "trial_")


def test_every_registered_model_is_tunable_or_refused_in_one_line() -> None:
    # Before: sr, itemknn, markov, the neural models and the composites all failed with "no
    # search space for model ...; pass search_space", an argument no CLI user can pass.
    tunable = set(tunable_models())
    assert tunable == set(MODELS) - {"pop", "spop", "markov", "ensemble"}
    for name in MODELS:
        if name in tunable:
            plan = tuning_plan(name)
            assert plan.space and plan.defaults_in_space() is not None, name  # defaults first
            continue
        with pytest.raises(ConfigError) as caught:
            tuning_plan(name)
        message = str(caught.value)
        assert "\n" not in message and name in message
        assert not any(word in message for word in PYTHON_NAMES), message
    assert "no hyperparameter to tune" in _refusal("markov")
    assert "learns its member weights" in _refusal("ensemble")


def _refusal(name: str, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        tuning_plan(name, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("name", ["sr", "itemknn"])
def test_the_item_models_are_tuned(folder: Path, name: str) -> None:
    result = tune(folder, name, trials=4, seed=2)
    assert result["model"] == name and result["trials"] == 4
    assert set(result["params"]) == set(model_params(name))
    assert result["value"] >= result["default_value"] > 0
    for key, value in result["params"].items():
        if key in SEARCH_SPACES[name]:
            assert SEARCH_SPACES[name][key].contains(value), (key, value)


def test_the_repeat_layer_searches_its_bases_space(folder: Path) -> None:
    result = tune(
        folder,
        "repeat",
        trials=2,
        fixed_params={"base": "sknn", "base_params": {"k": 30}, "min_cases": 5},
    )
    params = result["params"]
    assert result["model"] == "repeat" and params["base"] == "sknn" and params["min_cases"] == 5
    assert set(params["base_params"]) == set(model_params("sknn"))
    assert params["base_params"]["k"] == 30  # held fixed
    assert set(tuning_plan("repeat", fixed_params={"base": "sknn"}).space) == set(
        SEARCH_SPACES["sknn"]
    )
    # The written parameters are the layer's: what train --params-file builds.
    fit_part, valid = split_validation(read_sessions_txt(folder / "train_sessions.txt"), 0.1)
    model = create_model("repeat", params).fit(fit_part)
    ranks = validation_ranks(model, valid)
    assert result["value"] == pytest.approx(
        100 * float(np.mean(np.where(ranks <= 20, 1 / ranks, 0)))
    )
    assert "sessionrec tune --model gru4rec" in _refusal("repeat", fixed_params={"base": "gru4rec"})
    assert "no hyperparameter to tune" in _refusal("repeat", fixed_params={"base": "pop"})


TINY_GRU = {
    "hidden_size": 8,
    "batch_size": 16,
    "n_sample": 0,
    "device": "cpu",
    "patience": 0,
}


def test_neural_trials_keep_the_best_epoch_and_write_a_setting_to_train(folder: Path) -> None:
    pytest.importorskip("torch")
    result = tune(folder, "gru4rec", trials=2, fixed_params={**TINY_GRU, "n_epochs": 2})
    assert result["trials"] == 2 and result["trial_seconds"] == DEFAULT_TRIAL_SECONDS
    assert result["best_epoch"] in (1, 2)
    params = result["params"]
    # trains the chosen epochs on all the sessions: no split, no time limit (train --refit)
    assert params["n_epochs"] == result["best_epoch"]
    assert params["valid_fraction"] == 0.0 and params["max_train_seconds"] is None
    assert params["selection_metric"] == "mrr@20"  # epochs chosen on the tuning metric
    assert params["hidden_size"] == 8 and params["device"] == "cpu"
    create_model("gru4rec", params)  # a valid setting


def test_each_neural_trial_stops_at_its_time_limit(folder: Path) -> None:
    pytest.importorskip("torch")
    seen: list[Any] = []

    def spy(name: str, params: dict[str, Any]) -> Any:
        seen.append(params["max_train_seconds"])
        return create_model(name, params)

    import sessionrec.tuning as tuning

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tuning, "create_model", spy)
        result = tune(
            folder,
            "gru4rec",
            trials=1,
            trial_seconds=1e-6,  # out of time after the first epoch, which always runs
            fixed_params={**TINY_GRU, "n_epochs": 5},
        )
    assert seen == [1e-6]
    assert result["best_epoch"] == 1 and result["params"]["n_epochs"] == 1
    assert result["trial_seconds"] == 1e-6
    with pytest.raises(ConfigError, match="--trial-seconds"):
        tune(folder, "gru4rec", trials=1, trial_seconds=0)


# ---------------------------------------------------------------------------- the CLI
def test_cli_tune_help_lists_the_models_and_errors_name_flags(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sessionrec.cli import main

    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in MODELS:
        assert name in text, name
    assert f"--model MODEL model to tune: {', '.join(tunable_models())}" in text
    assert "--trial-seconds" in text and f"(default: {DEFAULT_TRIAL_SECONDS})" in text
    base = ["-q", "tune", "--benchmark", str(folder), "--output", str(tmp_path / "o.json")]
    for extra, flag in (
        (["--model", "vsknn", "--trials", "0"], "--trials"),
        (["--model", "vsknn", "--time-budget", "-1"], "--time-budget"),
        (["--model", "vsknn", "--valid-fraction", "2"], "--valid-fraction"),
        (["--model", "vsknn", "--metric", "auc"], "--metric"),
        (["--model", "gru4rec", "--trial-seconds", "0", "--trials", "1"], "--trial-seconds"),
        (["--model", "pop"], "no hyperparameter to tune"),
        (["--model", "ensemble"], "--param member_params"),
    ):
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith("sessionrec: error: ") and err.count("\n") == 1, err
        assert flag in err, err
        assert not any(word in err for word in PYTHON_NAMES), err
    assert not (tmp_path / "o.json").exists()
