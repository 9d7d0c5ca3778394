"""The HTTP API with known answers: shapes, sessions, limits and errors, metrics, ops endpoints.

Answers are worked out by hand from the Markov model of ``conftest.TRAIN``.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sessionrec.models.persist import read_manifest
from sessionrec.serve.registry import model_version

from .conftest import POPULARITY, ids

EVENTS = "/v1/sessions/{}/events"


def popular(n: int, exclude: set[int] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The n most clicked items of TRAIN, ties by lower id (the service's fallback order)."""
    order = sorted(POPULARITY, key=lambda item: (-POPULARITY[item], item))
    return [str(item) for item in order if item not in exclude][:n]


def test_event_answer_has_the_documented_shape_and_known_items(client, shop):
    response = client.post(EVENTS.format("s1") + "?k=3", json={"item_id": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert {"recommendation_id", "model", "model_version", "fallback", "items"} <= set(answer)
    assert answer["model"] == "markov"
    assert answer["model_version"] == model_version(read_manifest(shop.markov_dir))
    assert answer["fallback"] is False and answer["degraded"] is False
    assert answer["session_id"] == "s1" and answer["event_count"] == 1
    assert isinstance(answer["recommendation_id"], str) and len(answer["recommendation_id"]) >= 16
    # from 1: 2 (3 transitions), 3 (2), 4 (1) and 5 (1): the tie goes to the lower index
    assert [(i["item_id"], i["score"]) for i in answer["items"]] == [
        ("2", 3.0),
        ("3", 2.0),
        ("4", 1.0),
    ]
    assert all(i["source"] == "model" for i in answer["items"])


def test_integer_ids_are_accepted_and_answered_as_strings(client):
    answer = client.post(EVENTS.format("ints") + "?k=2", json={"item_id": 1}).json()
    assert ids(answer) == ["2", "3"]


def test_full_event_body_and_recommend_false_acknowledges(client):
    body = {"item_id": "5", "event_type": "cart", "timestamp": 1_700_000_000.0}
    response = client.post(EVENTS.format("ack") + "?recommend=false", json=body)
    assert response.status_code == 200
    assert response.json() == {"session_id": "ack", "event_count": 1, "degraded": False}


def test_session_accumulates_and_seen_items_are_excluded_by_default(client):
    client.post(EVENTS.format("s2"), json={"item_id": "5"})
    answer = client.post(EVENTS.format("s2") + "?k=4", json={"item_id": "1"}).json()
    assert answer["event_count"] == 2
    # from 1: 2, 3, 4, 5, but 5 was seen: the list is completed by the fallback chain
    assert ids(answer)[:3] == ["2", "3", "4"]
    assert answer["items"][3]["source"] == "popular" and answer["fallback"] is True
    assert ids(answer)[3] == popular(1, exclude={1, 5, 2, 3, 4})[0]
    again = client.get("/v1/sessions/s2/recommendations?k=4&exclude_seen=false").json()
    assert ids(again) == ["2", "3", "4", "5"] and again["fallback"] is False
    assert again["event_count"] == 2


def test_unknown_session_gets_globally_popular_items(client):
    answer = client.get("/v1/sessions/never-seen/recommendations?k=3").json()
    assert answer["event_count"] == 0
    assert answer["fallback"] is True
    assert ids(answer) == popular(3)
    assert [i["source"] for i in answer["items"]] == ["popular"] * 3
    scores = [i["score"] for i in answer["items"]]
    assert scores[0] == 1.0 and scores == sorted(scores, reverse=True)


def test_fallback_false_returns_only_model_items(client):
    answer = client.get("/v1/sessions/nothing/recommendations?k=3&fallback=false").json()
    assert answer["items"] == [] and answer["fallback"] is False


def test_stateless_recommendations(client):
    answer = client.post("/v1/recommendations", json={"items": ["1"], "k": 2}).json()
    assert ids(answer) == ["2", "3"]
    assert answer["fallback"] is False and "session_id" not in answer
    excluded = client.post(
        "/v1/recommendations", json={"items": ["1"], "k": 2, "exclude_items": ["2", 3]}
    ).json()
    assert ids(excluded) == ["4", "5"]


def test_unknown_items_are_dropped_from_the_model_input(client):
    plain = client.post("/v1/recommendations", json={"items": ["1"], "k": 4}).json()
    noisy = client.post("/v1/recommendations", json={"items": ["999", "1", "x"], "k": 4}).json()
    assert ids(noisy) == ids(plain)


@pytest.mark.parametrize(
    "odd", ["\u00b2", "\u0661\u0662", "-", "1e5", " 1", "99999999999999999999"]
)
def test_ids_that_look_numeric_but_are_not_are_unknown_items(client, odd):
    # found by the schema fuzzer: "²" passes str.isdigit() but not int()
    assert client.post(EVENTS.format("odd"), json={"item_id": odd}).status_code == 200
    assert client.get("/v1/sessions/odd/recommendations").status_code == 200
    response = client.get("/v1/sessions/odd/recommendations", params={"exclude_item": odd})
    assert response.status_code == 200
    stateless = client.post("/v1/recommendations", json={"items": [odd], "exclude_items": [odd]})
    assert stateless.status_code == 200


def test_stored_events_are_capped(make_config):
    from fastapi.testclient import TestClient

    from sessionrec.serve.app import create_app

    with TestClient(create_app(make_config(max_events=3))) as client:
        for item in ["1", "2", "3", "4", "5"]:
            answer = client.post(EVENTS.format("cap"), json={"item_id": item}).json()
        assert answer["event_count"] == 3


# --------------------------------------------------------------- limits
LONG = "a" * 129
BAD_REQUESTS = [
    ("post", EVENTS.format("s") + "?k=0", {"item_id": "1"}, 422),
    ("post", EVENTS.format("s") + "?k=501", {"item_id": "1"}, 422),
    ("post", EVENTS.format("s") + "?k=abc", {"item_id": "1"}, 422),
    ("post", EVENTS.format("s"), {}, 422),
    ("post", EVENTS.format("s"), {"item_id": True}, 422),
    ("post", EVENTS.format("s"), {"item_id": 1.5}, 422),
    ("post", EVENTS.format("s"), {"item_id": None}, 422),
    ("post", EVENTS.format("s"), {"item_id": ""}, 422),
    ("post", EVENTS.format("s"), {"item_id": LONG}, 422),
    ("post", EVENTS.format("s"), {"item_id": "a\nb"}, 422),
    ("post", EVENTS.format("s"), {"item_id": 2**64}, 422),
    ("post", EVENTS.format("s"), {"item_id": "1", "timestamp": -1}, 422),
    ("post", EVENTS.format("s"), {"item_id": "1", "timestamp": 1e12}, 422),
    ("post", EVENTS.format("s"), {"item_id": "1", "event_type": "x" * 33}, 422),
    ("post", EVENTS.format("s"), ["1"], 422),
    ("post", EVENTS.format(LONG), {"item_id": "1"}, 422),
    ("post", EVENTS.format("a b"), {"item_id": "1"}, 422),
    ("post", EVENTS.format("s") + "?variant=nope", {"item_id": "1"}, 422),
    ("post", EVENTS.format("s") + "?category=shoes", {"item_id": "1"}, 422),  # no catalog
    ("get", "/v1/sessions/s/recommendations?k=-1", None, 422),
    ("post", "/v1/recommendations", {"items": ["1"] * 201}, 422),
    ("post", "/v1/recommendations", {"items": ["1"], "k": 501}, 422),
    ("post", "/v1/recommendations", {"items": "1"}, 422),
    ("post", "/v1/recommendations", {"items": ["1"], "exclude_items": ["2"] * 501}, 422),
    ("post", "/v1/recommendations", {"items": ["1"], "timestamps": [1.0, 2.0]}, 422),
    ("post", "/v1/feedback", {"recommendation_id": "x/y", "item_id": "1"}, 422),
    ("post", "/v1/feedback", {"recommendation_id": "0" * 32, "item_id": "1"}, 404),
    ("get", "/v1/nothing-here", None, 404),
    ("delete", EVENTS.format("s"), None, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
def test_every_violation_is_a_json_4xx(client, method, path, body, status):
    kwargs = {} if body is None else {"json": body}
    response = client.request(method.upper(), path, **kwargs)
    assert response.status_code == status, response.text
    payload = response.json()
    assert isinstance(payload["error"], str) and payload["message"]


def test_invalid_json_and_nan_are_422(client):
    headers = {"content-type": "application/json"}
    for raw in (b"{bad", b'{"item_id": "1", "timestamp": NaN}', b"\xff\xfe"):
        response = client.post(EVENTS.format("s"), content=raw, headers=headers)
        assert response.status_code == 422, raw
        assert response.json()["error"] == "invalid_request"


def test_validation_message_names_the_field(client):
    payload = client.post(EVENTS.format("s") + "?k=501", json={"item_id": "1"}).json()
    assert "k" in payload["message"] and "500" in payload["message"]
    assert payload["details"][0]["loc"] == ["query", "k"]


def test_oversized_bodies_are_413_with_or_without_content_length(client):
    big = json.dumps({"items": ["1"] * 20_000}).encode()
    assert len(big) > 64 * 1024
    response = client.post("/v1/recommendations", content=big)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"

    def chunks():
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    chunked = client.post("/v1/recommendations", content=chunks())
    assert chunked.status_code == 413


# ------------------------------------------------------------ ops and metrics
def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_fallbacks_errors_and_latency(client):
    endpoint = "/v1/sessions/{session_id}/events"
    client.post(EVENTS.format("m") + "?k=3", json={"item_id": "1"})  # 3 model items
    client.post(EVENTS.format("m") + "?k=3", json={"item_id": "9"})  # 10, then fallbacks
    client.post(EVENTS.format("m") + "?k=0", json={"item_id": "1"})
    samples = metric_samples(client.get("/metrics").text)
    requests = "sessionrec_requests_total"
    assert sample(samples, requests, endpoint=endpoint, variant="default", status="200") == 2
    assert sample(samples, requests, endpoint=endpoint, variant="none", status="422") == 1
    assert sample(samples, "sessionrec_errors_total", endpoint=endpoint, kind="validation") == 1
    assert sample(samples, "sessionrec_recommendations_total", variant="default") == 2
    assert sample(samples, "sessionrec_fallbacks_total", variant="default") == 1
    count = "sessionrec_request_duration_seconds_count"
    assert sample(samples, count, endpoint=endpoint, variant="default") == 2
    info = sample(
        samples,
        "sessionrec_model_info",
        variant="default",
        model="markov",
        **{"version": client.get("/v1/info").json()["variants"][0]["model_version"]},
    )
    assert info == 1


def test_health_ready_info_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["store"] == {"kind": "memory", "available": True}
    info = client.get("/v1/info").json()
    assert info["limits"]["max_k"] == 500 and info["rules_active"] is False
    assert info["variants"][0]["name"] == "default" and info["variants"][0]["model"] == "markov"
    schema = client.get("/openapi.json").json()
    for path in (
        "/v1/sessions/{session_id}/events",
        "/v1/sessions/{session_id}/recommendations",
        "/v1/recommendations",
        "/v1/feedback",
    ):
        assert path in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_fastapi_telemetry_is_on_only_where_opentelemetry_is_configured(make_config):
    from sessionrec.serve.app import create_app, telemetry_settings

    assert telemetry_settings({}) == {
        "telemetry": {"tracing": False, "metrics": False, "logs": False}
    }
    assert telemetry_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}) == {}
    assert telemetry_settings({"FASTAPI_OTEL_AUTO_CONFIGURE": "true"}) == {}
    app = create_app(make_config())
    if hasattr(app, "_native_telemetry"):  # FastAPI with native telemetry: off here
        assert app._native_telemetry.enabled() is False
