"""Privacy and governance of the service: erasure, consent, retention, logs.

- ``DELETE /v1/sessions/{id}`` erases a session's events and the recommendation records
  answered to it, in the memory store and in a real ``redis-server`` (every key that names
  the session is gone); 204 and idempotent; 503 while Redis is down.
- A click with ``"consent": false`` is used for its answer and leaves no trace: no event,
  no recommendation record (so no feedback can be counted on it), no Redis key.
- ``/v1/info`` shows how long each store keeps what it keeps.
- Log lines carry no session or item id (unless debug logging is on).

The shop and its Markov model are the fixtures of ``conftest``: after item 1 the model
recommends 2, 3, 4, 5 (transition counts 3, 2, 1, 1).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from sessionrec._errors import ConfigError
from sessionrec.serve.app import create_app
from sessionrec.serve.cli import add_parsers, config_from_args
from sessionrec.serve.config import ServeConfig
from sessionrec.serve.routes import sessions

from .conftest import ids, wait_until

SESSION = "visitor-7f3a"


def click(client: TestClient, item: str, session: str = SESSION, **extra: Any) -> dict[str, Any]:
    response = client.post(f"/v1/sessions/{session}/events", json={"item_id": item, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def feedback(client: TestClient, answer: dict[str, Any]) -> int:
    body = {
        "recommendation_id": answer["recommendation_id"],
        "item_id": answer["items"][0]["item_id"],
    }
    return client.post("/v1/feedback", json=body).status_code


def event_count(client: TestClient, session: str = SESSION) -> int:
    response = client.get(f"/v1/sessions/{session}/recommendations")
    assert response.status_code == 200, response.text
    return int(response.json()["event_count"])


# ------------------------------------------------------------------ memory
def test_erasure_removes_the_session_and_its_recommendation_records(client):
    first = click(client, "1")
    second = click(client, "5")
    click(client, "1", session="someone-else")
    stateless = client.post("/v1/recommendations", json={"items": ["1"], "session_id": SESSION})
    kept = click(client, "9", session="someone-else")
    assert event_count(client) == 2

    response = client.delete(f"/v1/sessions/{SESSION}")
    assert response.status_code == 204 and response.content == b""
    assert event_count(client) == 0
    for answer in (first, second, stateless.json()):  # its answers can get no feedback
        assert feedback(client, answer) == 404
    # another session keeps its clicks and its answers
    assert event_count(client, "someone-else") == 2
    assert feedback(client, kept) == 200
    # idempotent, and a session never seen is erased as well (nothing to do)
    assert client.delete(f"/v1/sessions/{SESSION}").status_code == 204
    assert client.delete("/v1/sessions/never-seen").status_code == 204
    assert "sessionrec_sessions_erased_total 3.0" in client.get("/metrics").text


def test_a_click_without_consent_is_used_for_its_answer_only(client):
    click(client, "5")
    answer = click(client, "1", consent=False)
    # the answer used the stored click and this one: after 1 (5 was seen) come 2, 3, 4
    assert answer["event_count"] == 2 and ids(answer)[:3] == ["2", "3", "4"]
    assert event_count(client) == 1  # not stored
    assert feedback(client, answer) == 404  # not recorded: nothing to learn from
    ack = client.post(
        f"/v1/sessions/{SESSION}/events?recommend=false", json={"item_id": "9", "consent": False}
    )
    assert ack.json() == {"session_id": SESSION, "event_count": 2, "degraded": False}
    assert event_count(client) == 1
    # a session that only ever clicked without consent does not exist
    click(client, "1", session="anonymous", consent=False)
    assert event_count(client, "anonymous") == 0


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"url": "/v1/sessions/s?k=5"}, 422),  # the erasure takes no query parameter
        ({"url": "/v1/sessions/s", "content": b'{"all": true}'}, 422),  # nor a body
        ({"url": "/v1/sessions/s", "content": b"x" * 10_000_000}, 422),  # refused unread
        ({"url": "/v1/sessions/" + "s" * 129}, 422),  # longer than --max-id-length
        ({"url": "/v1/sessions/a%20b"}, 422),  # not printable ASCII without space
    ],
)
def test_invalid_erasure_requests_are_4xx(client, request_args, status):
    response = client.request("DELETE", **request_args)
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        {"item_id": "1", "consent": "false"},  # a string is not a consent
        {"item_id": "1", "consent": 0},
        {"item_id": "1", "consent": None},
        {"item_id": "1", "consnet": False},  # a misspelt flag is not ignored
    ],
)
def test_invalid_consent_is_422_and_nothing_is_stored(client, body):
    response = client.post(f"/v1/sessions/{SESSION}/events", json=body)
    assert response.status_code == 422, response.text
    assert event_count(client) == 0


def test_oversized_event_with_consent_flag_is_413(client):
    body = {"item_id": "1", "consent": False, "event_type": "view" + " " * 70_000}
    response = client.post(f"/v1/sessions/{SESSION}/events", json=body)
    assert response.status_code == 413


def test_info_shows_the_retention_of_the_store(make_config):
    config = make_config(session_ttl=120.0, recommendation_ttl=600.0, max_events=7)
    with TestClient(create_app(config)) as client:
        store = client.get("/v1/info").json()["store"]
    assert store["kind"] == "memory"
    retention = store["retention"]
    assert (retention["session_ttl"], retention["recommendation_ttl"]) == (120.0, 600.0)
    assert retention["max_events"] == 7


def test_logs_carry_no_session_or_item_id_unless_debugging(
    make_config: Callable[..., ServeConfig], caplog: pytest.LogCaptureFixture, monkeypatch
):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sessions, "answer_session", broken)
    with TestClient(create_app(make_config()), raise_server_exceptions=False) as client:
        with caplog.at_level(logging.INFO, logger="sessionrec"):
            response = client.post(f"/v1/sessions/{SESSION}/events", json={"item_id": "4242"})
            assert response.status_code == 500
            client.delete(f"/v1/sessions/{SESSION}")
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "internal error on POST /v1/sessions/{session_id}/events" in text
        assert SESSION not in text and "4242" not in text
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="sessionrec"):
            client.post(f"/v1/sessions/{SESSION}/events", json={"item_id": "4242"})
        assert f"/v1/sessions/{SESSION}/events" in caplog.text


# ------------------------------------------------------------------- redis
def test_info_shows_the_retention_of_the_redis_store(make_config, redis_server):
    config = make_config(
        store=redis_server.url,
        session_ttl=90.0,
        recommendation_ttl=300.0,
        outage_buffer=25,
        kpi_retention=3600.0,
    )
    with TestClient(create_app(config)) as client:
        store = client.get("/v1/info").json()["store"]
    assert store["kind"] == "redis"
    assert store["retention"] == {
        "session_ttl": 90.0,
        "recommendation_ttl": 300.0,
        "max_events": 200,
        "outage_buffer": 25,
        "buffered_clicks": 0,
        "kpi_retention": 3600.0,
        "live_feed": 0,
    }


@pytest.fixture
def redis_client(
    make_config: Callable[..., ServeConfig], redis_server: Any
) -> Iterator[tuple[TestClient, redis.Redis]]:
    config = make_config(store=redis_server.url, redis_timeout=5.0, redis_prefix="p:")
    with (
        TestClient(create_app(config)) as client,
        redis.Redis.from_url(redis_server.url, decode_responses=True) as direct,
    ):
        yield client, direct


def flushed(client: TestClient, direct: redis.Redis, impressions: int) -> None:
    """Wait until the batched recommendation records are in Redis."""

    def done() -> bool:
        counters = direct.hgetall("p:counters")
        return sum(int(v) for k, v in counters.items() if k.endswith(":impressions")) == impressions

    wait_until(done, 10, f"{impressions} impressions in redis")


def test_erasure_removes_every_redis_key_of_the_session(redis_client):
    client, direct = redis_client
    answers = [click(client, item) for item in ("1", "5")]
    other = click(client, "1", session="someone-else")
    client.post("/v1/recommendations", json={"items": ["1"], "session_id": SESSION})
    flushed(client, direct, 4)
    records = {f"p:r:{a['recommendation_id']}" for a in answers}
    assert feedback(client, answers[0]) == 200
    keys = set(direct.keys("*"))
    assert {f"p:s:{SESSION}", f"p:sr:{SESSION}"} | records <= keys
    assert len(direct.smembers(f"p:sr:{SESSION}")) == 3  # two events' answers, one stateless

    assert client.delete(f"/v1/sessions/{SESSION}").status_code == 204
    left = set(direct.keys("*"))
    assert not [key for key in left if SESSION in key]
    assert not records & left
    assert direct.keys("p:r:*") == [f"p:r:{other['recommendation_id']}"]
    assert direct.lrange("p:s:someone-else", 0, -1)  # another session is kept
    assert event_count(client) == 0 and feedback(client, answers[1]) == 404
    assert client.delete(f"/v1/sessions/{SESSION}").status_code == 204


def test_a_click_without_consent_leaves_no_redis_key(redis_client):
    client, direct = redis_client
    answer = click(client, "1", consent=False)
    assert answer["event_count"] == 1 and ids(answer)[:2] == ["2", "3"]
    click(client, "5", session="someone-else")  # a consented click: its record is written
    flushed(client, direct, 1)
    assert not [key for key in direct.keys("*") if SESSION in key]
    assert len(direct.keys("p:r:*")) == 1
    assert feedback(client, answer) == 404


def test_erasure_while_redis_is_down_is_503_and_erases_on_retry(redis_client, redis_server):
    client, _ = redis_client
    click(client, "1")
    redis_server.stop()
    response = client.delete(f"/v1/sessions/{SESSION}")
    assert response.status_code == 503 and response.json()["error"] == "store_unavailable"
    assert "Retry-After" in response.headers
    redis_server.start()  # empty: no persistence

    def erased() -> bool:
        return client.delete(f"/v1/sessions/{SESSION}").status_code == 204

    wait_until(erased, 10, "an erasure once redis is back")


def test_retention_and_outage_buffer_flags_reach_the_config(shop, monkeypatch):
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    argv = ["serve", str(shop.markov_dir), "--recommendation-ttl", "120", "--outage-buffer", "0"]
    config = config_from_args(parser.parse_args(argv))
    assert (config.recommendation_ttl, config.outage_buffer) == (120.0, 0)
    monkeypatch.setenv("SESSIONREC_OUTAGE_BUFFER", "77")
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    assert config_from_args(parser.parse_args(argv[:2])).outage_buffer == 77
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="--outage-buffer"):
            config.replace(outage_buffer=bad)
    with pytest.raises(ConfigError, match="--recommendation-ttl"):
        config.replace(recommendation_ttl=0)
