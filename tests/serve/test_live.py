"""Real Redis and real service processes: shared sessions, degraded mode, recovery.

- Redis killed mid-run: every endpoint still answers 2xx (degraded), then recovers.
- Two services sharing one Redis (one of them with two uvicorn workers) keep one session
  consistent, count feedback together, follow each other's model reloads, and the
  two-worker service aggregates its Prometheus metrics across its workers.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sessionrec.serve.app import create_app

from .conftest import ids, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_redis_down_mid_run_gives_degraded_answers_and_recovers(make_config, redis_server):
    config = make_config(store=redis_server.url, redis_retry=0.2, redis_timeout=0.2)
    statuses = []

    def call(client, method, path, **kwargs):
        response = client.request(method, path, **kwargs)
        statuses.append(response.status_code)
        return response

    with TestClient(create_app(config)) as client:
        for item in ("5", "1"):
            healthy = call(client, "POST", "/v1/sessions/d/events?k=3", json={"item_id": item})
        assert healthy.json()["event_count"] == 2 and healthy.json()["degraded"] is False
        rec_id = healthy.json()["recommendation_id"]

        redis_server.stop()
        for _ in range(3):
            event = call(client, "POST", "/v1/sessions/d/events?k=3", json={"item_id": "1"})
            payload = event.json()
            # answered from the request itself: the click on 1, then popular items
            assert payload["degraded"] is True and payload["event_count"] == 1
            assert ids(payload) == ["2", "3", "4"]
        got = call(client, "GET", "/v1/sessions/d/recommendations?k=3").json()
        assert got["degraded"] is True and got["fallback"] is True and len(got["items"]) == 3
        stateless = call(client, "POST", "/v1/recommendations", json={"items": ["1"], "k": 2})
        assert ids(stateless.json()) == ["2", "3"]
        feedback = call(
            client, "POST", "/v1/feedback", json={"recommendation_id": rec_id, "item_id": "2"}
        ).json()
        assert feedback["counted"] is False and feedback["status"] == "store_unavailable"
        ready = call(client, "GET", "/readyz").json()
        assert ready["status"] == "degraded" and ready["store"]["available"] is False
        assert "sessionrec_store_up 0.0" in client.get("/metrics").text

        redis_server.start()  # same port, empty (no persistence)

        def recovered() -> bool:
            response = call(client, "POST", "/v1/sessions/r/events", json={"item_id": "1"})
            return response.json()["degraded"] is False

        wait_until(recovered, 15, "the service to leave degraded mode")
        after = call(client, "POST", "/v1/sessions/r2/events", json={"item_id": "9"}).json()
        assert after["degraded"] is False and after["event_count"] == 1
        assert client.get("/readyz").json()["status"] == "ready"
    assert statuses and max(statuses) < 500


def test_two_processes_sharing_redis_keep_one_session(start_service, shop, redis_server):
    """Replica A runs two workers, replica B one: three processes, one Redis, one truth."""
    common = (
        str(shop.markov_dir),
        "--store",
        redis_server.url,
        "--popularity",
        str(shop.train_file),
        "--reload-interval",
        "0.2",
    )
    env = {"SESSIONREC_ADMIN_TOKEN": "tok"}
    services = [start_service(*common, "--workers", "2", env=env), start_service(*common, env=env)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda service: service.wait_ready(), services)
    clicks = ["1", "5", "9", "1", "2", "7"]
    events_to_a = 0
    with httpx.Client(timeout=10) as http:
        for i, item in enumerate(clicks):
            service = (a, b)[i % 2]
            events_to_a += service is a
            answer = http.post(
                f"{service.url}/v1/sessions/shared/events?k=4", json={"item_id": item}
            ).json()
            assert answer["event_count"] == i + 1
            # the answer is the one for the whole prefix, whichever process got which click
            expected = http.post(
                f"{service.url}/v1/recommendations", json={"items": clicks[: i + 1], "k": 4}
            ).json()
            assert ids(answer) == ids(expected)
        views = [http.get(f"{s.url}/v1/sessions/shared/recommendations?k=4").json() for s in (a, b)]
        assert ids(views[0]) == ids(views[1]) and views[0]["event_count"] == len(clicks)

        # feedback on an answer of A, sent to B, is counted once for both
        rec = views[0]
        body = {"recommendation_id": rec["recommendation_id"], "item_id": ids(rec)[0]}
        wait_until(
            lambda: http.post(f"{b.url}/v1/feedback", json=body).status_code == 200,
            5,
            "the recommendation record to reach Redis",
        )
        assert http.post(f"{a.url}/v1/feedback", json=body).json()["status"] == "duplicate"
        auth = {"Authorization": "Bearer tok"}
        # Every answer above was one impression: 6 events, 6 stateless answers, 2 views. Each
        # worker writes its records to Redis in the background, so the counts agree once the
        # last batch is written, not at once.
        shown = 2 * len(clicks) + 2

        def counts() -> list[dict]:
            return [http.get(f"{s.url}/v1/admin/feedback", headers=auth).json() for s in (a, b)]

        wait_until(
            lambda: all(c["variants"]["default"]["impressions"] == shown for c in counts()),
            5,
            "every impression to reach Redis",
        )
        both = counts()
        assert both[0] == both[1]
        assert both[0]["variants"]["default"] == {
            "impressions": shown,
            "clicks": 1,
            "ctr": 1 / shown,
        }

        # A's two workers report together: one scrape counts every request A answered
        for i in range(20):  # a new connection each time: the kernel spreads them
            response = httpx.post(f"{a.url}/v1/sessions/w{i}/events", json={"item_id": "1"})
            assert response.status_code == 200
            events_to_a += 1
        total, pids = _events_and_worker_pids(http.get(f"{a.url}/metrics").text)
        assert total == events_to_a
        assert len(pids) == 2  # both workers report the model they serve

        # an admin reload on A is published through Redis; B (and A's other worker) follow
        reload = http.post(
            f"{a.url}/v1/admin/models/default/reload",
            json={"path": str(shop.sr_dir)},
            headers=auth,
        )
        assert reload.status_code == 200 and reload.json()["published"] is True

        def b_serves_sr() -> bool:
            return http.get(f"{b.url}/v1/info").json()["variants"][0]["model"] == "sr"

        wait_until(b_serves_sr, 15, "replica B to follow the reload")


def _events_and_worker_pids(text: str) -> tuple[float, set[str]]:
    total = 0.0
    pids = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "sessionrec_requests_total"
                and sample.labels.get("endpoint") == "/v1/sessions/{session_id}/events"
            ):
                total += sample.value
            if sample.name == "sessionrec_model_info" and sample.value == 1:
                pids.add(sample.labels.get("pid"))
    return total, pids
