"""Composite models (ensembles, layers over a model): members saved inside the folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sessionrec._errors import ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.models import registry
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.persist import MANIFEST
from sessionrec.models.popular import Pop
from sessionrec.models.registry import load_model
from sessionrec.models.rules import SequentialRules

TRAIN = SessionData.from_sequences([[1, 2, 3], [2, 3], [3, 4, 1], [4, 1], [1, 2]])


class Shifted(Recommender):
    """A test composite: its member's scores plus a learned offset per item."""

    name = "shifted-test"

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        self.base_ = SequentialRules().fit(train)
        self.offset_ = self.shift * np.arange(train.n_items, dtype=np.float32)

    def score(self, batch: SessionBatch) -> np.ndarray:
        return self.base_.score(batch) + self.offset_

    def _get_members(self) -> dict[str, Recommender]:
        return {"base": self.base_}

    def _set_members(self, members: dict[str, Recommender]) -> None:
        self.base_ = members["base"]

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"offset": self.offset_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.offset_ = state["offset"]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.MODELS, Shifted.name, Shifted)


def test_members_are_saved_inside_the_folder_and_loaded_back(
    registered: None, tmp_path: Path
) -> None:
    model = Shifted(shift=0.5).fit(TRAIN)
    folder = model.save(tmp_path / "m")
    assert json.loads((folder / MANIFEST).read_text())["members"] == ["base"]
    member_manifest = json.loads((folder / "members" / "base" / MANIFEST).read_text())
    assert member_manifest["model"] == "sr"
    loaded = load_model(folder)
    assert isinstance(loaded, Shifted) and isinstance(loaded.base_, SequentialRules)
    sessions = [[1], [2, 3], [4], []]
    assert loaded.recommend(sessions, k=4) == model.recommend(sessions, k=4)


def test_a_modified_member_file_is_refused(registered: None, tmp_path: Path) -> None:
    folder = Shifted().fit(TRAIN).save(tmp_path / "m")
    state = folder / "members" / "base" / "state.npz"
    state.write_bytes(state.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="checksum"):
        load_model(folder)


@pytest.mark.parametrize("names", [["../base"], [".hidden"], "base", [3]])
def test_member_names_must_be_plain_folder_names(
    registered: None, tmp_path: Path, names: object
) -> None:
    folder = Shifted().fit(TRAIN).save(tmp_path / "m")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["members"] = names
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="members"):
        load_model(folder)


def test_a_model_without_members_refuses_some(tmp_path: Path) -> None:
    folder = Pop().fit(TRAIN).save(tmp_path / "pop")
    assert json.loads((folder / MANIFEST).read_text())["members"] == []
    Shifted().fit(TRAIN).base_.save(tmp_path / "other")
    (folder / "members").mkdir()
    (tmp_path / "other").rename(folder / "members" / "base")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["members"] = ["base"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="no member models"):
        load_model(folder)
