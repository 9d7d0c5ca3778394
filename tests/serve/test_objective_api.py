"""The ``objective`` request option and the session's event types reaching the model."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sessionrec.models.registry import create_model
from sessionrec.serve.app import create_app
from sessionrec.serve.config import VariantSpec
from typed_sessions import C, P, V, typed

from .conftest import ids

EVENTS = "/v1/sessions/{}/events"


# visitors who view "a" look at "b" a lot but buy "c"
TRAIN = typed(
    [[("a", V), ("b", V), ("c", V), ("c", P)]] * 3
    + [[("a", V), ("b", V), ("b", V)]] * 4
    + [[("a", V), ("d", C), ("d", P)]]
)


@pytest.fixture
def knn_client(make_config, tmp_path):
    folder = create_model("vsknn", {"k": 10, "sample_size": 10}).fit(TRAIN).save(tmp_path / "m")
    config = make_config(variants=(VariantSpec("default", str(folder)),), popularity=None)
    with TestClient(create_app(config)) as client:
        yield client


def test_the_purchase_objective_ranks_what_such_visitors_buy(knn_client):
    client = knn_client
    click = client.post(EVENTS.format("s") + "?k=2", json={"item_id": "a"}).json()
    assert ids(click)[0] == "b"  # the next click
    buy = client.get("/v1/sessions/s/recommendations?k=2&objective=purchase").json()
    assert ids(buy)[0] == "c"  # what those sessions buy


def test_a_carted_item_of_the_session_is_the_first_purchase_candidate(knn_client):
    client = knn_client
    client.post(EVENTS.format("cart"), json={"item_id": "a"})
    # the session's event types reach the model: "d" was carted, not bought yet
    answer = client.post(
        EVENTS.format("cart") + "?k=3&objective=purchase",
        json={"item_id": "d", "event_type": "cart"},
    ).json()
    assert ids(answer)[0] == "d"
    # the click objective leaves the session's items out, as before
    click = client.get("/v1/sessions/cart/recommendations?k=3").json()
    assert "d" not in ids(click) and "a" not in ids(click)


def test_a_model_without_objectives_refuses_another_one(client):
    response = client.post(EVENTS.format("m") + "?objective=purchase", json={"item_id": "1"})
    assert response.status_code == 422
    assert response.json()["error"] == "objective_unsupported"
    assert "ranks for the 'click' objective only" in response.json()["message"]
    bad = client.post(EVENTS.format("m") + "?objective=buy", json={"item_id": "1"})
    assert bad.status_code == 422 and "objective" in bad.text
    stateless = client.post("/v1/recommendations", json={"items": ["1"], "objective": "click"})
    assert stateless.status_code == 200
