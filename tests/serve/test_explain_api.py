"""Explanations in the API (``explain=true``), worked out by hand from ``conftest.TRAIN``.

The default model is the Markov chain: from 1 the transitions go to 2 (3 times), 3 (2),
4 (1) and 5 (1), so the reason of every model item is item 1 with its transition count.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionrec.serve.app import create_app
from sessionrec.serve.config import VariantSpec

from .conftest import TRAIN, ids, train_model

EVENTS = "/v1/sessions/{}/events"


def because(item: str, weight: float) -> dict[str, Any]:
    return {"kind": "session_items", "session_items": [{"item_id": item, "weight": weight}],
            "neighbour_sessions": []}  # fmt: skip


def fallback(kind: str) -> dict[str, Any]:
    return {"kind": kind, "session_items": [], "neighbour_sessions": []}


def reasons(answer: dict[str, Any]) -> list[Any]:
    return [item["reason"] for item in answer["items"]]


def stateless(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/recommendations", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_post_event_with_explain_carries_the_rule_of_each_item(client):
    answer = client.post(EVENTS.format("e1") + "?k=3&explain=true", json={"item_id": "1"}).json()
    assert ids(answer) == ["2", "3", "4"]
    assert reasons(answer) == [because("1", 3.0), because("1", 2.0), because("1", 1.0)]


def test_without_explain_the_answer_has_no_reason_field(client):
    for query in ("?k=3", "?k=3&explain=false"):
        answer = client.post(EVENTS.format("e2") + query, json={"item_id": "1"}).json()
        assert all("reason" not in item for item in answer["items"])
        assert set(answer["items"][0]) == {"item_id", "score", "source"}
    answer = stateless(client, items=["1"], k=2)
    assert all("reason" not in item for item in answer["items"])


def test_get_recommendations_explains_model_and_fallback_items(client):
    client.post(EVENTS.format("e3"), json={"item_id": "5"})
    client.post(EVENTS.format("e3"), json={"item_id": "1"})
    answer = client.get("/v1/sessions/e3/recommendations?k=4&explain=true").json()
    # from 1: 2, 3, 4 (5 was seen); the fourth item is completed by global popularity
    assert ids(answer)[:3] == ["2", "3", "4"]
    assert [i["source"] for i in answer["items"]] == ["model"] * 3 + ["popular"]
    assert reasons(answer) == [
        because("1", 3.0),
        because("1", 2.0),
        because("1", 1.0),
        fallback("popular"),
    ]


def test_stateless_endpoint_explains_only_the_items_left_by_the_rules(client):
    answer = stateless(client, items=["1"], k=2, explain=True, exclude_items=["2"])
    assert ids(answer) == ["3", "4"]
    assert reasons(answer) == [because("1", 2.0), because("1", 1.0)]


def test_unknown_session_is_all_popular(client):
    answer = client.get("/v1/sessions/nobody/recommendations?k=2&explain=true").json()
    assert reasons(answer) == [fallback("popular")] * 2


def test_category_fallback_items_say_category(make_config, shop):
    with TestClient(create_app(make_config(catalog=str(shop.catalog_csv)))) as client:
        # from 9 the model knows only 10; then the most clicked hats
        answer = stateless(client, items=["9"], k=3, explain=True)
        assert ids(answer) == ["10", "11", "12"]
        assert reasons(answer) == [because("9", 1.0), fallback("category"), fallback("category")]
        # business rules first: sold-out 2 is never shown, so never explained
        answer = stateless(client, items=["1"], k=3, explain=True, available_only=True)
        assert ids(answer) == ["3", "4", "5"]
        assert reasons(answer) == [because("1", 2.0), because("1", 1.0), because("1", 1.0)]


def test_knn_reasons_name_the_neighbour_sessions(make_config, tmp_path):
    # Sessions 11 (9 10) and 14 (12 9) contain 9; each is a neighbour of similarity 1 and
    # gives its other item a score of 1 (ties: lower id first).
    folder = train_model("vsknn", TRAIN, tmp_path / "vsknn")
    config = make_config(variants=(VariantSpec("default", str(folder)),))
    with TestClient(create_app(config)) as client:
        answer = client.post(EVENTS.format("k1") + "?k=2&explain=true", json={"item_id": 9})
        answer = answer.json()
        assert ids(answer) == ["10", "12"]
        assert reasons(answer) == [
            {
                "kind": "neighbours",
                "session_items": [{"item_id": "9", "weight": pytest.approx(1.0)}],
                "neighbour_sessions": [{"session": 11, "weight": pytest.approx(1.0)}],
            },
            {
                "kind": "neighbours",
                "session_items": [{"item_id": "9", "weight": pytest.approx(1.0)}],
                "neighbour_sessions": [{"session": 14, "weight": pytest.approx(1.0)}],
            },
        ]


def test_explain_is_documented_in_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    get = schema["paths"]["/v1/sessions/{session_id}/recommendations"]["get"]
    assert "explain" in {p["name"] for p in get["parameters"]}
    assert "reason" in schema["components"]["schemas"]["ItemOut"]["properties"]


def test_invalid_explain_value_is_a_422(client):
    response = client.get("/v1/sessions/x/recommendations?explain=maybe")
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_the_schema_names_every_reason_kind_the_service_can_answer(client):
    # regression: "repeat" (the repeat layer's reason) was missing from the documented kinds
    from sessionrec.models.base import REASON_KINDS

    schema = client.get("/openapi.json").json()["components"]["schemas"]
    kinds = set(schema["ReasonOut"]["properties"]["kind"]["enum"])
    sources = set(schema["ItemOut"]["properties"]["source"]["enum"])
    assert set(REASON_KINDS) <= kinds
    assert sources - {"model"} <= kinds  # a fallback item's reason kind is its source
