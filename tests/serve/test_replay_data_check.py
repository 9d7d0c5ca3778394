"""replay refuses a served model trained on other data than the split's train_sessions.txt,
as evaluate does (issue 22): both fingerprints named, --allow-other-data to go on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionrec.cli import main
from sessionrec.serve.app import create_app
from sessionrec.serve.config import ServeConfig, VariantSpec

from .conftest import free_port, wait_until

uvicorn = pytest.importorskip("uvicorn")
pytestmark = [pytest.mark.timeout(120)]

TRAIN = ["1 2 3", "2 3 4", "1 2 3 4", "3 4", "2 3", "1 2"] * 20
OTHER_TRAIN = ["1 2 4", "2 3 4", "1 3 4", "4 3", "2 1", "1 2"] * 20
TEST = ["1 2 3", "2 3 4", "4 1"]


def make_split(folder: Path, train: list[str]) -> Path:
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("\n".join(train) + "\n")
    (folder / "test_sessions.txt").write_text("\n".join(TEST) + "\n")
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """A pop model trained on ``split`` and served; ``other`` is a split it was not."""
    root = tmp_path_factory.mktemp("replay-check")
    split = make_split(root / "split", TRAIN)
    other = make_split(root / "other", OTHER_TRAIN)
    model_dir = root / "model"
    argv = ["-q", "train", "--benchmark", str(split), "--model", "pop", "--output", str(model_dir)]
    assert main(argv) == 0
    config = ServeConfig(variants=(VariantSpec("default", str(model_dir)),), reload_interval=0)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "uvicorn to start")
    try:
        yield split, other, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def replay(capsys: pytest.CaptureFixture[str], test_file: Path, url: str, *extra: str):
    code = main(["replay", str(test_file), "--url", url, "--json", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_of_the_model_s_own_split_runs_without_a_warning(served, capsys) -> None:
    split, _, url = served
    code, out, err = replay(capsys, split / "test_sessions.txt", url)
    assert code == 0 and json.loads(out)["n_cases"] == 5
    assert "fingerprint" not in err


def test_replay_refuses_a_model_trained_on_other_data(served, capsys) -> None:
    split, other, url = served
    code, out, err = replay(capsys, other / "test_sessions.txt", url)
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("sessionrec: error:")]
    assert len(lines) == 1 and "trained on other data" in lines[0]
    from sessionrec.data.formats import read_sessions_txt

    assert read_sessions_txt(split / "train_sessions.txt").fingerprint() in lines[0]
    assert read_sessions_txt(other / "train_sessions.txt").fingerprint() in lines[0]
    code, out, err = replay(capsys, other / "test_sessions.txt", url, "--allow-other-data")
    assert code == 0 and json.loads(out)["n_cases"] == 5
    assert "trained on other data" in err


def test_replay_without_a_training_file_warns(served, tmp_path, capsys) -> None:
    _, _, url = served
    test_file = tmp_path / "test_sessions.txt"
    test_file.write_text("\n".join(TEST) + "\n")
    code, _, err = replay(capsys, test_file, url)
    assert code == 0 and "no train_sessions.txt beside" in err
