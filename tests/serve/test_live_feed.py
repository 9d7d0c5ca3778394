"""The live-learning feed of the session stores: finished sessions handed over once each,
in order, without the sessions a visitor did not consent to, readable from any position."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from sessionrec._errors import ConfigError
from sessionrec.serve.store import Event, MemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Iterator[Any]:
    yield MemoryStore(ttl=600, clock=clock, live_feed=5)


def items(entry: Any) -> list[str]:
    return [event.item_id for event in entry.events]


def test_idle_sessions_are_handed_over_once_in_order_of_idleness(store, clock):
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


def test_a_visitor_who_comes_back_starts_a_new_part(store, clock):
    run(store.append("a", Event("1")))
    assert run(store.finish("a")) is True
    assert run(store.finish("a")) is False  # nothing new to hand over
    run(store.append("a", Event("2")))
    clock.now += 100
    assert run(store.finish_idle(idle=50, limit=10)) == 1
    assert [items(e) for e in run(store.read_feed(0, 10))] == [["1"], ["2"]]
    # the session itself is still there for recommendations
    assert [e.item_id for e in run(store.get("a"))] == ["1", "2"]


def test_withheld_and_erased_sessions_are_never_handed_over(store, clock):
    run(store.append("a", Event("1")))
    run(store.withhold("a"))  # a click without consent
    run(store.append("a", Event("2")))  # later clicks do not bring it back
    run(store.append("b", Event("3")))
    run(store.delete_session("b"))
    clock.now += 100
    assert run(store.finish_idle(idle=50, limit=10)) == 0
    assert run(store.finish("a")) is False
    assert run(store.read_feed(0, 10)) == []


def test_the_feed_keeps_its_newest_entries_and_sequences_show_the_gap(store):
    for n in range(8):
        run(store.append(f"s{n}", Event(str(n))))
        run(store.finish(f"s{n}"))
    feed = run(store.read_feed(0, 100))
    assert [entry.sequence for entry in feed] == [4, 5, 6, 7, 8]  # 1-3 trimmed (capacity 5)
    assert [entry.sequence for entry in run(store.read_feed(5, 2))] == [6, 7]


def test_a_store_without_a_feed_refuses_live_calls(clock):
    store = MemoryStore(clock=clock)
    run(store.append("a", Event("1")))
    with pytest.raises(ConfigError, match="live feed"):
        run(store.finish("a"))
    assert store.retention()["live_feed"] == 0
