"""Pilot KPIs: canonical event types, conversions attributed to recommendations, per-variant
numbers (admin endpoint, /metrics) and per-session summaries, with both stores.

The shop is the one of ``conftest``: after item 1 the Markov model (variant ``default``)
recommends 2, 3 (``k=2``); item 9 is never recommended after 1. Time is moved by replacing
the store's clock, never by sleeping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from sessionrec._errors import ConfigError
from sessionrec.abtest.export import read_session_log, read_store_sessions
from sessionrec.cli import main
from sessionrec.serve.app import create_app
from sessionrec.serve.cli import add_parsers, config_from_args
from sessionrec.serve.config import ServeConfig, VariantSpec
from sessionrec.serve.event_types import EVENT_ALIASES
from sessionrec.serve.store import MemoryStore

from .conftest import Shop, ids, wait_until

TOKEN = "kpi-secret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config(
    make_config: Callable[..., ServeConfig], shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ServeConfig]:
    """Two variants (default: Markov, b: SR), a one-minute attribution window, admin on."""
    monkeypatch.setenv("SESSIONREC_ADMIN_TOKEN", TOKEN)

    def make(**overrides: Any) -> ServeConfig:
        variants = (
            VariantSpec("default", str(shop.markov_dir)),
            VariantSpec("b", str(shop.sr_dir)),
        )
        return make_config(**{"variants": variants, "attribution_window": 60.0, **overrides})

    return make


@pytest.fixture
def client(config: Callable[..., ServeConfig]) -> Iterator[TestClient]:
    with TestClient(create_app(config())) as test_client:
        yield test_client


def post(
    client: TestClient, session: str, item: str, event_type: str = "view", **extra: Any
) -> Any:
    """One event of variant ``default`` (unless given): a view answers (k=2), a conversion
    only acknowledges (so that it adds no impression)."""
    variant = extra.pop("variant", "default")
    query = f"?k=2&variant={variant}" if event_type == "view" else "?recommend=false"
    query += "" if event_type == "view" else f"&variant={variant}"
    body = {"item_id": item, "event_type": event_type, **extra}
    response = client.post(f"/v1/sessions/{session}/events{query}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def kpis(client: TestClient) -> dict[str, Any]:
    response = client.get("/v1/admin/kpis", headers=ADMIN)
    assert response.status_code == 200, response.text
    return dict(response.json())


def summaries(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/admin/kpis/sessions", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def stored_types(client: TestClient, session: str) -> list[str]:
    store = client.app.state.service.store  # type: ignore[attr-defined]
    return [e.event_type for e in asyncio.run(store.get(session))]


def move_clock(client: TestClient) -> list[float]:
    """Replace the memory store's clock by one the test moves: ``now[0] += seconds``."""
    now = [1000.0]
    client.app.state.service.store._clock = lambda: now[0]  # type: ignore[attr-defined]
    return now


# ------------------------------------------------------------------ event types
@pytest.mark.parametrize("name", ["click", "Click", "ADDTOCART", "carts", "buy", "orders"])
def test_aliases_are_stored_as_their_canonical_type(client, name):
    post(client, "s", "1", name)
    assert stored_types(client, "s") == [EVENT_ALIASES[name.lower()]]


def test_view_stays_the_default_event_type(client):
    client.post("/v1/sessions/s/events", json={"item_id": "1"})
    assert stored_types(client, "s") == ["view"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"item_id": "1", "event_type": "purchse"}, "event_type"),
        ({"item_id": "1", "event_type": ""}, "event_type"),
        ({"item_id": "1", "event_type": 3}, "event_type"),
        ({"item_id": "1", "event_type": "purchase", "price": -1}, "price"),
        ({"item_id": "1", "event_type": "purchase", "price": 1e10}, "price"),
        ({"item_id": "1", "event_type": "purchase", "price": "12"}, "price"),
        ({"item_id": "1", "event_type": "purchase", "price": True}, "price"),
        ({"item_id": "1", "event_type": "purchase", "quantity": 0}, "quantity"),
        ({"item_id": "1", "event_type": "purchase", "quantity": 1.5}, "quantity"),
        ({"item_id": "1", "event_type": "purchase", "revenue": 3}, "revenue"),
    ],
)
def test_bad_conversion_input_is_422_naming_the_field(client, body, field):
    response = client.post("/v1/sessions/s/events", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["loc"] == ["body", field]
    assert stored_types(client, "s") == []


def test_unknown_event_type_names_the_allowed_values(client):
    response = client.post("/v1/sessions/s/events", json={"item_id": "1", "event_type": "like"})
    message = response.json()["message"]
    assert message.startswith("body.event_type: unknown event type 'like': use one of ")
    assert "view, cart, purchase (aliases: click," in message


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_prices_are_422(client, number):
    body = '{"item_id": "1", "event_type": "purchase", "price": ' + number + "}"
    response = client.post(
        "/v1/sessions/s/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_oversized_conversion_is_413(client):
    body = {"item_id": "1", "event_type": "purchase", "price": 1.0, "pad": " " * 70_000}
    assert client.post("/v1/sessions/s/events", json=body).status_code == 413


# ------------------------------------------------------------------ attribution
def test_cart_of_a_recommended_item_is_an_attributed_conversion_of_its_variant(client):
    answer = post(client, "s1", "1", variant="b")
    assert answer["variant"] == "b"
    shown = ids(answer)[0]
    post(client, "s1", shown, "addtocart")
    numbers = kpis(client)
    b, default = numbers["variants"]["b"], numbers["variants"]["default"]
    assert (b["sessions"], b["impressions"], b["carts"], b["cart_sessions"]) == (1, 1, 1, 1)
    assert b["cart_rate"] == 1.0 and b["unattributed_carts"] == 0
    assert default["carts"] == 0 and default["sessions"] == 0
    assert numbers["unattributed"] == {"carts": 0, "purchases": 0, "revenue": 0.0}
    assert numbers["attribution_window"] == 60.0
    metrics = client.app.state.service.metrics  # type: ignore[attr-defined]
    labels = {"variant": "b", "event_type": "cart", "attribution": "attributed"}
    assert metrics.sample("sessionrec_conversions_total", labels) == 1.0
    assert summaries(client) == [
        {
            "session_id": "s1",
            "variant": "b",
            "impressions": 1,
            "clicks": 0,
            "carts": 1,
            "purchases": 0,
            "revenue": 0.0,
            "first_seen": pytest.approx(summaries(client)[0]["first_seen"]),
        }
    ]


def test_the_last_answer_that_showed_the_item_gets_the_conversion(client):
    first = post(client, "s2", "1", variant="default")
    second = post(client, "s2", "1", variant="b")
    both = [item for item in ids(first) if item in ids(second)]
    assert both, (ids(first), ids(second))
    post(client, "s2", both[0], "cart")
    variants = kpis(client)["variants"]
    assert (variants["b"]["carts"], variants["default"]["carts"]) == (1, 0)
    # the session is the first answer's (default): its cart counts in default's cart rate
    assert (variants["default"]["cart_sessions"], variants["b"]["cart_sessions"]) == (1, 0)


def test_after_the_window_a_cart_is_unattributed(client):
    now = move_clock(client)
    answer = post(client, "s3", "1")
    assert ids(answer) == ["2", "3"]
    now[0] += 59.0
    post(client, "s3", "3", "cart", variant="default")
    now[0] += 2.0  # 61 s after the answer
    client.post("/v1/sessions/s3/events?recommend=false&variant=default", json={
        "item_id": "2", "event_type": "cart"
    })  # fmt: skip
    default = kpis(client)["variants"]["default"]
    assert (default["carts"], default["unattributed_carts"]) == (1, 1)
    assert summaries(client)[0]["carts"] == 1


def test_purchases_sum_revenue_and_unrecommended_ones_are_unattributed(client):
    answer = post(client, "s4", "1")
    assert ids(answer) == ["2", "3"]
    post(client, "s4", "2", "purchase", price=10, quantity=2)
    post(client, "s4", "3", "transaction", price=5.5)
    post(client, "s4", "9", "purchase", price=100.0)  # never shown to the session
    post(client, "s4", "2", "cart", price=10)  # carts earn no revenue
    numbers = kpis(client)
    default = numbers["variants"]["default"]
    assert (default["purchases"], default["purchase_sessions"], default["carts"]) == (2, 1, 1)
    assert default["revenue"] == 25.5 and default["revenue_per_session"] == 25.5
    assert default["conversion_rate"] == 1.0
    assert (default["unattributed_purchases"], default["unattributed_revenue"]) == (1, 100.0)
    assert numbers["unattributed"] == {"carts": 0, "purchases": 1, "revenue": 100.0}
    [row] = summaries(client)
    assert (row["purchases"], row["revenue"], row["carts"]) == (2, 25.5, 1)


def test_a_conversion_without_consent_counts_only_in_the_aggregates(client):
    post(client, "s5", "1")
    ack = post(client, "s5", "2", "purchase", price=3.0, consent=False)
    assert ack["event_count"] == 2  # used for the answer ...
    assert stored_types(client, "s5") == ["view"]  # ... not stored
    default = kpis(client)["variants"]["default"]
    assert (default["purchases"], default["revenue"], default["purchase_sessions"]) == (1, 3.0, 0)
    [row] = summaries(client)
    assert (row["purchases"], row["revenue"]) == (0, 0.0)


def test_feedback_counts_in_the_session_summary_and_the_ctr(client):
    answer = post(client, "s6", "1")
    body = {"recommendation_id": answer["recommendation_id"], "item_id": "2"}
    assert client.post("/v1/feedback", json=body).status_code == 200
    default = kpis(client)["variants"]["default"]
    assert (default["clicks"], default["ctr"]) == (1, 1.0)
    assert summaries(client)[0]["clicks"] == 1


def test_erasure_removes_the_session_summary_and_keeps_the_aggregates(client):
    post(client, "s7", "1")
    post(client, "s7", "2", "cart")
    post(client, "other", "1")
    assert client.delete("/v1/sessions/s7").status_code == 204
    assert [row["session_id"] for row in summaries(client)] == ["other"]
    assert kpis(client)["variants"]["default"]["carts"] == 1


def test_the_jsonl_export_is_what_abtest_report_reads(client, tmp_path):
    for session in ("a", "b", "c"):
        post(client, session, "1")
    post(client, "b", "2", "purchase", price=4.0)
    path = tmp_path / "pilot.jsonl"
    path.write_text(client.get("/v1/admin/kpis/sessions", headers=ADMIN).text)
    log = read_session_log(path)
    assert sorted(log.session_ids) == ["a", "b", "c"]
    assert float(log.revenue.sum()) == 4.0 and int(log.purchases.sum()) == 1
    assert all(math.isfinite(t) and t > 1.6e9 for t in log.first_seen)


def test_kpi_endpoints_need_the_admin_token(client):
    assert client.get("/v1/admin/kpis").status_code == 401
    assert client.get("/v1/admin/kpis/sessions?limit=0", headers=ADMIN).status_code == 422


def test_info_shows_the_attribution_window(config):
    with TestClient(create_app(config(kpi_retention=3600.0))) as client:
        info = client.get("/v1/info").json()
    assert info["kpis"] == {"attribution_window": 60.0, "kpi_retention": 3600.0}
    assert info["store"]["retention"]["kpi_retention"] == 3600.0


# ------------------------------------------------------------------ redis
def scenario(client: TestClient) -> None:
    """A view, a feedback click, a cart and a purchase of shown items, and a purchase of an
    item never shown; another session only views."""
    answer = post(client, "r1", "1")
    assert ids(answer) == ["2", "3"]
    # Redis: the answer's record is written in a batch within 50 ms; wait for it
    wait_until(lambda: kpis(client)["variants"]["default"]["impressions"] == 1, 10, "flush")
    body = {"recommendation_id": answer["recommendation_id"], "item_id": "2"}
    assert client.post("/v1/feedback", json=body).status_code == 200
    post(client, "r1", "2", "cart")
    post(client, "r1", "3", "purchase", price=7.25, quantity=2)
    post(client, "r1", "9", "purchase", price=1.0)
    post(client, "r2", "1")
    wait_until(lambda: kpis(client)["variants"]["default"]["impressions"] == 2, 10, "flush")


def test_kpis_survive_a_restart_with_redis(config, redis_server):
    settings = config(store=redis_server.url, redis_timeout=5.0, redis_prefix="p:")
    with TestClient(create_app(settings)) as client:
        scenario(client)
        before = kpis(client)
    with TestClient(create_app(settings)) as client:  # a new process: nothing in memory
        after = kpis(client)
        metrics = client.get("/metrics").text
        rows = {row["session_id"]: row for row in summaries(client)}
    assert after == before
    default = after["variants"]["default"]
    assert (default["sessions"], default["impressions"], default["clicks"]) == (2, 2, 1)
    assert (default["carts"], default["purchases"], default["revenue"]) == (1, 1, 14.5)
    assert (default["cart_rate"], default["conversion_rate"]) == (0.5, 0.5)
    assert default["revenue_per_session"] == 7.25
    assert after["unattributed"] == {"carts": 0, "purchases": 1, "revenue": 1.0}
    assert 'sessionrec_kpi_revenue{variant="default"} 14.5' in metrics
    assert 'sessionrec_kpi_cart_rate{variant="default"} 0.5' in metrics
    assert rows["r1"] | {"first_seen": 0} == {
        "session_id": "r1",
        "variant": "default",
        "impressions": 1,
        "clicks": 1,
        "carts": 1,
        "purchases": 1,
        "revenue": 14.5,
        "first_seen": 0,
    }
    # what `sessionrec abtest report --store` reads
    log = read_store_sessions(redis_server.url, prefix="p:")
    assert sorted(log.session_ids) == ["r1", "r2"] and float(log.revenue.sum()) == 14.5


def test_redis_summary_expires_and_is_erased_with_the_session(config, redis_server):
    settings = config(store=redis_server.url, redis_timeout=5.0, redis_prefix="p:")
    with (
        TestClient(create_app(settings)) as client,
        redis.Redis.from_url(redis_server.url, decode_responses=True) as direct,
    ):
        scenario(client)
        ttl = direct.pttl("p:k:r1")
        assert 0 < ttl <= settings.kpi_retention * 1000
        assert client.delete("/v1/sessions/r1").status_code == 204
        assert not direct.exists("p:k:r1")
        assert [row["session_id"] for row in summaries(client)] == ["r2"]
        assert direct.keys("p:*r1*") == []
        assert kpis(client)["variants"]["default"]["carts"] == 1  # aggregates stay


def test_redis_attribution_window(config, redis_server):
    settings = config(store=redis_server.url, redis_timeout=5.0, redis_prefix="p:")
    with TestClient(create_app(settings)) as client:
        now = [1_800_000_000.0]
        client.app.state.service.store.clock = lambda: now[0]  # type: ignore[attr-defined]
        post(client, "w", "1")
        now[0] += 59.0
        post(client, "w", "3", "cart")
        now[0] += 2.0
        post(client, "w", "2", "cart")
        default = kpis(client)["variants"]["default"]
    assert (default["carts"], default["unattributed_carts"]) == (1, 1)


def test_attribution_flags_reach_the_config(shop, monkeypatch):
    def parse(*argv: str) -> ServeConfig:
        parser = argparse.ArgumentParser()
        add_parsers(parser.add_subparsers(dest="command"))
        return config_from_args(parser.parse_args(["serve", str(shop.markov_dir), *argv]))

    config = parse("--attribution-window", "120", "--kpi-retention", "86400")
    assert (config.attribution_window, config.kpi_retention) == (120.0, 86400.0)
    assert (parse().attribution_window, parse().kpi_retention) == (3600.0, 7 * 86400.0)
    monkeypatch.setenv("SESSIONREC_ATTRIBUTION_WINDOW", "30")
    assert parse().attribution_window == 30.0
    for name in ("attribution_window", "kpi_retention"):
        with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
            config.replace(**{name: 0})


def test_abtest_report_reads_the_pilot_from_redis(config, redis_server, capsys):
    settings = config(store=redis_server.url, redis_timeout=5.0, redis_prefix="p:")
    with TestClient(create_app(settings)) as client:
        for i in range(6):
            variant = ("default", "b")[i % 2]
            answer = post(client, f"v{i}", "1", variant=variant)
            if i < 3:
                post(client, f"v{i}", ids(answer)[0], "purchase", variant=variant, price=1.0 + i)
        wait_until(lambda: len(summaries(client)) == 6, 10, "the six summaries in Redis")
    argv = ["abtest", "report", "--store", redis_server.url, "--redis-prefix", "p:"]
    assert main([*argv, "--min-sessions", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["control"] == "default" and report["variants"] == {"default": 3, "b": 3}


def test_memory_summaries_expire_after_the_kpi_retention_and_are_bounded():
    now = [0.0]
    store = MemoryStore(kpi_retention=100.0, max_sessions=1, clock=lambda: now[0])
    assert store.max_recommendations == 4  # the bound of the summaries too

    async def scenario() -> tuple[list[str], list[str]]:
        for i in range(6):
            await store.record_recommendation(f"r{i}", "default", ["2"], f"s{i}")
        kept = [s.session_id for s in await store.session_summaries(100)]
        now[0] += 101.0
        return kept, [s.session_id for s in await store.session_summaries(100)]

    kept, later = asyncio.run(scenario())
    assert kept == ["s2", "s3", "s4", "s5"] and later == []
    assert asyncio.run(store.kpis())["default"].sessions == 6  # the counters stay


def test_a_conversion_while_redis_is_down_is_kept_and_counted_as_unknown(config, redis_server):
    settings = config(store=redis_server.url, redis_timeout=2.0, redis_prefix="p:")
    with TestClient(create_app(settings)) as client:
        post(client, "o", "1")
        redis_server.stop()
        ack = post(client, "o", "2", "purchase", price=5.0)
        assert ack["degraded"] is True
        metrics = client.app.state.service.metrics  # type: ignore[attr-defined]
        labels = {"variant": "default", "event_type": "purchase", "attribution": "unknown"}
        assert metrics.sample("sessionrec_conversions_total", labels) == 1.0
        labels = {"variant": "default", "attribution": "unknown"}
        assert metrics.sample("sessionrec_revenue_total", labels) == 5.0
        # the click waits in the outage buffer like any other
        assert client.get("/v1/info").json()["store"]["retention"]["buffered_clicks"] == 1
        assert client.get("/v1/admin/kpis", headers=ADMIN).status_code == 503
