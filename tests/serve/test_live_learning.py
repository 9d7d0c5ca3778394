"""Live learning in the service (``--live-updates``): finished sessions of consenting
visitors become neighbours of the session-kNN variants, their new items recommendable; the
others keep serving as they were. The learner's rounds are driven by the test (the interval
is long), so nothing waits on a timer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionrec._errors import ConfigError
from sessionrec.models.registry import load_model
from sessionrec.serve.app import create_app
from sessionrec.serve.config import ServeConfig, VariantSpec

from .conftest import TRAIN, Shop, ids, train_model

LIVE = {"live_updates": True, "live_interval": 3600.0, "live_idle": 60.0}


@pytest.fixture(scope="module")
def vsknn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model("vsknn", TRAIN, tmp_path_factory.mktemp("live") / "vsknn")


@contextmanager
def live_app(config: ServeConfig) -> Iterator[tuple[TestClient, Any]]:
    with TestClient(create_app(config)) as client:
        yield client, client.app.state.service  # type: ignore[attr-defined]


def learn(client: TestClient, state: Any) -> int:
    """One round of the learner, on the app's event loop."""
    return client.portal.call(state.live.step)  # type: ignore[union-attr]


def click(client: TestClient, session: str, item: int, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/sessions/{session}/events", json={"item_id": item, **body})
    assert response.status_code == 200, response.text
    return response.json()


def recommend(client: TestClient, items: list[int], variant: str | None = None) -> list[str]:
    body: dict[str, Any] = {"items": items, "k": 10}
    if variant is not None:
        body["variant"] = variant
    response = client.post("/v1/recommendations", json=body)
    assert response.status_code == 200, response.text
    return ids(response.json())


@pytest.fixture
def config(make_config: Callable[..., ServeConfig], vsknn_dir: Path, shop: Shop) -> ServeConfig:
    return make_config(
        variants=(VariantSpec("default", str(vsknn_dir)),), catalog=str(shop.catalog_csv), **LIVE
    )


def test_an_ended_session_teaches_a_new_item_within_one_round(config):
    with live_app(config) as (client, state):
        assert "13" not in recommend(client, [9])  # item 13: in the catalog, never clicked
        click(client, "v1", 9)
        click(client, "v1", 13)
        ended = client.post("/v1/sessions/v1/end")
        assert ended.json() == {"session_id": "v1", "handed_over": True}
        assert client.post("/v1/sessions/v1/end").json()["handed_over"] is False
        assert learn(client, state) == 1
        assert "13" in recommend(client, [9])
        live = client.get("/v1/info").json()["live"]["variants"]["default"]
        assert live["learns"] and live["sessions_learned"] == 1 and live["items"] == 13
        metrics = client.get("/metrics").text
        assert 'sessionrec_live_sessions_total{outcome="learned",variant="default"} 1.0' in metrics


def test_idle_sessions_are_learned_and_a_session_without_consent_never(config):
    with live_app(config) as (client, state):
        store = state.store
        click(client, "kept", 9)
        click(client, "kept", 13)
        click(client, "private", 10)
        click(client, "private", 13, consent=False)  # withholds the whole session
        store._clock = lambda: 1e12  # every session is now idle for longer than live_idle
        assert learn(client, state) == 1  # "kept" only
        assert client.post("/v1/sessions/private/end").json()["handed_over"] is False
        assert "13" in recommend(client, [9])
        assert "13" not in recommend(client, [10])  # the withheld session taught nothing


def test_variants_that_cannot_learn_live_keep_serving_as_they_were(make_config, vsknn_dir, shop):
    config = make_config(
        variants=(
            VariantSpec("knn", str(vsknn_dir), 1.0),
            VariantSpec("markov", str(shop.markov_dir), 1.0),
        ),
        **LIVE,
    )
    with live_app(config) as (client, state):
        before = recommend(client, [9], variant="markov")
        click(client, "s", 9)
        click(client, "s", 11)
        client.post("/v1/sessions/s/end")
        learn(client, state)
        assert recommend(client, [9], variant="markov") == before
        live = client.get("/v1/info").json()["live"]["variants"]
        assert live["markov"]["learns"] is False and live["knn"]["learns"] is True
        assert live["knn"]["sessions_learned"] == 1


def test_a_feed_that_outpaces_the_index_drops_the_oldest_and_counts_them(make_config, vsknn_dir):
    config = make_config(variants=(VariantSpec("default", str(vsknn_dir)),), live_feed=2, **LIVE)
    with live_app(config) as (client, state):
        for n in range(5):
            click(client, f"s{n}", 9)
            client.post(f"/v1/sessions/s{n}/end")
        assert learn(client, state) == 2  # the feed kept the last two
        metrics = client.get("/metrics").text
        assert 'sessionrec_live_sessions_total{outcome="dropped",variant="default"} 3.0' in metrics


def learn_item_13_and_snapshot(config: ServeConfig) -> list[str]:
    """One service's life: a session [9, 13] ended and learned, then a snapshot; the
    variants it saved."""
    with live_app(config) as (client, state):
        click(client, "v1", 9)
        click(client, "v1", 13)
        client.post("/v1/sessions/v1/end")
        learn(client, state)
        return client.portal.call(state.live.snapshot_if_due, True)


def test_snapshots_are_model_folders_and_a_restart_resumes_from_them(config, tmp_path):
    config = config.replace(live_snapshot_dir=str(tmp_path / "snaps"))
    assert learn_item_13_and_snapshot(config) == ["default"]
    snapshot = load_model(tmp_path / "snaps" / "default")
    assert "13" in [str(i) for i in snapshot.vocab_.ids.tolist()]
    assert snapshot.data_fingerprint_.endswith("+live")
    with live_app(config) as (client, _):  # a new process: resumes from the snapshot
        assert "13" in recommend(client, [9])
        assert client.get("/v1/info").json()["live"]["variants"]["default"]["items"] == 13


def test_a_damaged_snapshot_is_refused_and_the_variant_serves_its_folder(config, tmp_path):
    config = config.replace(live_snapshot_dir=str(tmp_path / "snaps"))
    learn_item_13_and_snapshot(config)
    state_file = next((tmp_path / "snaps" / "default").glob("*.npz"))
    state_file.write_bytes(state_file.read_bytes()[:100])  # truncated on disk
    with live_app(config) as (client, _):
        assert "13" not in recommend(client, [9])  # the trained model, not the snapshot
        live = client.get("/v1/info").json()["live"]["variants"]["default"]
        assert live["items"] == 12 and live["sessions_learned"] == 0


def test_ending_a_session_without_live_learning_is_refused(make_config):
    with TestClient(create_app(make_config())) as client:
        response = client.post("/v1/sessions/s/end")
        assert response.status_code == 409
        assert response.json()["error"] == "live_learning_off"
        assert client.get("/v1/info").json()["live"] is None


def test_live_options_are_checked(make_config):
    with pytest.raises(ConfigError, match="--live-idle"):
        make_config(live_updates=True, live_idle=4000.0, session_ttl=1800.0)
    with pytest.raises(ConfigError, match="shared store"):
        make_config(live_updates=True, workers=2)
    with pytest.raises(ConfigError, match="--live-batch"):
        make_config(live_batch=0)


def test_feed_entries_become_typed_sessions_in_feed_order():
    from sessionrec.serve.live import feed_sessions
    from sessionrec.serve.store import Event, FeedEntry

    entries = [
        FeedEntry(1, (Event("7"), Event("x9", "cart"), Event("3", "purchase"))),
        FeedEntry(2, (Event("3", "cart"),)),
    ]
    data, skipped = feed_sessions(entries, "int")
    assert skipped == 1  # "x9" cannot be an item of a model with integer ids
    assert [data.vocab.ids[data.session(s)].tolist() for s in range(2)] == [[7, 3], [3]]
    names = [data.event_types[t] for t in data.types]
    assert names == ["view", "purchase", "cart"]
    text, skipped = feed_sessions(entries, "str")
    assert skipped == 0 and text.vocab.ids[text.session(0)].tolist() == ["7", "x9", "3"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_replicas_sharing_redis_learn_the_same_sessions_in_the_same_order(
    make_config, vsknn_dir, redis_server, tmp_path
):
    config = make_config(
        variants=(VariantSpec("default", str(vsknn_dir)),),
        store=redis_server.url,
        live_snapshot_dir=str(tmp_path / "snaps"),
        **LIVE,
    )
    with live_app(config) as (a, state_a), live_app(config) as (b, state_b):
        click(a, "v1", 9)
        click(b, "v1", 13)  # one visitor, two replicas: one session in Redis
        click(b, "v2", 10)
        click(a, "v2", 11)
        assert a.post("/v1/sessions/v1/end").json()["handed_over"] is True
        assert b.post("/v1/sessions/v1/end").json()["handed_over"] is False  # once
        assert b.post("/v1/sessions/v2/end").json()["handed_over"] is True
        assert learn(a, state_a) == 2 and learn(b, state_b) == 2
        for client in (a, b):
            assert "13" in recommend(client, [9]) and "11" in recommend(client, [10])
        models = [s.registry.get("default").serving().model for s in (state_a, state_b)]
        for name, value in models[0].index_._asdict().items():
            assert (getattr(models[1].index_, name) == value).all(), name
        writers = [
            client.portal.call(state.live.snapshot_if_due, True)
            for client, state in ((a, state_a), (b, state_b))
        ]
        assert sorted(map(len, writers)) == [0, 1]  # one replica holds the snapshot lease
