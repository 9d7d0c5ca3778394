"""Results files (`evaluate --save-results`) and the HTML report (`sessionrec report`).

A small real run through the real CLI on a benchmark folder whose cases can be counted by
hand, then checks of the saved numbers and of the page's sections and images.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import DataError
from sessionrec.cli import main
from sessionrec.evaluation import metrics
from sessionrec.evaluation.report import SECTION_IDS, build_report, split_mismatches
from sessionrec.evaluation.results import (
    MAX_K,
    latency_summary,
    load_results,
    save_results,
    training_history,
)
from sessionrec.models.base import TrainingHistory
from sessionrec.models.popular import Pop

# 12 items in a cycle: sessions of 3, 5 and 13 clicks from every start.
TRAIN = [
    " ".join(str((start + j) % 12 + 1) for j in range(length))
    for length in (3, 5, 13)
    for start in range(12)
]
# Cases per session = clicks - 1: 1 + 2 + 5 + 12 + 1 = 21. Prefix lengths (clicks before
# the target) per group: "1": one per session = 5; "2": sessions of 3+ clicks = 3;
# "3": sessions of 4+ clicks = 2; "4-5": 2 (6 clicks) + 2 (13 clicks) = 4;
# "6-10": 5 (13 clicks); ">10": 11, 12 = 2. Item 99 is unknown: that case is always a miss.
TEST = ["1 2", "3 4 5", "5 6 7 8 9 10", " ".join(["1", *map(str, range(2, 13)), "1"]), "7 99"]
N_CASES = 21
GROUP_COUNTS = {"1": 5, "2": 3, "3": 2, "4-5": 4, "6-10": 5, ">10": 2}
LATENCY_CALLS = 30
GRU_PARAMS = [
    "n_epochs=2",
    "hidden_size=8",
    "n_sample=0",
    "batch_size=4",
    "valid_fraction=0.25",
    "device=cpu",
    "patience=0",
]


def _bench(folder: Path, test: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "train_sessions.txt").write_text("\n".join(TRAIN) + "\n")
    (folder / "test_sessions.txt").write_text("\n".join(test) + "\n")
    return folder


def _evaluate(
    capsys: pytest.CaptureFixture[str],
    bench: Path,
    model: str,
    out: Path,
    *extra: str,
) -> dict[str, Any]:
    """Run `sessionrec evaluate --save-results`; return what it printed."""
    code = main(
        [
            "-q",
            "evaluate",
            "--benchmark",
            str(bench),
            "--model",
            model,
            "--save-results",
            str(out),
            "--latency-calls",
            str(LATENCY_CALLS),
            "--json",
            *extra,
        ]
    )
    printed, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(printed.strip().splitlines()[-1]))  # the JSON line is the last


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """pop and sr evaluated on the hand-countable benchmark, results saved."""
    root = tmp_path_factory.mktemp("report")
    bench = _bench(root / "bench", TEST)
    out: dict[str, Any] = {"bench": bench, "root": root, "printed": {}, "files": {}}
    for model in ("pop", "sr"):
        file = root / f"{model}.json"
        code = main(
            [
                "-q",
                "evaluate",
                "--benchmark",
                str(bench),
                "--model",
                model,
                "--save-results",
                str(file),
                "--latency-calls",
                str(LATENCY_CALLS),
            ]
        )
        assert code == 0
        out["files"][model] = file
    return out


@pytest.fixture(scope="module")
def gru_file(run: dict[str, Any]) -> Path:
    """GRU4Rec for two epochs with a validation split: a result with training curves."""
    pytest.importorskip("torch")
    file = run["root"] / "gru4rec.json"
    params = [part for p in GRU_PARAMS for part in ("--param", p)]
    code = main(
        [
            "-q",
            "evaluate",
            "--benchmark",
            str(run["bench"]),
            "--model",
            "gru4rec",
            *params,
            "--save-results",
            str(file),
            "--latency-calls",
            "10",
        ]
    )
    assert code == 0
    return Path(file)


# ------------------------------------------------------------ results files
def test_results_file_holds_the_hand_counted_cases(run):
    for model, file in run["files"].items():
        data = load_results(file)
        assert data["model"]["name"] == model
        assert data["n_cases"] == N_CASES
        groups = {g["label"]: g["n_cases"] for g in data["by_length"]["groups"]}
        assert groups == GROUP_COUNTS
        assert data["split"]["n_test_sessions"] == len(TEST)
        assert data["split"]["n_train_sessions"] == len(TRAIN)
        for key in ("hr", "mrr", "ndcg"):
            curve = data["curves"][key]
            assert len(curve) == MAX_K
            assert all(b >= a for a, b in itertools.pairwise(curve)), key
        # the case with the unknown target (99) is a miss at every K
        assert data["curves"]["hr"][-1] <= 100.0 * (N_CASES - 1) / N_CASES + 1e-9
        assert 0.0 <= data["beyond_accuracy"]["coverage"] <= 1.0
        assert data["latency"]["n_calls"] == LATENCY_CALLS == len(data["latency"]["ms"])
        lat = data["latency"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert data["history"] is None  # pop and sr do not train by epochs
    fingerprints = {load_results(f)["split"]["fingerprint"] for f in run["files"].values()}
    assert len(fingerprints) == 1


def test_curves_match_what_evaluate_prints(run, capsys, tmp_path):
    printed = _evaluate(capsys, run["bench"], "sr", tmp_path / "sr.json")
    data = load_results(tmp_path / "sr.json")
    for k in (5, 10, 20):
        assert data["curves"]["hr"][k - 1] == pytest.approx(printed[f"hr@{k}"])
        assert data["curves"]["mrr"][k - 1] == pytest.approx(printed[f"mrr@{k}"])
        assert data["curves"]["ndcg"][k - 1] == pytest.approx(printed[f"ndcg@{k}"])
    assert data["beyond_accuracy"]["coverage"] == pytest.approx(printed["coverage@20"])
    assert data["beyond_accuracy"]["popularity"] == pytest.approx(printed["popularity@20"])
    # by-length groups weighted by their case counts give back the overall HR@20
    groups = data["by_length"]["groups"]
    overall = sum(g["hr"] * g["n_cases"] for g in groups) / N_CASES
    assert overall == pytest.approx(printed["hr@20"])


def test_evaluate_prints_only_the_cutoffs_asked_for(run, capsys, tmp_path):
    printed = _evaluate(capsys, run["bench"], "pop", tmp_path / "pop.json", "--cutoffs", "3")
    assert "hr@3" in printed and "hr@20" not in printed
    data = load_results(tmp_path / "pop.json")
    assert data["curves"]["hr"][2] == pytest.approx(printed["hr@3"])
    assert "coverage@20" in data["metrics"]  # the file always has the @20 views


def test_latency_calls_zero_skips_latency(run, tmp_path, capsys):
    _evaluate(capsys, run["bench"], "pop", tmp_path / "a.json", "--latency-calls", "0")
    assert load_results(tmp_path / "a.json")["latency"] is None
    code = main(
        [
            *("evaluate", "--benchmark", str(run["bench"]), "--model", "pop"),
            *("--save-results", str(tmp_path / "b.json"), "--latency-calls", "-1"),
        ]
    )
    assert code == 1 and "--latency-calls" in capsys.readouterr().err


def test_gru4rec_results_hold_its_training_history(gru_file):
    history = load_results(gru_file)["history"]
    assert len(history["loss"]) == 2 and all(v > 0 for v in history["loss"])
    assert len(history["valid"]) == 2 and all(0 <= v <= 100 for v in history["valid"])
    assert len(history["seconds"]) == len(history["examples"]) == 2
    assert history["valid_metric"] == "hr@20"
    assert history["best_epoch"] in (1, 2)


def test_load_results_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"n_cases": 3}')
    with pytest.raises(DataError, match="not a sessionrec results file"):
        load_results(tmp_path / "x.json")
    (tmp_path / "v.json").write_text('{"format": "sessionrec-results", "version": 99}')
    with pytest.raises(DataError, match="version 99"):
        load_results(tmp_path / "v.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match=r"bad\.json"):
        load_results(tmp_path / "bad.json")


def test_save_results_writes_strict_json(run, tmp_path):
    data = load_results(run["files"]["pop"])
    data["timing"]["fit_seconds"] = float("nan")  # e.g. an unknown value
    save_results(data, tmp_path / "out.json")
    text = (tmp_path / "out.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["timing"]["fit_seconds"] is None


# ------------------------------------------------------------------ report
def _images(page: str) -> list[bytes]:
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    out = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:40]
        out.append(base64.b64decode(src.split(",", 1)[1], validate=True))
    return out


def _report(capsys, files: list[Path], out: Path, *extra: str) -> tuple[int, str]:
    code = main(["-q", "report", *map(str, files), "-o", str(out), *extra])
    return code, capsys.readouterr().err


def test_report_has_every_section_and_embedded_images(run, gru_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    files = [run["files"]["pop"], run["files"]["sr"], gru_file]
    out = tmp_path / "report.html"
    code, err = _report(capsys, files, out, "--title", "Shop <A&B>")
    assert code == 0, err
    page = out.read_text()
    for sid in SECTION_IDS:
        assert page.count(f'id="{sid}"') == 1, sid
    assert 'id="warnings"' not in page
    # HR curve, MRR curve, by length, coverage/popularity, training, latency
    images = _images(page)
    assert len(images) == 6 == page.count("<img ")
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)
    assert "http://" not in page and "https://" not in page
    assert "<title>Shop &lt;A&amp;B&gt;</title>" in page
    assert 'name="viewport"' in page
    training = page.split('id="training"')[1].split("</section>")[0]
    assert "<img " in training and "gru4rec" in training
    for label in ("pop", "sr", "gru4rec"):
        assert f"<th>{label}</th>" in page


def test_report_without_history_says_so(run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report.html"
    code, err = _report(capsys, [run["files"]["pop"], run["files"]["sr"]], out)
    assert code == 0, err
    page = out.read_text()
    training = page.split('id="training"')[1].split("</section>")[0]
    assert "No result has a training history" in training and "<img" not in training
    assert len(_images(page)) == 5


def test_report_refuses_results_of_different_splits(run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    other = _bench(tmp_path / "other", [*TEST[:-1], "2 3 4"])
    _evaluate(capsys, other, "pop", tmp_path / "other.json")
    files = [run["files"]["pop"], tmp_path / "other.json"]
    code, err = _report(capsys, files, tmp_path / "r.html")
    assert code == 1 and "different splits" in err and "other.json" in err
    assert not (tmp_path / "r.html").exists()
    code, err = _report(capsys, files, tmp_path / "r.html", "--allow-mixed-splits")
    assert code == 0, err
    assert 'id="warnings"' in (tmp_path / "r.html").read_text()


def test_build_report_takes_dicts_and_labels_repeats(run):
    pytest.importorskip("matplotlib")
    data = load_results(run["files"]["sr"])
    page = build_report([data, run["files"]["sr"]], "t")
    assert "<th>sr</th>" in page and "<th>sr #2</th>" in page
    # 21 cases: the page says the figures are noise, for each result
    assert page.count("only 21 test case(s)") == 2 and 'id="small-test"' in page
    data["n_cases"] = 5000  # as many as a real split has: no warning
    assert 'id="small-test"' not in build_report([data], "t")


# ---------------------------------------------------------- pure functions
def test_cutoff_curves_by_hand():
    ranks = np.array([1.0, 3.0, np.inf, 2.0])
    curves = metrics.cutoff_curves(ranks, 3)
    assert curves["hr"] == pytest.approx([0.25, 0.5, 0.75])
    assert curves["mrr"] == pytest.approx([0.25, (1 + 1 / 2) / 4, (1 + 1 / 2 + 1 / 3) / 4])
    assert curves["ndcg"][2] == pytest.approx((1 + 1 / math.log2(3) + 1 / 2) / 4)
    with pytest.raises(ValueError):
        metrics.cutoff_curves(ranks, 0)


def test_percentiles_and_latency_summary_by_hand():
    values = np.arange(1.0, 101.0)  # linear interpolation between order statistics
    assert metrics.percentiles(values) == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01})
    summary = latency_summary(np.array([4.0, 1.0, 3.0, 2.0]))
    assert summary == pytest.approx({"p50": 2.5, "p90": 3.7, "p99": 3.97, "mean": 2.5, "max": 4.0})
    with pytest.raises(DataError):
        latency_summary(np.array([]))


class _Trained(Pop):
    """Pop with a known training history, as a model trained in epochs reports it."""

    def __init__(self, history: TrainingHistory | None = None) -> None:
        super().__init__()
        self.history = history

    def training_history(self) -> TrainingHistory | None:
        return self.history


def _history(valid: list[float], best_epoch: int, examples: list[int] | None = None):
    return TrainingHistory(
        losses=np.array([1.0, 0.5]),
        seconds=np.array([0.2, 0.3]),
        examples=np.array([40, 40] if examples is None else examples),
        valid=np.array(valid),
        valid_metric="mrr@20",
        best_epoch=best_epoch,
    )


def test_training_history_is_the_models_history_as_json():
    assert training_history(Pop()) is None  # not trained in epochs
    never_validated = training_history(_Trained(_history([np.nan, np.nan], best_epoch=0)))
    assert never_validated == {
        "loss": [1.0, 0.5],
        "valid": None,
        "seconds": [0.2, 0.3],
        "examples": [40.0, 40.0],
        "best_epoch": None,
        "valid_metric": "mrr@20",
    }
    validated = training_history(_Trained(_history([12.5, np.nan], best_epoch=1)))
    assert validated is not None
    assert validated["valid"] == [12.5, None] and validated["best_epoch"] == 1


def test_training_history_leaves_out_a_list_of_the_wrong_length(caplog, monkeypatch):
    # The CLI runs above stop "sessionrec" records at its own handler: let them reach caplog.
    monkeypatch.setattr(logging.getLogger("sessionrec"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="sessionrec.evaluation.results"):
        history = training_history(_Trained(_history([3.0, 4.0], 2, examples=[40, 40, 40])))
    assert history is not None
    assert history["examples"] is None and history["loss"] == [1.0, 0.5]
    assert "examples has 3 entries for 2 epochs" in caplog.text


def test_report_plots_the_training_history_of_a_result(run):
    pytest.importorskip("matplotlib")
    data = load_results(run["files"]["pop"])
    data["label"] = "trained"
    data["history"] = training_history(_Trained(_history([12.5, 20.0], best_epoch=2)))
    page = build_report([load_results(run["files"]["sr"]), data], "t")
    training = page.split('id="training"')[1].split("</section>")[0]
    assert "<img " in training
    # one row: the model with a history, its 2 epochs, best epoch 2, 0.5 s of training
    assert "<tr><th>trained</th><td>2</td><td>2</td><td>0.5</td></tr>" in training
    assert "<th>sr</th>" not in training


def test_split_mismatches_names_the_sources():
    def result(fp: str, ties: str = "pessimistic") -> dict[str, Any]:
        return {"split": {"fingerprint": fp, "ties": ties}}

    assert split_mismatches([("a", result("x")), ("b", result("x"))]) == []
    (problem,) = split_mismatches([("a", result("x")), ("b", result("y"))])
    assert "different splits" in problem and "x: a" in problem and "y: b" in problem
    (problem,) = split_mismatches([("a", result("x")), ("b", result("x", "average"))])
    assert "tie policy" in problem


# ------------------------------------------------- labels, empty groups, table width
def test_report_label_names_the_runs(run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    sr = run["files"]["sr"]
    out = tmp_path / "r.html"
    # Before: two runs of one model were "sr" and "sr #2", whatever they were.
    code, err = _report(capsys, [sr, sr], out, "--label", "sr steps=10", "--label", "sr tuned")
    assert code == 0, err
    page = out.read_text()
    assert "<th>sr steps=10</th>" in page and "<th>sr tuned</th>" in page
    assert "sr #2" not in page
    # fewer labels than files: the rest keep their saved label
    code, err = _report(capsys, [sr, run["files"]["pop"]], out, "--label", "rules")
    assert code == 0, err
    page = out.read_text()
    assert "<th>rules</th>" in page and "<th>pop</th>" in page
    code, err = _report(capsys, [sr], out, "--label", "a", "--label", "b")
    assert code == 1 and "--label" in err and err.count("\n") == 1


def test_evaluate_label_is_saved_and_shown_by_the_report(run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _evaluate(capsys, run["bench"], "sr", tmp_path / "a.json", "--label", "rules, 10 steps")
    assert load_results(tmp_path / "a.json")["label"] == "rules, 10 steps"
    assert load_results(tmp_path / "a.json")["model"]["name"] == "sr"
    code, err = _report(capsys, [tmp_path / "a.json", run["files"]["sr"]], tmp_path / "r.html")
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert "<th>rules, 10 steps</th>" in page and "<th>sr</th>" in page


def test_an_empty_length_group_shows_n_a_not_zero(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    # Only prefixes of 1 and 2 clicks: groups "3" and longer have no case.
    bench = _bench(tmp_path / "short", ["1 2", "3 4 5", "7 8"])
    _evaluate(capsys, bench, "sr", tmp_path / "sr.json")
    groups = {g["label"]: g for g in load_results(tmp_path / "sr.json")["by_length"]["groups"]}
    assert groups["1"]["n_cases"] == 3 and groups["2"]["n_cases"] == 1
    assert groups[">10"]["n_cases"] == 0
    page = build_report([tmp_path / "sr.json"], "t")
    table = page.split('id="by-length"')[1].split("</section>")[0]
    row = table.split("<th>sr</th>")[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[:2] == ["100.0 / 100.0", "100.0 / 100.0"]  # 2->3, 3->4->5, 7->8 learned
    assert cells[2:] == ["n/a"] * 4  # before: "0.0 / 0.0", as if every case were missed


def test_metrics_table_headers_may_wrap_and_labels_wrap(run):
    pytest.importorskip("matplotlib")
    page = build_report([run["files"]["sr"]], "t")
    table = page.split('id="metrics"')[1].split("</table>")[0]
    assert '<table class="metrics">' in table
    assert "<th>HR<wbr>@5</th>" in table and "<th>NDCG<wbr>@20</th>" in table
    style = page.split("<style>")[1].split("</style>")[0]
    assert "table.metrics thead th { white-space: normal;" in style
    assert "overflow-wrap: anywhere" in style.split("table.metrics tbody th")[1]
