"""Clicks are not lost when Redis is down: a real ``redis-server`` is killed and restarted
under load, and afterwards every acknowledged click is in the store, in order, once.

One real ``sessionrec serve`` process on a real ``redis-server`` that writes every command to
its append-only file before answering (``--appendfsync always``), so what Redis acknowledged
survives the kill (a SIGKILL, not a clean shutdown). Several visitors click concurrently,
each one click after the other; Redis is killed while they click, the service answers in
degraded mode and keeps the clicks in its outage buffer; Redis is restarted on the same port
while they go on clicking. Once the buffer is written back (``/metrics``), each visitor's
stored session must be exactly the clicks the service answered 200 to, in the order they
were sent: none lost, none written twice (a click in flight when Redis died may have been
stored although its answer was lost, and is buffered as well).

Without ``redis-server`` the test skips, unless ``SESSIONREC_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from .conftest import REQUIRE_SERVICES, RedisServer, ServiceProcess, Shop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

VISITORS = 6
MAX_EVENTS = 1000
MAX_CLICKS = 900
"""Clicks per visitor at most (below --max-events: the whole session stays stored)."""


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if REQUIRE_SERVICES:
            pytest.fail(message + " and SESSIONREC_REQUIRE_SERVICES=1")
        pytest.skip(message)
    server = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Visitor(threading.Thread):
    """Clicks items ``v{n}-{i}`` one after the other until told to stop."""

    def __init__(self, url: str, n: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.session, self.stop = url, f"visitor-{n}", stop
        self.acknowledged: list[str] = []
        self.degraded = 0
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for i in range(MAX_CLICKS):
                if self.stop.is_set():
                    return
                item = f"{self.session}-{i}"
                try:
                    response = client.post(
                        f"/v1/sessions/{self.session}/events?k=3", json={"item_id": item}
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(f"{item}: {exc!r}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{item}: {response.status_code} {response.text}")
                    continue
                self.acknowledged.append(item)
                self.degraded += bool(response.json()["degraded"])


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_every_acknowledged_click_survives_a_redis_restart(
    start_service: Callable[..., ServiceProcess], shop: Shop, durable_redis: RedisServer
) -> None:
    service = start_service(
        str(shop.markov_dir),
        "--store",
        durable_redis.url,
        "--popularity",
        str(shop.train_file),
        "--reload-interval",
        "0",
        "--redis-timeout",
        "2",
        "--redis-retry",
        "0.1",
        "--max-events",
        str(MAX_EVENTS),
    ).wait_ready()
    stop = threading.Event()
    visitors = [Visitor(service.url, n, stop) for n in range(VISITORS)]

    def clicked(at_least: int, degraded: bool = False) -> Callable[[], bool]:
        def check() -> bool:
            counts = [v.degraded if degraded else len(v.acknowledged) for v in visitors]
            return sum(counts) >= at_least or not any(v.is_alive() for v in visitors)

        return check

    for visitor in visitors:
        visitor.start()
    try:
        wait_until(clicked(5 * VISITORS), 60, "clicks before the outage")
        durable_redis.stop()  # SIGKILL while the visitors click
        wait_until(clicked(3 * VISITORS, degraded=True), 60, "clicks during the outage")
        during = sum(len(v.acknowledged) for v in visitors)
        durable_redis.start()  # the same port; it reloads its append-only file
        wait_until(clicked(during + 5 * VISITORS), 60, "clicks after the restart")
    finally:
        stop.set()
        for visitor in visitors:
            visitor.join(timeout=60)

    assert not [f for v in visitors for f in v.failures]
    # the outage did happen, and clicks went on after it (not merely until MAX_CLICKS)
    assert sum(v.degraded for v in visitors) >= 3 * VISITORS
    assert sum(len(v.acknowledged) for v in visitors) >= during + 5 * VISITORS

    def written_back() -> bool:
        return metric(service.url, "sessionrec_store_buffered_clicks") == 0

    wait_until(written_back, 60, "the outage buffer to be written back")
    assert metric(service.url, "sessionrec_store_buffer_replayed_total") >= 3 * VISITORS
    assert "sessionrec_store_buffer_dropped_total{" not in httpx.get(service.url + "/metrics").text
    with redis.Redis.from_url(durable_redis.url, decode_responses=True) as direct:
        for visitor in visitors:
            stored: list[Any] = direct.lrange(f"sessionrec:s:{visitor.session}", 0, -1)
            items = [raw.split("\x1f")[2] for raw in stored]
            assert items == visitor.acknowledged, visitor.session
