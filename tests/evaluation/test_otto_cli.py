"""``sessionrec train/evaluate --objective`` and ``evaluate --protocol otto``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessionrec.cli import main
from typed_sessions import prepared_folder


@pytest.fixture
def typed_folder(tmp_path: Path) -> Path:
    """A prepared dataset folder (Parquet with event types) of a tiny shop log."""
    rows = []
    for s in range(60):
        day = s // 15  # four days: the last is the test period, the one before validation
        base = 1_700_000_000 + day * 86_400 + s * 600
        items = [s % 5, 10 + s % 3, 20 + s % 4, 10 + s % 3]
        kinds = ["view", "view", "cart", "purchase"] if s % 2 else ["view"] * 4
        for k, (item, kind) in enumerate(zip(items, kinds, strict=True)):
            rows.append(
                {"session_id": s, "item_id": item, "timestamp": base + k, "event_type": kind}
            )
    return prepared_folder(rows, tmp_path)


def test_evaluate_otto_with_the_purchase_objective(typed_folder: Path, capsys) -> None:
    argv = ["evaluate", "--benchmark", str(typed_folder), "--model", "vsknn", "--json"]
    assert main([*argv, "--objective", "purchase", "--protocol", "otto"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "otto" and out["model"] == "vsknn"
    assert out["n_sessions"] > 0 and out["sessions_orders"] > 0
    assert 0.0 <= out["recall@20_orders"] <= 1.0


def test_train_saves_the_objective(typed_folder: Path, tmp_path: Path) -> None:
    argv = ["train", "--benchmark", str(typed_folder), "--model", "vstan", "--output"]
    assert main([*argv, str(tmp_path / "m"), "--objective", "cart"]) == 0
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["params"]["objective"] == "cart"


def test_purchase_objective_on_a_folder_without_types_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("1 2 3\n2 3 4\n")
    (folder / "test_sessions.txt").write_text("1 2 3\n")
    argv = ["train", "--benchmark", str(folder), "--model", "vsknn", "--objective", "purchase"]
    assert main([*argv, "--output", str(tmp_path / "m")]) != 0
    assert "objective='purchase' needs training data with event types" in capsys.readouterr().err
