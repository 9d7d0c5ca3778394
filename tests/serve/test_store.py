"""Session stores: the memory LRU with idle timeout and caps, and a real Redis server.

Redis tests start their own ``redis-server`` (see ``conftest.redis_server``).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio

from sessionrec.serve.store import (
    ClickBuffer,
    Event,
    MemoryStore,
    RedisStore,
    StoreUnavailable,
)
from sessionrec.serve.store.buffer import Buffered
from sessionrec.serve.store.redis_store import redacted

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


# ------------------------------------------------------------- erasure
def test_memory_store_erases_a_session_and_its_records():
    store = MemoryStore()
    run(store.append("s", Event("1")))
    run(store.append("other", Event("2")))
    run(store.record_recommendation("r1", "a", ["5"], "s"))
    run(store.record_recommendation("r2", "a", ["6"], "other"))
    run(store.record_recommendation("r3", "a", ["7"]))  # stateless, no session
    assert run(store.delete_session("s")) == 2  # the session and its one record
    assert run(store.get("s")) == []
    assert run(store.feedback("r1", "5")).status == "unknown_recommendation"
    # nothing else is touched, and erasing again is a no-op
    assert run(store.get("other")) == [Event("2")]
    assert run(store.feedback("r2", "6")).status == "counted"
    assert run(store.feedback("r3", "7")).status == "counted"
    assert run(store.delete_session("s")) == 0
    assert run(store.delete_session("never-seen")) == 0


def test_memory_store_forgets_the_session_index_with_expired_records():
    clock = FakeClock()
    store = MemoryStore(recommendation_ttl=60, max_recommendations=2, clock=clock)
    run(store.record_recommendation("r1", "a", ["1"], "s1"))
    run(store.record_recommendation("r2", "a", ["1"], "s2"))
    run(store.record_recommendation("r3", "a", ["1"], "s2"))  # the cap drops r1
    assert "s1" not in store._issued_to
    clock.now += 61
    run(store.feedback("r3", "1"))  # expires r2 and r3
    assert store._issued_to == {}


def test_event_nonce_round_trips_and_is_not_part_of_equality():
    event = Event("a", "view", 1.5, "0123abcd")
    decoded = Event.decode(event.encode())
    assert decoded == Event("a", "view", 1.5) and decoded.nonce == "0123abcd"
    assert Event.decode("\x1fview\x1fa").nonce == ""  # written without a nonce
    # a replica of the previous version reads "time SEP type SEP item" and uses the time and
    # the item: both stay where it looks for them
    ts, _, item = event.encode().split("\x1f", 2)
    assert (float(ts), item) == (1.5, "a")


def test_redacted_hides_the_password_only():
    assert redacted("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redacted("redis://user:pw@h/1") == "redis://user:***@h/1"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def keys_of(url: str) -> set[str]:
    async with redis.asyncio.Redis.from_url(url, decode_responses=True) as client:
        return {key async for key in client.scan_iter("*")}


def test_redis_store_erasure_removes_every_key_of_the_session(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="e:")
        try:
            await store.append("visitor-1", Event("1"))
            await store.append("visitor-1", Event("2"))
            await store.append("visitor-2", Event("3"))
            await store.record_recommendation("r1", "a", ["5", "6"], "visitor-1")
            await store.record_recommendation("r2", "a", ["7"], "visitor-1")
            await store.record_recommendation("r3", "a", ["8"], "visitor-2")
            await store.flush()
            assert (await store.feedback("r1", "5")).status == "counted"
            before = await keys_of(redis_server.url)
            assert {"e:s:visitor-1", "e:sr:visitor-1", "e:r:r1", "e:r:r2"} <= before
            assert await store.delete_session("visitor-1") == 3  # events, two records
            after = await keys_of(redis_server.url)
            assert not [key for key in after if "visitor-1" in key]
            assert not {"e:r:r1", "e:r:r2"} & after
            # the rest is untouched: the other session, its record, the counters
            assert {"e:s:visitor-2", "e:sr:visitor-2", "e:r:r3", "e:counters"} <= after
            assert await store.get("visitor-2") == [Event("3")]
            assert (await store.feedback("r1", "6")).status == "unknown_recommendation"
            counts = await store.counts()
            assert (counts["a"].impressions, counts["a"].clicks) == (3, 1)
            # idempotent; a new click after the erasure starts a new session
            assert await store.delete_session("visitor-1") == 0
            assert await store.append("visitor-1", Event("9")) == [Event("9")]
        finally:
            await store.close()

    run(scenario())


def test_redis_store_erasure_drops_queued_records_of_the_session(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="q:", flush_interval=60)
        try:
            await store.record_recommendation("r1", "a", ["5"], "visitor")
            await store.record_recommendation("r2", "a", ["5"], "other")
            assert await store.delete_session("visitor") == 1  # the queued record
            await store.flush()
            assert (await store.feedback("r1", "5")).status == "unknown_recommendation"
            assert (await store.feedback("r2", "5")).status == "counted"
        finally:
            await store.close()

    run(scenario())


# -------------------------------------------------------- outage buffer
class Seen:
    """A BufferObserver that records what it is told."""

    def __init__(self) -> None:
        self.size = 0
        self.dropped: dict[str, int] = {}
        self.replayed = 0

    def buffer_size(self, clicks: int) -> None:
        self.size = clicks

    def buffer_dropped(self, clicks: int, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + clicks

    def buffer_replayed(self, clicks: int) -> None:
        self.replayed += clicks


def test_click_buffer_is_bounded_ordered_and_counts_what_it_drops():
    seen = Seen()
    buffer = ClickBuffer(3, seen)
    clicks = [Buffered(f"c{i}", 1000 + i) for i in range(5)]
    assert buffer.add("a", clicks[0]) and buffer.add("b", clicks[1]) and buffer.add("a", clicks[2])
    assert not buffer.add("a", clicks[3])  # full
    assert (len(buffer), buffer.dropped, seen.dropped, seen.size) == (3, 1, {"full": 1}, 3)
    assert buffer.sessions() == ["a", "b"] and buffer.peek("a") == [clicks[0], clicks[2]]
    # a confirmed prefix leaves; a second confirmation of the same clicks changes nothing
    buffer.confirm("a", [clicks[0]])
    buffer.confirm("a", [clicks[0]])
    assert buffer.peek("a") == [clicks[2]] and (seen.replayed, seen.size) == (1, 2)
    buffer.expire("b", 1002)  # b's click arrived at 1001: its session has ended
    assert not buffer.holds("b") and seen.dropped == {"full": 1, "expired": 1}
    assert buffer.discard("a") == 1 and len(buffer) == 0 and seen.size == 0
    assert not ClickBuffer(0).add("a", clicks[0])  # capacity 0 keeps nothing


def test_redis_store_writes_buffered_clicks_back_in_order_after_a_restart(redis_server):
    async def scenario():
        seen = Seen()
        store = RedisStore(
            redis_server.url, prefix="o:", timeout=0.5, retry_after=0.05, observer=seen
        )
        try:
            await store.append("s", Event("1"))
            redis_server.stop()
            for item in "234":
                with pytest.raises(StoreUnavailable):
                    await store.append("s", Event(item))
            with pytest.raises(StoreUnavailable):
                await store.append("t", Event("x"))
            assert len(store.buffer) == 4 and seen.size == 4
            redis_server.start()  # the same port, empty (no persistence)

            async def written() -> bool:
                return len(store.buffer) == 0

            await wait_until_async(written, 20, "the buffer to be written back")
            assert [e.item_id for e in await store.get("s")] == ["2", "3", "4"]
            assert [e.item_id for e in await store.get("t")] == ["x"]
            assert seen.replayed == 4 and seen.dropped == {}
        finally:
            await store.close()

    run(scenario())


def test_redis_store_new_clicks_queue_behind_buffered_ones(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="n:", timeout=0.5, retry_after=60)
        try:
            redis_server.stop()
            with pytest.raises(StoreUnavailable):
                await store.append("s", Event("1"))
            redis_server.start()
            store._down_until = 0.0  # the breaker's window is over (not waited for)
            # Redis answers again before the background task wrote "1": "2" goes after it
            events = await store.append("s", Event("2"))
            assert [e.item_id for e in events] == ["1", "2"] and len(store.buffer) == 0
        finally:
            await store.close()

    run(scenario())


def test_redis_store_never_writes_a_click_twice(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="d:")
        try:
            stored = await store.append("s", Event("1"))
            # The write reached Redis but its answer was lost: the click was buffered too.
            now = int(time.time() * 1000)
            store.buffer.add("s", Buffered(stored[0].encode(), now))
            store.buffer.add("s", Buffered(Event("2", nonce="n2").encode(), now))
            await store.replay()
            await store.replay()
            assert [e.item_id for e in await store.get("s")] == ["1", "2"]
            # two identical clicks (same item, no time) are still two clicks
            await store.append("s", Event("2"))
            assert [e.item_id for e in await store.get("s")] == ["1", "2", "2"]
        finally:
            await store.close()

    run(scenario())


def test_clicks_buffered_before_an_erasure_are_not_written_back(redis_server):
    async def scenario():
        worker = RedisStore(redis_server.url, prefix="x:")
        other = RedisStore(redis_server.url, prefix="x:")
        try:
            now = int(time.time() * 1000)
            # a click another worker buffered a second before the session was erased ...
            worker.buffer.add("s", Buffered(Event("old", nonce="a").encode(), now - 1000))
            await other.delete_session("s")
            # ... and one it received after the erasure (the visitor went on)
            worker.buffer.add("s", Buffered(Event("new", nonce="b").encode(), now + 1000))
            await worker.replay()
            assert [e.item_id for e in await worker.get("s")] == ["new"]
        finally:
            await worker.close()
            await other.close()

    run(scenario())


def test_a_click_that_finds_the_buffer_full_is_written_with_the_waiting_ones(redis_server):
    async def scenario():
        seen = Seen()
        store = RedisStore(
            redis_server.url, prefix="f:", retry_after=60, buffer_capacity=1, observer=seen
        )
        try:
            redis_server.stop()
            with pytest.raises(StoreUnavailable):
                await store.append("s", Event("1"))
            with pytest.raises(StoreUnavailable):
                await store.append("s", Event("2"))  # no room: lost, and counted
            assert seen.dropped == {"full": 1}
            redis_server.start()
            store._down_until = 0.0  # the breaker's window is over (not waited for)
            events = await store.append("s", Event("3"))  # still no room, but Redis answers
            assert [e.item_id for e in events] == ["1", "3"]
            assert seen.dropped == {"full": 1} and len(store.buffer) == 0
        finally:
            await store.close()

    run(scenario())


# ----------------------------------------------------------------- batching
def test_concurrent_script_calls_share_one_pipeline_and_each_gets_its_own_answer(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="tb:")
        try:
            answers = await asyncio.gather(
                *(store.append(f"s{i}", Event(str(i))) for i in range(40))
            )
            # 40 calls issued in one loop turn: the first goes out at once (nothing was in
            # flight), the 39 issued behind it in one pipeline, not 39 round trips
            batcher = store._batcher
            assert (batcher.direct, batcher.batches, batcher.commands) == (1, 1, 39)
            # each caller gets its own session back
            assert [[e.item_id for e in events] for events in answers] == [
                [str(i)] for i in range(40)
            ]
            # one failing command fails its own caller only
            await store._client.set("tb:s:bad", "not a list")
            good, bad = await asyncio.gather(
                store.append("s0", Event("x")),
                store.append("bad", Event("y")),
                return_exceptions=True,
            )
            assert [e.item_id for e in good][-1] == "x"
            assert isinstance(bad, Exception) and "WRONGTYPE" in str(bad)
        finally:
            await store.close()

    run(scenario())


def test_scripts_are_loaded_again_when_redis_forgot_them(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, prefix="tc:")
        try:
            await store.append("s", Event("1"))
            await store._client.script_flush()  # what a restart of redis-server does
            events = await store.append("s", Event("2"))
            assert [e.item_id for e in events] == ["1", "2"]
            # many callers find the scripts gone at once: all are answered
            await store._client.script_flush()
            answers = await asyncio.gather(*(store.append(f"m{i}", Event("x")) for i in range(20)))
            assert all([e.item_id for e in events] == ["x"] for events in answers)
            await store.record_recommendation("r", "a", ["1", "2"], session_id="s")
            await store.flush()
            assert (await store.feedback("r", "2")).status == "counted"
            counts = await store.counts()
            assert (counts["a"].impressions, counts["a"].clicks) == (1, 1)
            assert await store._client.smembers("tc:sr:s") == {b"r"}
        finally:
            await store.close()

    run(scenario())
