"""``sessionrec auto`` end to end on a tiny benchmark folder (seconds).

The sessions walk a ring of 30 items with noise, so the rules and the kNN family differ on
validation; the test file is only read after the run, by the evaluation.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.auto import auto, parse_budget
from sessionrec.auto.board import Candidate
from sessionrec.auto.run import choose, short_floor
from sessionrec.auto.stages import ensemble_members
from sessionrec.cli import main
from sessionrec.data.formats import read_sessions_txt
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate
from sessionrec.models.registry import load_model

pytest.importorskip("optuna")
pytestmark = pytest.mark.filterwarnings("ignore:n_sample=.*is more than")

TRIALS = 2
BUDGET = 600.0  # never reached: the trial cap ends the search, so the run is deterministic


def ring_sessions(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        item = int(rng.integers(30))
        session = [item]
        for _ in range(int(rng.integers(1, 7))):
            if rng.random() < 0.8:
                item = (item + int(rng.choice([1, 1, 1, 2, 5]))) % 30
            else:
                item = int(rng.integers(30))
            session.append(item)
        lines.append(" ".join(str(x + 1) for x in session))
    return lines


def write_folder(path: Path, n_train: int = 400) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "train_sessions.txt").write_text("\n".join(ring_sessions(n_train, 0)) + "\n")
    (path / "test_sessions.txt").write_text("\n".join(ring_sessions(60, 1)) + "\n")
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("auto")
    folder = write_folder(root / "bench")
    summary = auto(BenchmarkFolder(folder).train(), root / "model", BUDGET, trials=TRIALS)
    return {"root": root, "folder": folder, "summary": summary}


def board(summary: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(summary["work_dir"]) / "leaderboard.json").read_text())


def test_the_choice_is_the_best_candidate_on_validation(finished: dict[str, Any]) -> None:
    summary = finished["summary"]
    rows = board(summary)["candidates"]
    labels = {row["label"] for row in rows}
    assert {"pop", "spop", "markov", "sr", "vsknn", "stan", "vstan", "vmisknn"} <= labels
    assert {"gru4rec", "sasrec"} <= labels or importlib.util.find_spec("torch") is None
    assert "ensemble" in labels and any(label.startswith("repeat_") for label in labels)
    # The choice: the best MRR@20 among the candidates whose HR@20 at one and at two clicks
    # reaches the best single candidate's there (here the ensemble, whose short-session
    # weights lean on sasrec); at least as good as every single candidate on both counts.
    singles = [row for row in rows if row["stage"] in ("baselines", "knn-optuna", "neural")]
    floor = {n: max(row["hr_short"][n] for row in singles) for n in ("1", "2")}
    assert summary["best_single_by_prefix"] == floor
    allowed = [r for r in rows if all(r["hr_short"][n] >= floor[n] for n in floor)]
    best = max(allowed, key=lambda row: row["mrr"])
    assert summary["chosen"] == best["label"] == "ensemble"
    assert summary["valid_mrr@20"] == best["mrr"] >= max(row["mrr"] for row in singles)
    assert max(row["mrr"] for row in rows) == best["mrr"]
    assert summary["warning"] is None
    trials = board(summary)["trials"]
    assert {t["model"] for t in trials} == {"stan", "vmisknn", "vstan", "vsknn"}
    assert all(sum(t["model"] == m for t in trials) == TRIALS for m in ("vsknn", "stan"))
    page = (Path(summary["work_dir"]) / "leaderboard.html").read_text()
    assert all(f"<td>{label}</td>" in page for label in labels)


def test_the_folder_is_servable_and_evaluates_the_same(
    finished: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    summary, folder = finished["summary"], finished["folder"]
    model = load_model(summary["output"])
    manifest = json.loads((Path(summary["output"]) / "manifest.json").read_text())
    assert manifest["metrics"]["valid_mrr@20"] == summary["valid_mrr@20"]
    # refitted on all the training sessions: the folder records their fingerprint
    assert manifest["data_fingerprint"] == BenchmarkFolder(folder).train().fingerprint()
    direct = evaluate(
        model, read_sessions_txt(folder / "test_sessions.txt"), protocol="benchmark", cutoffs=(20,)
    )
    expected = direct.metrics()
    argv = ["evaluate", "--benchmark", str(folder), "--model-dir", summary["output"]]
    capsys.readouterr()
    assert main([*argv, "--cutoffs", "20", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for key in ("hr@20", "mrr@20", "n_cases"):
        assert printed[key] == pytest.approx(expected[key])

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from sessionrec.serve.app import create_app
    from sessionrec.serve.config import ServeConfig, VariantSpec

    config = ServeConfig(
        variants=(VariantSpec("default", summary["output"]),),
        popularity=str(folder / "train_sessions.txt"),
        reload_interval=0.0,
    )
    with TestClient(create_app(config)) as client:
        for session in (["1", "2"], ["7"], ["10", "11", "12"]):
            answer = client.post("/v1/recommendations", json={"items": session, "k": 5}).json()
            served = [item["item_id"] for item in answer["items"]]
            wanted = model.recommend([session], k=5, exclude_seen=not model.recommends_repeats())[0]
            assert served[: len(wanted)] == [str(item.item_id) for item in wanted]


def test_a_second_run_resumes_and_chooses_the_same(finished: dict[str, Any]) -> None:
    first = finished["summary"]
    before = board(first)["candidates"]
    again = auto(
        BenchmarkFolder(finished["folder"]).train(), first["output"], BUDGET, trials=TRIALS
    )
    assert again["chosen"] == first["chosen"]
    assert again["valid_mrr@20"] == first["valid_mrr@20"]
    assert board(again)["candidates"] == before


def test_other_arguments_in_the_same_work_folder_are_refused(finished: dict[str, Any]) -> None:
    first = finished["summary"]
    with pytest.raises(ConfigError, match="other arguments"):
        auto(BenchmarkFolder(finished["folder"]).train(), first["output"], BUDGET, seed=1)


def test_a_tiny_budget_still_saves_the_popularity_baseline(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "bench")
    summary = auto(BenchmarkFolder(folder).train(), tmp_path / "model", 1e-6)
    assert summary["chosen"] == "pop"
    assert "too small" in summary["warning"]
    assert load_model(tmp_path / "model").name == "pop"


def test_time_the_neural_models_leave_goes_back_to_the_knn_searches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without neural models and without a trial cap, what the first kNN search did not get
    (here: nothing at all) goes to the same studies after the neural stage; each kNN model
    ends as a candidate, the best trial of its study."""
    import sessionrec.auto.stages as stages

    monkeypatch.setattr(stages, "TUNE_SHARE", 0.0)  # the first search skips every model
    # any share, however late (a 20 s budget: shares of ~2 s, less on a loaded machine)
    monkeypatch.setattr(stages, "MIN_EXTRA_SECONDS", -1e9)
    folder = write_folder(tmp_path / "bench")
    train = BenchmarkFolder(folder).train()
    # the first study also creates the Optuna database (seconds): the budget allows for it
    summary = auto(train, tmp_path / "model", 20.0, neural=())
    content = board(summary)
    assert not set(stages.KNN_FAMILY) & set(content["skipped"])
    for name in stages.KNN_FAMILY:
        trials = [t for t in content["trials"] if t["model"] == name]
        assert trials, name
        best = max(trials, key=lambda t: (t["mrr"], -t["trial"]))
        (row,) = [c for c in content["candidates"] if c["label"] == name]
        assert row["stage"] == "knn-optuna" and row["params"] == best["params"]
        assert row["mrr"] == pytest.approx(best["mrr"])


def test_a_split_too_small_is_refused_with_the_counts(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "bench", n_train=40)
    with pytest.raises(ConfigError, match=r"36 sessions to fit on .* 4 validation sessions"):
        auto(BenchmarkFolder(folder).train(), tmp_path / "model", 60.0)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("text", "seconds"), [("60m", 3600.0), ("90s", 90.0), ("1.5h", 5400.0), ("45", 45.0)]
)
def test_budgets_parse(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5m", "soon"])
def test_bad_budgets_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="budget"):
        parse_budget(text)


def test_the_command_line_takes_a_raw_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["SessionId\tItemId\tTime"]
    for s, line in enumerate(ring_sessions(600, 2)):
        start = 1_700_000_000 + s * 3600  # one session an hour: 25 days
        rows += [f"{s}\t{item}\t{start + 60 * i}" for i, item in enumerate(line.split())]
    log_file = tmp_path / "clicks.tsv"
    log_file.write_text("\n".join(rows) + "\n")
    argv = ["auto", "--events", str(log_file), "--preset", "gru4rec", "--budget", "0.001"]
    # a budget under any candidate: the baseline folder, and the message in the summary
    assert main([*argv, "--output", str(tmp_path / "model"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["chosen"] == "pop" and "too small" in summary["warning"]
    assert load_model(tmp_path / "model").name == "pop"


def test_an_interrupted_run_leaves_no_folder_and_resumes_to_the_same_choice(
    finished: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionrec.auto.run as auto_run

    def interrupt(run: Any) -> None:
        raise KeyboardInterrupt

    train = BenchmarkFolder(finished["folder"]).train()
    with monkeypatch.context() as patch:
        patch.setattr(auto_run, "stage_ensemble", interrupt)
        with pytest.raises(KeyboardInterrupt):
            auto(train, tmp_path / "model", BUDGET, trials=TRIALS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.auto"]
    done = {row["label"] for row in board({"work_dir": tmp_path / "model.auto"})["candidates"]}
    assert "vmisknn" in done and "ensemble" not in done
    resumed = auto(train, tmp_path / "model", BUDGET, trials=TRIALS)
    assert resumed["chosen"] == finished["summary"]["chosen"]
    assert resumed["valid_mrr@20"] == finished["summary"]["valid_mrr@20"]
    assert load_model(tmp_path / "model").name == load_model(finished["summary"]["output"]).name


# ------------------------------------------------------------------ the choice rules
def candidate(label: str, stage: str, mrr: float, one: float, two: float) -> Candidate:
    return Candidate(
        label=label,
        model=label,
        stage=stage,
        params={},
        hr=0.0,
        mrr=mrr,
        fit_seconds=1.0,
        root=label,
        hr_short={"1": one, "2": two},
    )


def test_the_choice_keeps_the_best_single_hit_rate_at_one_and_two_clicks() -> None:
    knn = candidate("vsknn", "knn-optuna", 18.0, one=50.0, two=52.0)
    rules = candidate("sr", "baselines", 17.0, one=45.0, two=53.0)
    layer = candidate("repeat_vsknn", "repeat", 19.0, one=49.9, two=53.5)  # short at 1 click
    fused = candidate("ensemble", "ensemble", 18.5, one=50.0, two=53.0)
    ranked = [layer, fused, knn, rules]
    assert short_floor(ranked) == {"1": 50.0, "2": 53.0}  # singles only, each length's best
    assert choose(ranked) == (fused, True)
    # no candidate reaches both floors: the best by MRR, flagged
    assert choose([layer, knn, rules]) == (layer, False)


def test_ensemble_members_include_the_best_single_at_short_lengths() -> None:
    ranked = [
        candidate("repeat_vstan", "repeat", 20.0, 49.0, 52.0),
        candidate("vstan", "knn-optuna", 19.5, 49.0, 52.0),
        candidate("stan", "knn-optuna", 19.0, 48.0, 51.0),
        candidate("sr", "baselines", 18.0, 45.0, 53.0),
        candidate("vsknn", "knn-optuna", 17.0, 50.0, 50.0),
    ]
    ranked[0].root = "vstan"
    # the three best on distinct bases (vstan's base is taken by its layer), then vsknn,
    # the best single at one click; sr, the best at two, is already in
    assert [c.label for c in ensemble_members(ranked)] == ["repeat_vstan", "stan", "sr", "vsknn"]
    ranked[1].hr_short["2"] = 54.0  # now vstan is the best at two clicks: five would be too
    # many, so the weakest member not needed at a short length (sr) leaves
    assert [c.label for c in ensemble_members(ranked)] == [
        "repeat_vstan",
        "stan",
        "vsknn",
        "vstan",
    ]


def test_a_replaced_candidate_is_saved_scored_and_listed_once(tmp_path: Path) -> None:
    from sessionrec.auto.board import AutoRun
    from sessionrec.auto.run import check_split
    from sessionrec.models.registry import create_model

    folder = write_folder(tmp_path / "bench")
    fit_part, valid = check_split(BenchmarkFolder(folder).train(), 0.1)
    run = AutoRun(fit_part, valid, tmp_path / "work", 60.0, {"seed": 0})
    run.add("vsknn", create_model("vsknn", {"k": 5}).fit(fit_part), "knn-optuna", 1.0, "vsknn")
    better = create_model("vsknn", {"k": 50}).fit(fit_part)
    row = run.replace("vsknn", better, 2.0)
    assert [c.label for c in run.candidates] == ["vsknn"] and run.candidates[0] is row
    assert row.params["k"] == 50 and row.fit_seconds == 2.0 and row.stage == "knn-optuna"
    assert (row.hr, row.mrr) == run.score(better)
    assert load_model(tmp_path / "work" / "candidates" / "vsknn").get_params()["k"] == 50
    assert [c["params"]["k"] for c in board({"work_dir": tmp_path / "work"})["candidates"]] == [50]
