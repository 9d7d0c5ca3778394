"""Trending fallback: live clicks with exponential decay rank before all-time popularity."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sessionrec._errors import ConfigError
from sessionrec.data.sessions import SessionData
from sessionrec.models.registry import create_model
from sessionrec.serve.app import create_app
from sessionrec.serve.rules import ItemRules
from sessionrec.serve.trending import TrendingClicks

from .conftest import POPULARITY, ids

EVENTS = "/v1/sessions/{}/events"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_decayed_counts_halve_every_half_life():
    clock = Clock()
    trending = TrendingClicks(100.0, refresh=0.0, clock=clock)
    trending.add("a")
    trending.add("a")
    clock.now += 100.0  # one half-life later: a's two clicks count as one
    for _ in range(3):
        trending.add("b")
    counts = trending.counts()
    assert counts["a"] == pytest.approx(1.0) and counts["b"] == pytest.approx(3.0)
    assert [item for item, _ in trending.ranking()] == ["b", "a"]
    clock.now += 200.0
    assert trending.counts()["b"] == pytest.approx(0.75)


def test_rescaling_after_a_long_time_keeps_the_ratios():
    clock = Clock()
    trending = TrendingClicks(1.0, refresh=0.0, clock=clock)
    trending.add("old")
    clock.now += 1000.0  # 2**1000 would overflow float64 without the rescale
    trending.add("new")
    trending.add("new")
    counts = trending.counts()
    assert counts["new"] == pytest.approx(2.0)
    assert "old" not in counts or counts["old"] < 1e-12


def test_the_table_keeps_the_largest_counts_within_its_bound():
    trending = TrendingClicks(1e9, max_items=3, clock=Clock())
    for n, item in enumerate("abcdefg"):
        for _ in range(n + 1):
            trending.add(item)
    assert len(trending.counts()) <= 2 * 3
    # the three most clicked always survive the pruning
    assert {"e", "f", "g"} <= set(trending.counts())


def test_the_ranking_is_recomputed_only_after_refresh_seconds():
    clock = Clock()
    trending = TrendingClicks(100.0, refresh=1.0, clock=clock)
    trending.add("a")
    first = trending.ranking()
    trending.add("b")
    trending.add("b")
    assert trending.ranking() is first  # cached
    clock.now += 1.0
    assert [item for item, _ in trending.ranking()] == ["b", "a"]


def test_fallback_lists_trending_items_before_all_time_best_sellers():
    model = create_model("pop").fit(SessionData.from_sequences([[10, 20], [30, 40]]))
    assert model.vocab_.ids.tolist() == [10, 20, 30, 40]
    popularity = np.array([9.0, 5.0, 1.0, 0.0])  # all-time: 10, 20, 30; 40 never
    rules = ItemRules(model.vocab_, popularity=popularity)
    trending = TrendingClicks(60.0, refresh=0.0, clock=Clock())
    for item in ["40", "40", "30", "unknown-to-the-model"]:
        trending.add(item)
    ranked = rules.recommend(model, ["unknown"], 4, trending=trending)
    assert ranked.items == ["40", "30", "10", "20"]
    assert ranked.sources == ["trending", "trending", "popular", "popular"]
    assert ranked.scores[:2] == [1.0, 0.5]  # each trending item's count over the largest
    # without live clicks the chain is the all-time one
    assert rules.recommend(model, ["unknown"], 3).items == ["10", "20", "30"]


@pytest.fixture
def trending_client(make_config):
    with TestClient(create_app(make_config(trending_half_life=3600.0))) as client:
        client.app.state.service.trending.refresh = 0.0  # rank afresh on every answer
        yield client


def test_the_service_falls_back_to_what_is_clicked_now(trending_client):
    client = trending_client
    before = client.get("/v1/sessions/new-visitor/recommendations?k=2").json()
    all_time = sorted(POPULARITY, key=lambda item: (-POPULARITY[item], item))
    assert ids(before) == [str(i) for i in all_time[:2]]
    # a sale: item 12 (rarely clicked in training) is clicked by many visitors now
    for n in range(3):
        client.post(EVENTS.format(f"sale-{n}"), json={"item_id": "12"})
    client.post(EVENTS.format("sale-x"), json={"item_id": "11"})
    # clicks without consent are never learned from
    for n in range(5):
        client.post(EVENTS.format(f"private-{n}"), json={"item_id": "9", "consent": False})
    info = client.get("/v1/info").json()["trending"]
    assert info["half_life"] == 3600.0 and info["clicks"] == 4
    answer = client.get("/v1/sessions/another-visitor/recommendations?k=3").json()
    assert ids(answer)[:2] == ["12", "11"]
    assert [i["source"] for i in answer["items"]] == ["trending", "trending", "popular"]
    assert "9" not in ids(answer)[:2]


def test_without_the_option_info_says_trending_is_off(client):
    assert client.get("/v1/info").json()["trending"] is None


def test_a_non_positive_half_life_is_refused(make_config):
    with pytest.raises(ConfigError, match="--trending-half-life"):
        make_config(trending_half_life=0.0)


def test_the_ranking_keeps_only_the_top_items(monkeypatch):
    from sessionrec.serve import trending as module

    monkeypatch.setattr(module, "RANKED", 2)
    clicks = TrendingClicks(60.0, refresh=0.0, clock=Clock())
    for n, item in enumerate("abc"):
        for _ in range(n + 1):
            clicks.add(item)
    assert [item for item, _ in clicks.ranking()] == ["c", "b"]
