"""The behaviour model of ``abtest simulate`` on sessions whose outcome is known by hand."""

import numpy as np
import polars as pl
import pytest

from sessionrec._errors import ConfigError
from sessionrec.abtest.export import SessionLog
from sessionrec.abtest.simulate import plant_uplift, replay, simulate_pilot
from sessionrec.data.sessions import SessionData
from sessionrec.models.registry import create_model


def _sessions(rows):
    frame = pl.DataFrame(
        rows, schema=["session_id", "item_id", "timestamp", "event_type"], orient="row"
    )
    return SessionData.from_frame(frame)


@pytest.fixture(scope="module")
def pop():
    # popularity: a (5 clicks) > b (4) > c (3) > d (1); top-2 is always [a, b]
    rows = []
    for i, (item, count) in enumerate({"a": 5, "b": 4, "c": 3, "d": 1}.items()):
        rows += [(f"t{i}{j}", item, float(j), "view") for j in range(count)]
    return create_model("pop").fit(_sessions(rows))


def test_replay_counts_clicks_and_attributed_conversions(pop):
    test = _sessions(
        [
            # lists after 1, 2, 3 clicks show [a, b]: next items a, b, a are all clicks;
            # the cart of b and the purchase of a follow lists showing them
            ("s1", "d", 100.0, "view"),
            ("s1", "a", 101.0, "view"),
            ("s1", "b", 102.0, "cart"),
            ("s1", "a", 103.0, "purchase"),
            # c is never recommended: no click, the purchase is not attributed
            ("s2", "a", 200.0, "view"),
            ("s2", "c", 201.0, "purchase"),
            # one click: no list is shown before it
            ("s3", "a", 300.0, "purchase"),
        ]
    )
    out = replay(test, pop, k=2)
    np.testing.assert_array_equal(out["impressions"], [3, 1, 0])
    np.testing.assert_array_equal(out["clicks"], [3, 0, 0])
    np.testing.assert_array_equal(out["carts"], [1, 0, 0])
    np.testing.assert_array_equal(out["purchases"], [1, 0, 0])
    np.testing.assert_array_equal(out["revenue"], [1.0, 0.0, 0.0])
    priced = replay(test, pop, k=2, prices={"a": 9.5})
    np.testing.assert_array_equal(priced["revenue"], [9.5, 0.0, 0.0])


def test_a_purchase_before_the_item_is_shown_is_not_attributed(pop):
    # k = 1 shows [a] only; the purchase of a comes at the first click, before any list
    test = _sessions([("s1", "a", 1.0, "purchase"), ("s1", "a", 2.0, "view")])
    out = replay(test, pop, k=1)
    assert out["purchases"][0] == 0
    assert out["clicks"][0] == 1


def test_simulate_pilot_assigns_every_session_once(pop):
    rows = [(f"s{i}", item, float(10 * i + j), "view") for i in range(200) for j, item in
            enumerate("dab")]  # fmt: skip
    test = _sessions(rows)
    log = simulate_pilot(test, {"a": pop, "b": pop}, seed=1)
    assert len(log) == 200
    assert set(log.variants) == {"a", "b"}
    assert 70 < int((log.variants == "a").sum()) < 130
    np.testing.assert_array_equal(log.impressions, 2)
    np.testing.assert_array_equal(log.clicks, 2)
    assert sorted(log.session_ids) == sorted(f"s{i}" for i in range(200))
    again = simulate_pilot(test, {"a": pop, "b": pop}, seed=1)
    np.testing.assert_array_equal(again.variants, log.variants)


def test_plant_uplift_raises_conversion_by_the_factor():
    rng = np.random.default_rng(0)
    n = 200_000
    log = SessionLog(
        session_ids=np.arange(n).astype(str).astype(object),
        variants=np.where(np.arange(n) % 2 == 0, "a", "b").astype(object),
        impressions=np.ones(n, dtype=np.int64),
        clicks=np.zeros(n, dtype=np.int64),
        carts=np.zeros(n, dtype=np.int64),
        purchases=(rng.random(n) < 0.1).astype(np.int64),
        revenue=np.zeros(n),
        first_seen=np.arange(n, dtype=np.float64),
    )
    planted = plant_uplift(log, "b", 0.2, rng)
    b = planted.variants == "b"
    before = (log.purchases[b] > 0).mean()
    after = (planted.purchases[b] > 0).mean()
    assert after / before == pytest.approx(1.2, abs=0.02)
    np.testing.assert_array_equal(planted.purchases[~b], log.purchases[~b])
    with pytest.raises(ConfigError, match="no session of variant"):
        plant_uplift(log, "c", 0.2, rng)
