"""Unknown JSON fields are refused (issue 22): a 422 naming the field and the allowed ones.

Before, ``{"items": [...], "exclude": ["2"]}`` answered 200 with nothing excluded (the field
is ``exclude_items``): a typo looked like a working request. Every endpoint that takes a JSON
body is covered: the two session endpoints, feedback and the admin reload. (The demo routes
take no body: the storefront page uses the same public endpoints.)
"""

from __future__ import annotations

import pytest

from .conftest import ids

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

RECOMMEND_FIELDS = (
    "items, k, session_id, timestamps, exclude_seen, exclude_items, categories, "
    "exclude_categories, available_only, fallback, details, explain, variant, objective"
)


def refused(response, field: str, allowed: str) -> dict:
    """The 422 error object for one unknown ``field``, in the service's error format."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["message"] == f"body.{field}: unknown field (allowed: {allowed})"
    assert body["details"] == [
        {
            "loc": ["body", field],
            "msg": f"unknown field (allowed: {allowed})",
            "type": "extra_forbidden",
        }
    ]
    return body


def test_stateless_request_refuses_a_misspelt_option(client):
    response = client.post("/v1/recommendations", json={"items": ["1"], "exclude": ["2"]})
    refused(response, "exclude", RECOMMEND_FIELDS)
    # the spelling that exists does what the typo was meant to do
    answer = client.post("/v1/recommendations", json={"items": ["1"], "exclude_items": ["2"]})
    assert answer.status_code == 200 and "2" not in ids(answer.json())


def test_event_body_refuses_a_query_option_sent_in_the_body(client):
    response = client.post("/v1/sessions/s1/events", json={"item_id": "1", "k": 3})
    refused(response, "k", "item_id, event_type, timestamp, consent, price, quantity")
    # nothing was recorded: the session is still empty
    assert client.get("/v1/sessions/s1/recommendations").json()["event_count"] == 0


def test_unknown_fields_are_listed_with_the_other_problems(client):
    response = client.post(
        "/v1/recommendations", json={"items": ["1"], "k": 0, "exclude": [], "explian": True}
    )
    assert response.status_code == 422
    details = response.json()["details"]
    assert [(d["loc"], d["type"]) for d in details] == [
        (["body", "k"], "greater_than_equal"),
        (["body", "exclude"], "extra_forbidden"),
        (["body", "explian"], "extra_forbidden"),
    ]


def test_feedback_refuses_unknown_fields(client):
    answer = client.post("/v1/sessions/fb/events", json={"item_id": "1"}).json()
    body = {"recommendation_id": answer["recommendation_id"], "item_id": "2", "clicks": 2}
    refused(client.post("/v1/feedback", json=body), "clicks", "recommendation_id, item_id")
    del body["clicks"]
    assert client.post("/v1/feedback", json=body).json()["counted"] is True


def test_admin_reload_refuses_unknown_fields(client, monkeypatch, shop):
    monkeypatch.setenv("SESSIONREC_ADMIN_TOKEN", TOKEN)
    response = client.post(
        "/v1/admin/models/default/reload", json={"folder": str(shop.sr_dir)}, headers=AUTH
    )
    refused(response, "folder", "path")
    model = client.get("/v1/admin/models", headers=AUTH).json()["variants"][0]["model"]
    assert model == "markov"  # the typo did not reload the folder it meant, nor anything


@pytest.mark.parametrize(
    "name", ["EventIn", "RecommendIn", "FeedbackIn", "ReloadIn"], ids=str.lower
)
def test_the_schema_documents_that_no_other_field_is_allowed(client, name):
    schema = client.get("/openapi.json").json()
    bodies = [
        operation["requestBody"]["content"]["application/json"]["schema"]
        for path in schema["paths"].values()
        for operation in path.values()
        if "requestBody" in operation
    ]
    resolved = []
    for body in bodies:
        for option in body.get("anyOf", [body]):
            if "$ref" in option:
                option = schema["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
            resolved.append(option)
    matching = [b for b in resolved if b.get("title") == name]
    assert matching and all(b["additionalProperties"] is False for b in matching)
