"""A model's own fallback is served as a fallback (regression: it was ``fallback: false``).

Session-kNN scores a session without neighbours by popularity inside the model. Item 13 is
in the model's vocabulary but in no training session, so a session of just 13 uses known
items and still has no neighbour: the answer is the model's popularity list, and both the
answer and the fallback metric must say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.registry import create_model
from sessionrec.serve.app import create_app
from sessionrec.serve.config import ServeConfig, VariantSpec

from .conftest import POPULARITY, TRAIN, Shop, ids

EVENTS = "/v1/sessions/{}/events"


@pytest.fixture(scope="module")
def knn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sknn") / "model"
    vocab = ItemVocab(list(range(1, 14)))  # 13: known to the model, never clicked
    model = create_model("sknn", {}).fit(SessionData.from_sequences(TRAIN, vocab=vocab))
    model.save(folder)
    return folder


@pytest.fixture
def knn_client(knn_dir: Path, shop: Shop):
    config = ServeConfig(
        variants=(VariantSpec("default", str(knn_dir)),),
        popularity=str(shop.train_file),
        reload_interval=0.0,
    )
    with TestClient(create_app(config)) as client:
        yield client


def fallbacks_counted(client: TestClient) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "sessionrec_fallbacks_total":
                assert sample.labels == {"variant": "default"}
                return sample.value
    return 0.0


def test_a_session_without_neighbours_is_answered_and_counted_as_a_fallback(knn_client):
    answer = knn_client.post(EVENTS.format("lonely") + "?k=3", json={"item_id": 13}).json()
    # The model's popularity: the most clicked items of TRAIN, ties by lower id (1, 5, 2).
    most_clicked = sorted(POPULARITY, key=lambda item: (-POPULARITY[item], item))
    assert ids(answer) == [str(item) for item in most_clicked[:3]]
    assert [item["source"] for item in answer["items"]] == ["model"] * 3
    assert answer["fallback"] is True
    assert fallbacks_counted(knn_client) == 1

    stateless = knn_client.post("/v1/recommendations", json={"items": [13], "k": 3}).json()
    assert ids(stateless) == ids(answer) and stateless["fallback"] is True
    assert fallbacks_counted(knn_client) == 2


def test_a_session_with_neighbours_is_not_a_fallback(knn_client):
    # 9's neighbours are [9, 10] and [12, 9]: two model items, 9 itself excluded as seen.
    answer = knn_client.post(EVENTS.format("s") + "?k=2", json={"item_id": 9}).json()
    assert sorted(ids(answer)) == ["10", "12"]
    assert answer["fallback"] is False
    assert all(item["source"] == "model" for item in answer["items"])
    assert fallbacks_counted(knn_client) == 0
