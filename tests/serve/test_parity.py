"""Offline/online parity: replaying a test split against the live service gives exactly the
HR@K and MRR@K of ``sessionrec evaluate`` on the same cases.

The split has what makes parity hard: items unknown to the model (in prefixes and as
targets), one-click sessions (no case), repeated items (evaluation does not exclude seen
items) and, with the Markov model, many tied scores at the cut-off (pessimistic ties).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn

from sessionrec.cli import main as sessionrec_main
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate, make_cases, prefix_batch
from sessionrec.models.registry import MODELS, load_model
from sessionrec.serve.app import create_app
from sessionrec.serve.config import ServeConfig, VariantSpec
from sessionrec.serve.replay import pessimistic_rank, replay_file

from .conftest import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
K = 10
PARITY_MODELS = [name for name in ("sr", "markov", "itemknn", "vsknn") if name in MODELS]


def _walks(rng: np.random.Generator, n: int, n_items: int, unknown_share: float) -> list[str]:
    lines = []
    for _ in range(n):
        length = int(rng.integers(1, 9))
        item = int(rng.integers(0, n_items))
        session = []
        for _ in range(length):
            if rng.random() < unknown_share:
                session.append(str(90_000 + int(rng.integers(0, 50))))  # never in training
            else:
                session.append(str(1000 + item))
            # mostly a neighbour (structure to learn), sometimes a repeat or a jump
            step = rng.choice(
                [1, 2, 3, 0, int(rng.integers(0, n_items))], p=[0.4, 0.2, 0.1, 0.1, 0.2]
            )
            item = (item + int(step)) % n_items
        lines.append(" ".join(session))
    return lines


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("split")
    rng = np.random.default_rng(3)
    train = [line for line in _walks(rng, 1500, 120, 0.0) if len(line.split()) >= 2]
    (folder / "train_sessions.txt").write_text("\n".join(train) + "\n")
    (folder / "test_sessions.txt").write_text("\n".join(_walks(rng, 120, 130, 0.05)) + "\n")
    return folder


class ThreadServer:
    """uvicorn serving an app in a background thread of the test process."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module", params=PARITY_MODELS)
def served(request, split: Path, tmp_path_factory) -> Iterator[tuple[str, Path, str]]:
    name = request.param
    model_dir = tmp_path_factory.mktemp(f"model-{name}") / name
    code = sessionrec_main(
        ["-q", "train", "--benchmark", str(split), "--model", name, "--output", str(model_dir)]
    )
    assert code == 0
    # production defaults everywhere (exclude_seen on, fallbacks on, a popularity source):
    # the replay asks for evaluation's behaviour itself
    config = ServeConfig(
        variants=(VariantSpec("default", str(model_dir)),),
        popularity=str(split / "train_sessions.txt"),
        reload_interval=0,
    )
    with ThreadServer(create_app(config)) as server:
        yield name, model_dir, server.url


def model_fallbacks(model, folder: BenchmarkFolder) -> int:
    """How many test prefixes the model answers with its own fallback (``fallback_mask``)."""
    test = folder.test()
    cases = make_cases(test, "next")
    mapped = model.vocab_.encode(test.vocab.ids).astype(np.int64)[test.items]
    batch = prefix_batch(mapped, None, cases.starts, cases.lengths)
    return int(model.fallback_mask(batch).sum())


def test_replay_equals_offline_evaluation(served, split):
    _, model_dir, url = served
    assert_replay_equals_evaluation(model_dir, url, split)


def assert_replay_equals_evaluation(model_dir: Path, url: str, split: Path) -> None:
    folder = BenchmarkFolder(split)
    offline = evaluate(load_model(model_dir), folder.test(), protocol="benchmark", cutoffs=(K,))
    online = replay_file(split / "test_sessions.txt", url, k=K, concurrency=4)
    assert online.errors == 0
    assert online.n_cases == offline.n_cases
    np.testing.assert_array_equal(online.ranks <= K, offline.ranks <= K)
    hits = offline.ranks <= K
    np.testing.assert_array_equal(online.ranks[hits], offline.ranks[hits])
    offline_metrics = offline.metrics()
    online_metrics = online.metrics()
    assert online_metrics[f"hr@{K}"] == offline_metrics[f"hr@{K}"]
    assert online_metrics[f"mrr@{K}"] == offline_metrics[f"mrr@{K}"]
    assert 0 < offline_metrics[f"hr@{K}"] < 100  # a meaningful split: hits and misses
    # fallback=false keeps the service's chain out; what remains flagged is the model's own
    # fallback (a kNN prefix without neighbours), exactly on the prefixes where the model
    # reports one offline.
    assert online_metrics["fallback_answers"] == model_fallbacks(load_model(model_dir), folder)
    assert online_metrics["latency_p50_ms"] > 0


def test_replay_of_the_folder_auto_chose_equals_offline_evaluation(split, tmp_path_factory):
    """``sessionrec auto``'s folder (a composite model: a repeat layer or an ensemble with
    its members inside, or a single model) serves what ``evaluate`` measures."""
    pytest.importorskip("optuna")
    from sessionrec.auto import auto

    model_dir = tmp_path_factory.mktemp("auto") / "model"
    summary = auto(BenchmarkFolder(split).train(), model_dir, 600.0, trials=1, neural=())
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["metrics"]["auto_choice"] == summary["chosen"]
    config = ServeConfig(
        variants=(VariantSpec("default", str(model_dir)),),
        popularity=str(split / "train_sessions.txt"),
        reload_interval=0,
    )
    with ThreadServer(create_app(config)) as server:
        assert_replay_equals_evaluation(model_dir, server.url, split)


@pytest.mark.parametrize("served", PARITY_MODELS[:1], indirect=True)
def test_replay_cli_prints_the_numbers_of_evaluate(served, split, capsys):
    _, model_dir, url = served
    assert (
        sessionrec_main(
            [
                "-q",
                "evaluate",
                "--benchmark",
                str(split),
                "--model-dir",
                str(model_dir),
                "--cutoffs",
                str(K),
                "--json",
            ]
        )
        == 0
    )
    offline = json.loads(capsys.readouterr().out)
    code = sessionrec_main(
        ["-q", "replay", str(split / "test_sessions.txt"), "--url", url, "-k", str(K), "--json"]
    )
    assert code == 0
    online = json.loads(capsys.readouterr().out)
    assert online[f"hr@{K}"] == offline[f"hr@{K}"]
    assert online[f"mrr@{K}"] == offline[f"mrr@{K}"]
    assert online["n_cases"] == offline["n_cases"]
    # a few hundred cases: both say the figures are noise, in the same words
    assert online["warnings"] == offline["warnings"] and "noise" in online["warnings"][0]
    for key in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "requests_per_s"):
        assert online[key] > 0


def test_replay_against_no_service_is_one_error_line(split, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    code = sessionrec_main(["-q", "replay", str(split / "test_sessions.txt"), "--url", url])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sessionrec: error: cannot reach the service")


@pytest.mark.parametrize(
    ("items", "scores", "target", "expected"),
    [
        (["a", "b", "c"], [3.0, 2.0, 1.0], "b", 2.0),
        (["a", "b", "c"], [3.0, 2.0, 2.0], "b", 3.0),  # tie: counted against the target
        (["a", "b", "c"], [2.0, 2.0, 2.0], "a", 3.0),
        (["a", "b", "c", "d"], [3.0, 1.0, 1.0, 1.0], "b", np.inf),  # tie group past k=3
        (["a", "b"], [3.0, 2.0], "z", np.inf),
    ],
)
def test_pessimistic_rank(items, scores, target, expected):
    assert pessimistic_rank(target, items, scores, 3) == expected
