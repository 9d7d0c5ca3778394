"""Session stores: the memory LRU with idle timeout and caps, and a real Redis server.

Redis tests start their own ``redis-server`` (see ``conftest.redis_server``).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio

from sessionrec.serve.store import (
    Event,
    MemoryStore,
    RedisStore,
    StoreUnavailable,
)

from .conftest import free_port, wait_until_async


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def impressions(store, expected: int) -> bool:
    counts = await store.counts()
    return sum(c.impressions for c in counts.values()) == expected


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------ memory
def test_memory_store_appends_and_reads_back():
    store = MemoryStore()
    run(store.append("s", Event("1")))
    events = run(store.append("s", Event("2", "cart", 1.5)))
    assert events == [Event("1"), Event("2", "cart", 1.5)]
    assert run(store.get("s")) == events
    assert run(store.get("other")) == []


def test_memory_store_idle_timeout_starts_a_new_session():
    clock = FakeClock()
    store = MemoryStore(ttl=1800, clock=clock)
    run(store.append("s", Event("1")))
    clock.now += 1799
    assert len(run(store.append("s", Event("2")))) == 2  # activity renews the timeout
    clock.now += 1801
    assert run(store.get("s")) == []
    assert run(store.append("s", Event("3"))) == [Event("3")]


def test_memory_store_expired_sessions_are_purged():
    clock = FakeClock()
    store = MemoryStore(ttl=10, clock=clock)
    for i in range(100):
        run(store.append(f"s{i}", Event("1")))
    clock.now += 11
    run(store.append("fresh", Event("1")))
    assert len(store) == 1


def test_memory_store_lru_cap_and_event_cap():
    store = MemoryStore(max_sessions=2, max_events=3)
    run(store.append("a", Event("1")))
    run(store.append("b", Event("1")))
    run(store.get("a"))  # a is now the most recently used
    run(store.append("c", Event("1")))
    assert run(store.get("b")) == [] and run(store.get("a")) == [Event("1")]
    for item in "23456":
        events = run(store.append("a", Event(item)))
    assert [e.item_id for e in events] == ["4", "5", "6"]


def test_memory_store_feedback_and_counts():
    clock = FakeClock()
    store = MemoryStore(recommendation_ttl=60, clock=clock)
    run(store.record_recommendation("r1", "a", ["1", "2"]))
    run(store.record_recommendation("r2", "b", ["3"]))
    assert run(store.feedback("r1", "2")).status == "counted"
    assert run(store.feedback("r1", "2")).status == "duplicate"
    assert run(store.feedback("r1", "3")).status == "not_recommended"
    assert run(store.feedback("nope", "1")).status == "unknown_recommendation"
    counts = run(store.counts())
    assert (counts["a"].impressions, counts["a"].clicks, counts["a"].ctr) == (1, 1, 1.0)
    assert (counts["b"].impressions, counts["b"].clicks) == (1, 0)
    clock.now += 61
    assert run(store.feedback("r2", "3")).status == "unknown_recommendation"


def test_event_encoding_round_trips():
    for event in (Event("1"), Event("a b:c", "purchase", 1700000000.125), Event("x", "view", 0.0)):
        assert Event.decode(event.encode()) == event
        assert Event.decode(event.encode().encode()) == event


# ------------------------------------------------------------------- redis
def test_redis_store_sessions(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, max_events=3, ttl=0.4, prefix="t1:")
        try:
            assert await store.ping()
            await store.append("s", Event("1"))
            events = await store.append("s", Event("2", "cart", 1.25))
            assert events == [Event("1"), Event("2", "cart", 1.25)]
            assert await store.get("s") == events
            for item in "345":
                events = await store.append("s", Event(item))
            assert [e.item_id for e in events] == ["3", "4", "5"]
            # The idle timeout is Redis's own expiry (a real clock), watched from a second
            # client: reading through the store would count as activity and extend it.
            async with redis.asyncio.Redis.from_url(redis_server.url) as client:
                key = "t1:s:s"  # the key layout of RedisStore
                assert 0 < await client.pttl(key) <= 400

                async def expired() -> bool:
                    return not await client.exists(key)

                await wait_until_async(expired, 10, "the session to expire")
            assert await store.get("s") == []  # idle timeout
        finally:
            await store.close()

    run(scenario())


def test_redis_store_feedback_counts_and_control(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="t2:")
        try:
            await store.record_recommendation("r1", "a", ["1", "12", "123"])
            # records are written in batches: not visible before the flush
            assert (await store.feedback("r1", "12")).status == "unknown_recommendation"
            await store.flush()
            assert (await store.feedback("r1", "12")).status == "counted"
            assert (await store.feedback("r1", "12")).status == "duplicate"
            # "2" is a substring of "12" and "123" but was not recommended
            assert (await store.feedback("r1", "2")).status == "not_recommended"
            assert (await store.feedback("zz", "1")).status == "unknown_recommendation"
            counts = await store.counts()
            assert (counts["a"].impressions, counts["a"].clicks) == (1, 1)
            await store.set_control("model:a", "/x")
            assert await store.get_control() == {"model:a": "/x"}
        finally:
            await store.close()

    run(scenario())


def test_redis_store_flushes_records_in_the_background(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="t3:", flush_interval=0.02)
        try:
            for i in range(50):
                await store.record_recommendation(f"r{i}", "a" if i % 2 else "b", [str(i)])
            # Nothing calls flush: the background task writes the queue within its interval.
            await wait_until_async(lambda: impressions(store, 50), 10, "the background flush")
            counts = await store.counts()
            assert (counts["a"].impressions, counts["b"].impressions) == (25, 25)
            assert (await store.feedback("r7", "7")).status == "counted"
            await store.record_recommendation("last", "a", ["1"])
        finally:
            await store.close()  # flushes what is queued
        reopened = RedisStore(redis_server.url, prefix="t3:")
        try:
            assert (await reopened.feedback("last", "1")).status == "counted"
        finally:
            await reopened.close()

    run(scenario())


def test_unreachable_redis_fails_fast_then_refuses_without_waiting():
    async def scenario():
        port = free_port()  # nothing listens there
        store = RedisStore(f"redis://127.0.0.1:{port}", timeout=0.2, retry_after=5.0)
        try:
            started = time.perf_counter()
            with pytest.raises(StoreUnavailable):
                await store.append("s", Event("1"))
            assert time.perf_counter() - started < 1.0
            assert not store.available
            started = time.perf_counter()
            for _ in range(100):
                with pytest.raises(StoreUnavailable):
                    await store.get("s")
            assert time.perf_counter() - started < 0.1  # the breaker answers, not the network
            assert not await store.ping()
        finally:
            await store.close()

    run(scenario())
