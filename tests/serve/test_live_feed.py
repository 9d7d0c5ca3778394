"""The live-learning feed of the session stores: finished sessions handed over once each,
in order, without the sessions a visitor did not consent to, readable from any position.

Every behaviour test runs against the memory store and a real Redis server (see
``conftest.redis_server``); the Redis-only tests at the end check what only Redis can get
wrong: two replicas sweeping at once, the cost of a click without a feed, erasure and TTLs
of its keys, and what the feed keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio

from sessionrec._errors import ConfigError
from sessionrec.serve.store import Event, MemoryStore, RedisStore, StoreUnavailable

from .conftest import free_port, wait_until_async


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def run() -> Iterator[Callable[[Any], Any]]:
    """Run coroutines on one event loop for the whole test (a Redis client keeps its
    connections on the loop that opened them)."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def open_store(request: pytest.FixtureRequest, clock: FakeClock, run: Any) -> Iterator[Any]:
    """Opens a store of the test's kind (``live_feed``: the feed's capacity, 0 for none)."""
    opened: list[Any] = []

    def open_one(live_feed: int = 5, **options: Any) -> Any:
        if request.param == "memory":
            store: Any = MemoryStore(ttl=600, clock=clock, live_feed=live_feed, **options)
        else:
            url = request.getfixturevalue("redis_server").url
            store = RedisStore(url, ttl=600, clock=clock, live_feed=live_feed, **options)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        run(store.close())


@pytest.fixture
def store(open_store: Any) -> Any:
    return open_store()


def items(entry: Any) -> list[str]:
    return [event.item_id for event in entry.events]


def test_idle_sessions_are_handed_over_once_in_order_of_idleness(store, clock, run):
    run(store.append("a", Event("1", "view", 1.0)))
    clock.now += 10
    run(store.append("b", Event("2")))
    run(store.append("a", Event("3", "cart", 2.0)))  # a is now the more recent
    assert run(store.finish_idle(idle=5, limit=10)) == 0
    clock.now += 6
    assert run(store.finish_idle(idle=5, limit=1)) == 1  # the longest idle first: b
    assert run(store.finish_idle(idle=5, limit=10)) == 1
    assert run(store.finish_idle(idle=5, limit=10)) == 0  # each once
    feed = run(store.read_feed(0, 10))
    assert [entry.sequence for entry in feed] == [1, 2]
    assert [items(entry) for entry in feed] == [["2"], ["1", "3"]]
    assert feed[1].events == (Event("1", "view", 1.0), Event("3", "cart", 2.0))
    assert run(store.feed_head()) == 2
    assert [items(e) for e in run(store.read_feed(1, 10))] == [["1", "3"]]
    assert run(store.read_feed(2, 10)) == []


def test_a_visitor_who_comes_back_starts_a_new_part(store, clock, run):
    run(store.append("a", Event("1")))
    assert run(store.finish("a")) is True
    assert run(store.finish("a")) is False  # nothing new to hand over
    run(store.append("a", Event("2")))
    clock.now += 100
    assert run(store.finish_idle(idle=50, limit=10)) == 1
    assert [items(e) for e in run(store.read_feed(0, 10))] == [["1"], ["2"]]
    # the session itself is still there for recommendations
    assert [e.item_id for e in run(store.get("a"))] == ["1", "2"]


def test_withheld_and_erased_sessions_are_never_handed_over(store, clock, run):
    run(store.append("a", Event("1")))
    run(store.withhold("a"))  # a click without consent
    run(store.append("a", Event("2")))  # later clicks do not bring it back
    run(store.append("b", Event("3")))
    run(store.delete_session("b"))
    clock.now += 100
    assert run(store.finish_idle(idle=50, limit=10)) == 0
    assert run(store.finish("a")) is False
    assert run(store.read_feed(0, 10)) == []


def test_the_feed_keeps_its_newest_entries_and_sequences_show_the_gap(store, run):
    for n in range(8):
        run(store.append(f"s{n}", Event(str(n))))
        run(store.finish(f"s{n}"))
    feed = run(store.read_feed(0, 100))
    assert [entry.sequence for entry in feed] == [4, 5, 6, 7, 8]  # 1-3 trimmed (capacity 5)
    assert [entry.sequence for entry in run(store.read_feed(5, 2))] == [6, 7]


def test_a_store_without_a_feed_refuses_live_calls(open_store, run):
    store = open_store(live_feed=0)
    run(store.append("a", Event("1")))
    with pytest.raises(ConfigError, match="live feed"):
        run(store.finish("a"))
    assert store.retention()["live_feed"] == 0
    assert open_store(live_feed=7).retention()["live_feed"] == 7


def test_a_session_trimmed_to_max_events_hands_over_what_is_kept(open_store, clock, run):
    store = open_store(max_events=3)
    for n in range(5):
        run(store.append("a", Event(str(n))))
    assert run(store.finish("a")) is True
    run(store.append("a", Event("5")))  # the new part: only the click after the hand-over
    clock.now += 60
    assert run(store.finish_idle(idle=30, limit=10)) == 1
    assert [items(e) for e in run(store.read_feed(0, 10))] == [["2", "3", "4"], ["5"]]


def test_kept_conversions_go_to_the_feed_and_unkept_ones_do_not(store, run):
    run(store.append("a", Event("1")))
    run(store.convert("a", Event("1", "cart"), "default", 0.0, keep=True))
    run(store.convert("a", Event("1", "purchase"), "default", 9.0, keep=False))
    assert run(store.finish("a")) is True
    feed = run(store.read_feed(0, 10))
    assert [[e.event_type for e in entry.events] for entry in feed] == [["view", "cart"]]


# ------------------------------------------------------------------- redis
def redis_store(server: Any, clock: FakeClock, **options: Any) -> RedisStore:
    return RedisStore(server.url, ttl=600, clock=clock, prefix="lf:", **options)


async def command_calls(client: Any) -> dict[str, int]:
    """How often Redis ran each command since the last ``CONFIG RESETSTAT`` (commands a
    script runs included)."""
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


def test_two_replicas_sweeping_at_once_hand_each_session_over_once(redis_server, clock, run):
    first = redis_store(redis_server, clock, live_feed=100)
    second = redis_store(redis_server, clock, live_feed=100)

    async def sweep(store: RedisStore) -> int:
        handed = 0
        while n := await store.finish_idle(idle=5, limit=3):
            handed += n
        return handed

    async def scenario() -> None:
        for n in range(40):
            await (first if n % 2 else second).append(f"s{n}", Event(str(n)))
        clock.now += 10
        handed = await asyncio.gather(sweep(first), sweep(second), sweep(first), sweep(second))
        assert sum(handed) == 40
        feed = await second.read_feed(0, 100)
        assert [entry.sequence for entry in feed] == list(range(1, 41))
        assert sorted(int(items(entry)[0]) for entry in feed) == list(range(40))
        assert await first.feed_head() == 40
        await first.close()
        await second.close()

    run(scenario())


def test_a_click_without_a_feed_costs_what_it_cost_before(redis_server, clock, run):
    async def scenario() -> None:
        async with redis.asyncio.Redis.from_url(redis_server.url) as client:
            for live_feed in (0, 5):
                store = redis_store(redis_server, clock, live_feed=live_feed)
                sent: list[tuple[Any, ...]] = []
                call = store._batcher.call

                async def record(*command: Any, call: Any = call, sent: Any = sent) -> Any:
                    sent.append(command)
                    return await call(*command)

                store._batcher.call = record  # type: ignore[method-assign]
                await store.append("warm-up", Event("0"))  # loads the script
                await client.config_resetstat()
                for n in range(10):
                    await store.append("a", Event(str(n)))
                calls = await command_calls(client)
                calls.pop("config|resetstat", None)
                if live_feed:
                    assert {name: calls.get(name) for name in ("zadd", "incrby", "exists")} == {
                        "zadd": 10,
                        "incrby": 10,
                        "exists": 10,
                    }
                else:  # the script's own commands, nothing else
                    assert calls == dict.fromkeys(
                        ("evalsha", "rpush", "ltrim", "pexpire", "lrange"), 10
                    ), calls
                # one round trip per click either way; without a feed: one key, three values
                assert len(sent) == 11
                numkeys = {int(command[2]) for command in sent}
                assert numkeys == ({1} if not live_feed else {4})
                if not live_feed:
                    assert {len(command) for command in sent} == {3 + 1 + 3}
                await store.close()

    run(scenario())


async def keys_of(url: str) -> dict[str, int]:
    """Every key and its time to live (ms; -1: none)."""
    async with redis.asyncio.Redis.from_url(url, decode_responses=True) as client:
        return {key: await client.pttl(key) async for key in client.scan_iter("*")}


def test_erasure_removes_the_feed_keys_and_every_session_key_expires(redis_server, clock, run):
    store = redis_store(redis_server, clock, live_feed=5)

    async def scenario() -> None:
        await store.append("visitor-1", Event("1"))
        await store.append("visitor-2", Event("2"))
        await store.withhold("visitor-2")
        keys = await keys_of(redis_server.url)
        assert {"lf:fp:visitor-1", "lf:fw:visitor-2", "lf:going"} <= set(keys)
        per_session = {key: ttl for key, ttl in keys.items() if "visitor" in key}
        assert all(0 < ttl <= 600_000 for ttl in per_session.values()), per_session
        async with redis.asyncio.Redis.from_url(redis_server.url) as client:
            assert await client.zrange("lf:going", 0, -1) == [b"visitor-1"]
            await store.delete_session("visitor-1")
            await store.delete_session("visitor-2")
            assert not [key for key in await keys_of(redis_server.url) if "visitor" in key]
            assert await client.zcard("lf:going") == 0
        assert await store.finish("visitor-1") is False
        assert await store.read_feed(0, 10) == []

    run(scenario())
    run(store.close())


def test_sessions_idle_past_the_timeout_leave_the_going_set(redis_server, clock, run):
    store = redis_store(redis_server, clock, live_feed=5)

    async def scenario() -> None:
        await store.append("old", Event("1"))
        clock.now += 601  # longer than the idle timeout: the session is gone
        await store.append("new", Event("2"))
        async with redis.asyncio.Redis.from_url(redis_server.url) as client:
            assert await client.zrange("lf:going", 0, -1) == [b"new"]

    run(scenario())
    run(store.close())


def test_the_feed_holds_clicks_only_no_session_id_no_nonce(redis_server, clock, run):
    store = redis_store(redis_server, clock, live_feed=5)

    async def scenario() -> None:
        await store.append("visitor-1", Event("7", "view", 12.5))
        await store.append("visitor-1", Event("8"))
        assert await store.finish("visitor-1") is True
        async with redis.asyncio.Redis.from_url(redis_server.url) as client:
            [(entry_id, fields)] = await client.xrange("lf:feed")
            assert entry_id == b"1-1"
            raw = b"".join([*fields, *fields.values()])
            assert b"visitor" not in raw
            assert b"\x1e" not in raw  # the nonce would tie the entry to the session's list
            assert await client.xinfo_stream("lf:feed") is not None
        [entry] = await store.read_feed(0, 10)
        assert entry.events == (Event("7", "view", 12.5), Event("8"))
        assert all(event.nonce == "" for event in entry.events)

    run(scenario())
    run(store.close())


def test_clicks_written_back_after_an_outage_go_to_the_feed(redis_server, clock, run):
    store = redis_store(redis_server, clock, live_feed=5, timeout=0.5, retry_after=0.05)

    async def scenario() -> None:
        redis_server.stop()
        for item in "12":
            with pytest.raises(StoreUnavailable):
                await store.append("s", Event(item))
        redis_server.start()  # the same port, empty (no persistence)

        async def written() -> bool:
            return len(store.buffer) == 0

        await wait_until_async(written, 20, "the buffer to be written back")
        clock.now += 60
        assert await store.finish_idle(idle=30, limit=10) == 1
        assert [items(entry) for entry in await store.read_feed(0, 10)] == [["1", "2"]]

    run(scenario())
    run(store.close())


def test_live_calls_raise_store_unavailable_while_redis_is_down(clock, run):
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", clock=clock, live_feed=5)

    async def scenario() -> None:
        calls = [
            store.finish_idle(5, 10),
            store.finish("a"),
            store.withhold("a"),
            store.read_feed(0, 10),
            store.feed_head(),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await call

    run(scenario())
    run(store.close())


def test_one_holder_of_a_lease_until_it_lapses(redis_server, clock, run):
    first = RedisStore(redis_server.url, ttl=600, clock=clock)
    second = RedisStore(redis_server.url, ttl=600, clock=clock)
    try:
        assert run(first.claim("snapshots", 60)) is True
        assert run(second.claim("snapshots", 60)) is False
        assert run(first.claim("snapshots", 0.2)) is True  # renewed by its holder, shorter
        assert run(second.claim("other", 60)) is True  # leases are by name

        async def taken_over() -> bool:
            return await second.claim("snapshots", 60)

        run(wait_until_async(taken_over, 10, "the lapsed lease to pass to the other store"))
        assert run(first.claim("snapshots", 60)) is False
    finally:
        run(first.close())
        run(second.close())
