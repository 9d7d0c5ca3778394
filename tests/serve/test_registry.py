"""A/B variants, feedback counting, hot reload (admin and watcher), the admin token."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sessionrec.models.registry import load_model
from sessionrec.serve.app import create_app
from sessionrec.serve.config import ServeConfig, VariantSpec, parse_variant
from sessionrec.serve.registry import ModelLoader, ModelRegistry, stable_fraction

from .conftest import TRAIN, ids, train_model, wait_until

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin_env(monkeypatch):
    monkeypatch.setenv("SESSIONREC_ADMIN_TOKEN", TOKEN)


def ab_config(make_config, shop, weight_b=3.0, **overrides) -> ServeConfig:
    variants = (
        VariantSpec("default", str(shop.markov_dir), 1.0),
        VariantSpec("b", str(shop.sr_dir), weight_b),
    )
    return make_config(variants=variants, **overrides)


# ------------------------------------------------------------------ A/B
def test_stable_fraction_is_deterministic_and_uniform():
    assert stable_fraction("abc", "salt") == stable_fraction("abc", "salt")
    assert stable_fraction("abc", "salt") != stable_fraction("abc", "pepper")
    values = np.array([stable_fraction(f"s{i}", "salt") for i in range(20_000)])
    assert values.min() >= 0 and values.max() < 1
    counts, _ = np.histogram(values, bins=10, range=(0, 1))
    assert counts.min() > 1800 and counts.max() < 2200


def test_split_follows_the_weights_and_is_stable(make_config, shop):
    config = ab_config(make_config, shop)
    registry = ModelRegistry(config.variants, ModelLoader(config), salt=config.ab_salt)
    names = [registry.choose(f"visitor-{i}").name for i in range(8000)]
    share_b = names.count("b") / len(names)
    assert abs(share_b - 0.75) < 0.02
    again = ModelRegistry(config.variants, ModelLoader(config), salt=config.ab_salt)
    assert [again.choose(f"visitor-{i}").name for i in range(500)] == names[:500]


def test_weight_zero_is_never_chosen_but_can_be_forced(make_config, shop):
    config = ab_config(make_config, shop, weight_b=0.0)
    registry = ModelRegistry(config.variants, ModelLoader(config), salt=config.ab_salt)
    assert {registry.choose(f"v{i}").name for i in range(2000)} == {"default"}
    with TestClient(create_app(config)) as client:
        forced = client.post("/v1/sessions/s/events?variant=b&k=2", json={"item_id": "1"}).json()
        assert forced["variant"] == "b" and forced["model"] == "sr"


def test_every_request_of_a_session_goes_to_its_variant(make_config, shop):
    config = ab_config(make_config, shop, weight_b=1.0)
    registry = ModelRegistry(config.variants, ModelLoader(config), salt=config.ab_salt)
    seen = set()
    with TestClient(create_app(config)) as client:
        for i in range(30):
            session = f"visitor-{i}"
            expected = registry.choose(session).name
            for item in ("1", "2", "3"):
                payload = client.post(f"/v1/sessions/{session}/events", json={"item_id": item})
                assert payload.json()["variant"] == expected
            got = client.get(f"/v1/sessions/{session}/recommendations").json()
            assert got["variant"] == expected
            assert got["model"] == {"default": "markov", "b": "sr"}[expected]
            stateless = client.post(
                "/v1/recommendations", json={"items": ["1"], "session_id": session}
            ).json()
            assert stateless["variant"] == expected
            seen.add(expected)
    assert seen == {"default", "b"}


def test_parse_variant():
    assert parse_variant("b=/models/x:0.25") == VariantSpec("b", "/models/x", 0.25)
    assert parse_variant("b=/models/x") == VariantSpec("b", "/models/x", 1.0)
    assert parse_variant("b=C:/models/x") == VariantSpec("b", "C:/models/x", 1.0)
    for bad in ("b", "=x", "b=", "b b=x", "b=x:-1"):
        with pytest.raises(ValueError):
            parse_variant(bad)


# ------------------------------------------------------------- feedback
def test_feedback_counts_clicks_per_variant_once(make_config, shop, admin_env):
    config = ab_config(make_config, shop, weight_b=1.0)
    with TestClient(create_app(config)) as client:
        answers = {}
        for i in range(40):
            payload = client.post(f"/v1/sessions/fb-{i}/events?k=3", json={"item_id": "1"}).json()
            answers.setdefault(payload["variant"], []).append(payload)
        assert set(answers) == {"default", "b"}
        clicked = {"default": 0, "b": 0}
        for variant, payloads in answers.items():
            for payload in payloads[:3]:
                body = {
                    "recommendation_id": payload["recommendation_id"],
                    "item_id": payload["items"][0]["item_id"],
                }
                first = client.post("/v1/feedback", json=body)
                assert first.status_code == 200
                assert first.json()["counted"] is True and first.json()["variant"] == variant
                again = client.post("/v1/feedback", json=body).json()
                assert again["counted"] is False and again["status"] == "duplicate"
                clicked[variant] += 1
        payload = answers["b"][0]
        wrong = client.post(
            "/v1/feedback",
            json={"recommendation_id": payload["recommendation_id"], "item_id": "12"},
        )
        assert wrong.status_code == 422 and wrong.json()["error"] == "not_recommended"
        counts = client.get("/v1/admin/feedback", headers=AUTH).json()["variants"]
        for variant, payloads in answers.items():
            assert counts[variant]["impressions"] == len(payloads)
            assert counts[variant]["clicks"] == clicked[variant]
            assert counts[variant]["ctr"] == pytest.approx(clicked[variant] / len(payloads))


# ------------------------------------------------------------ admin token
def test_admin_endpoints_need_the_token(client, monkeypatch):
    disabled = client.get("/v1/admin/models")
    assert disabled.status_code == 403 and disabled.json()["error"] == "admin_disabled"
    monkeypatch.setenv("SESSIONREC_ADMIN_TOKEN", TOKEN)
    missing = client.get("/v1/admin/models")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/v1/admin/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    basic = client.get("/v1/admin/models", headers={"Authorization": "Basic eA=="})
    assert basic.status_code == 401
    ok = client.get("/v1/admin/models", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["variants"][0]["model"] == "markov"
    reload = client.post("/v1/admin/models/default/reload", headers={"Authorization": "Bearer x"})
    assert reload.status_code == 403


# -------------------------------------------------------------- hot reload
def corrupt_copy(source, target):
    shutil.copytree(source, target)
    state = target / "state.npz"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    return target


def test_admin_reload_swaps_and_a_broken_artifact_is_refused(client, shop, tmp_path, monkeypatch):
    monkeypatch.setenv("SESSIONREC_ADMIN_TOKEN", TOKEN)
    before = client.post("/v1/recommendations", json={"items": ["1"], "k": 3}).json()
    assert before["model"] == "markov"
    swapped = client.post(
        "/v1/admin/models/default/reload", json={"path": str(shop.sr_dir)}, headers=AUTH
    )
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["previous_version"] == before["model_version"]
    after = client.post("/v1/recommendations", json={"items": ["1"], "k": 3}).json()
    assert after["model"] == "sr" and after["model_version"] == swapped.json()["model_version"]

    broken = corrupt_copy(shop.markov_dir, tmp_path / "broken")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "manifest.json").write_text("{not json")
    for path in (broken, garbage, tmp_path / "missing"):
        refused = client.post(
            "/v1/admin/models/default/reload", json={"path": str(path)}, headers=AUTH
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "model_rejected"
        assert "keeps serving" in refused.json()["message"]
        still = client.post("/v1/recommendations", json={"items": ["1"], "k": 3}).json()
        assert still["model_version"] == after["model_version"]
    state = client.get("/v1/admin/models", headers=AUTH).json()["variants"][0]
    assert state["model"] == "sr" and "missing" in state["last_error"]
    unknown = client.post("/v1/admin/models/zzz/reload", headers=AUTH)
    assert unknown.status_code == 404


def test_in_flight_requests_keep_the_model_they_started_with(make_config, shop):
    config = make_config()
    registry = ModelRegistry(config.variants, ModelLoader(config))
    registry.load_all()
    old = registry.default.serving()
    registry.reload("default", str(shop.sr_dir))
    new = registry.default.serving()
    assert new is not old and new.name == "sr"
    # a request that grabbed `old` before the swap finishes on an intact model
    ranked = old.rules.recommend(old.model, ["1"], 2, exclude_seen=False)
    assert ranked.items == ["2", "3"]


def count_polls(registry: ModelRegistry) -> list[int]:
    """A counter of the registry's finished polls from now on (the watcher calls ``poll``)."""
    polls = [0]
    poll = registry.poll

    def counted(*args, **kwargs):
        result = poll(*args, **kwargs)
        polls[0] += 1
        return result

    registry.poll = counted  # type: ignore[method-assign]
    return polls


def test_watcher_reloads_a_replaced_folder_and_refuses_a_broken_one(make_config, tmp_path):
    live = tmp_path / "live"
    train_model("markov", TRAIN, live)
    config = make_config(variants=(VariantSpec("default", str(live)),), reload_interval=0.05)
    with TestClient(create_app(config)) as client:
        state = client.app.state.service

        def serving() -> str:
            return client.get("/v1/info").json()["variants"][0]["model"]

        assert serving() == "markov"
        train_model("sr", TRAIN, live)  # Recommender.save replaces the folder atomically
        wait_until(lambda: serving() == "sr", 10, "the watcher to load the new folder")
        version = client.get("/v1/info").json()["variants"][0]["model_version"]

        broken = corrupt_copy(live, tmp_path / "broken")
        os.replace(live, tmp_path / "previous")
        os.replace(broken, live)
        variant = state.registry.default
        wait_until(lambda: variant.last_error is not None, 10, "the broken folder to be refused")
        assert "checksum" in variant.last_error
        # Several more polls of the watcher: the same broken folder is not retried.
        polls = count_polls(state.registry)
        wait_until(lambda: polls[0] >= 3, 10, "three more polls of the watcher")
        rejected = state.metrics.sample(
            "sessionrec_model_reloads_total", {"variant": "default", "outcome": "rejected"}
        )
        assert rejected == 1
        assert client.get("/v1/info").json()["variants"][0]["model_version"] == version
        answer = client.post("/v1/recommendations", json={"items": ["1"], "k": 2}).json()
        assert answer["model"] == "sr" and ids(answer)


def test_loaded_model_equals_a_direct_load(shop):
    model = load_model(shop.sr_dir)
    config = ServeConfig(variants=(VariantSpec("default", str(shop.sr_dir)),), reload_interval=0)
    loaded = ModelLoader(config).load("default", str(shop.sr_dir))
    direct = model.recommend([["1", "5"]], k=5)[0]
    # The model's own list (the folder's stored counts would complete it with popular items).
    served = loaded.rules.recommend(loaded.model, ["1", "5"], 5, exclude_seen=False, fallback=False)
    assert served.items == [str(item) for item, _ in direct]
    assert served.scores == [score for _, score in direct]
