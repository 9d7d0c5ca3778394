"""The popularity fallback works without ``--popularity`` (regression: issue 22 item 5).

A sequential-rules model served without ``--popularity`` answered a new session with
``"items": [], "fallback": false`` although the README promises popular items. Every model
folder now keeps the training clicks per item (``counts.npz``); ``--popularity`` only
overrides them. A folder saved before counts were kept still loads: it gets the fallback only
with ``--popularity``, and a warning says so at start-up.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionrec.models.persist import COUNTS, MANIFEST
from sessionrec.serve.app import create_app
from sessionrec.serve.config import ServeConfig, VariantSpec

from .conftest import POPULARITY, Shop, ids

MOST_CLICKED = [str(item) for item in sorted(POPULARITY, key=lambda i: (-POPULARITY[i], i))]
"""TRAIN's items by clicks, ties by lower id: 1 (7 clicks), 5 (5), 2 (4), ..."""


def serve(folder: Path, **overrides: Any) -> TestClient:
    settings: dict[str, Any] = {
        "variants": (VariantSpec("default", str(folder)),),
        "reload_interval": 0.0,
        **overrides,
    }
    return TestClient(create_app(ServeConfig(**settings)))


def recommend(client: TestClient, items: list[Any], k: int = 3) -> dict[str, Any]:
    response = client.post("/v1/recommendations", json={"items": items, "k": k})
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Warnings of the model loader, whether or not the package logger propagates and
    whatever level an earlier test left on it."""
    logger = logging.getLogger("sessionrec.serve.registry")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.WARNING)
    # an in-process `sessionrec -q ...` of an earlier test may have raised the package's level
    caplog.set_level(logging.WARNING, logger=logger.name)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_new_and_unknown_sessions_get_popular_items_without_popularity_file(
    shop: Shop, warnings_logged: pytest.LogCaptureFixture
) -> None:
    with serve(shop.sr_dir) as client:
        for session in ([], ["99"], ["99", "98"]):
            answer = recommend(client, session)
            assert ids(answer) == MOST_CLICKED[:3]
            assert answer["fallback"] is True
            assert [item["source"] for item in answer["items"]] == ["popular"] * 3
        live = client.post("/v1/sessions/new/events?k=3", json={"item_id": "99"}).json()
        assert ids(live) == MOST_CLICKED[:3] and live["fallback"] is True
    assert "no training counts" not in warnings_logged.text


def test_popularity_file_overrides_the_stored_counts(shop: Shop, tmp_path: Path) -> None:
    table = tmp_path / "popularity.csv"
    table.write_text("item_id,count\n12,50\n11,40\n10,30\n1,1\n")
    with serve(shop.sr_dir, popularity=str(table)) as client:
        answer = recommend(client, [])
    assert ids(answer) == ["12", "11", "10"] and answer["fallback"] is True


def strip_counts(folder: Path) -> None:
    """Make a model folder look saved by a sessionrec that kept no counts."""
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["files"][COUNTS]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    (folder / COUNTS).unlink()


def test_an_older_folder_without_counts_loads_and_warns(
    shop: Shop, tmp_path: Path, warnings_logged: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old-sr"
    shutil.copytree(shop.sr_dir, old)
    strip_counts(old)
    with serve(old) as client:
        answer = recommend(client, ["99"])
        assert answer["items"] == [] and answer["fallback"] is False
        # Known items are still answered by the model itself.
        assert ids(recommend(client, ["1"], k=2)) == ["2", "3"]
    assert "no training counts" in warnings_logged.text
    assert "--popularity" in warnings_logged.text

    warnings_logged.clear()
    with serve(old, popularity=str(shop.train_file)) as client:
        answer = recommend(client, ["99"])
    assert ids(answer) == MOST_CLICKED[:3] and answer["fallback"] is True
    assert "no training counts" not in warnings_logged.text
