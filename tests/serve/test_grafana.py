"""``docs/grafana-dashboard.json``: every metric its PromQL reads is one the service exports.

A renamed metric would leave a dashboard panel silently empty. The test drives a real app
(Redis store) through every kind of series the dashboard reads (answers, a fallback,
feedback, conversions with revenue, a 422, then a Redis outage for the degraded answer and
the outage buffer) and compares the names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from sessionrec.serve.app import create_app

from .conftest import wait_until

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\bsessionrec_[a-z0-9_]+\b")


def expressions(node: Any) -> list[str]:
    """Every PromQL text of the dashboard: panel targets and template queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query") and isinstance(value, str):
                found.append(value)
            else:
                found += expressions(value)
    elif isinstance(node, list):
        for value in node:
            found += expressions(value)
    return found


def exported(metrics_text: str) -> set[str]:
    """The sample names of a Prometheus text exposition."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_every_panel_has_a_query_and_the_kpis_are_on_it():
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    used = {m for e in expressions(dashboard) for m in METRIC.findall(e)}
    for name in ("ctr", "cart_rate", "conversion_rate", "revenue_per_session"):
        assert f"sessionrec_kpi_{name}" in used
    assert "sessionrec_request_duration_seconds_bucket" in used
    assert {"sessionrec_store_up", "sessionrec_store_buffered_clicks"} <= used


def test_every_metric_of_the_dashboard_is_exported(make_config, redis_server):
    config = make_config(store=redis_server.url, outage_buffer=0, redis_timeout=2.0)
    with TestClient(create_app(config)) as client:
        answer = client.post("/v1/sessions/g/events?k=2&variant=default", json={"item_id": "1"})
        assert answer.status_code == 200
        client.post("/v1/sessions/g/events", json={"item_id": "99"})  # unknown: a fallback

        def fed_back() -> bool:
            body = {"recommendation_id": answer.json()["recommendation_id"], "item_id": "2"}
            return client.post("/v1/feedback", json=body).status_code == 200

        wait_until(fed_back, 10, "the answer's record in Redis")
        for kind, extra in (("cart", {}), ("purchase", {"price": 2.5})):
            body = {"item_id": "3", "event_type": kind, **extra}
            assert client.post("/v1/sessions/g/events", json=body).status_code == 200
        assert client.post("/v1/sessions/g/events", json={}).status_code == 422
        assert client.get("/metrics").status_code == 200  # the KPI gauges, while Redis is up
        redis_server.stop()  # an outage: a degraded answer, a click the buffer cannot keep
        degraded = client.post("/v1/sessions/g/events", json={"item_id": "1"})
        assert degraded.json()["degraded"] is True
        text = client.get("/metrics").text
    used = {m for e in expressions(json.loads(DASHBOARD.read_text())) for m in METRIC.findall(e)}
    missing = sorted(used - exported(text))
    assert not missing, f"the dashboard reads metrics the service does not export: {missing}"
