"""The service and the repeat layer agree on the session's own items: a model that recommends
repeats keeps them by default, every other model leaves them out, and ``--exclude-seen`` /
``--no-exclude-seen`` and the request's ``exclude_seen`` override that default.

The repeat model wraps the Markov chain of ``conftest.TRAIN`` with a mixture set by hand: every
cell on with ``beta = 100``, so the session's own items rank first (the last click first).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.data.sessions import SessionData
from sessionrec.models.registry import load_model
from sessionrec.models.repeat import RepeatAware
from sessionrec.models.repeat_mixture import N_CELLS, Mixture
from sessionrec.serve.cli import add_parsers, config_from_args
from sessionrec.serve.config import ServeConfig, VariantSpec

from .conftest import TRAIN, Shop, ids

EVENTS = "/v1/sessions/{}/events"


@pytest.fixture(scope="module")
def repeat_dir(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    markov = load_model(shop.markov_dir)
    model = RepeatAware.wrap(markov, SessionData.from_sequences(TRAIN).with_vocab(markov.vocab_))
    model.mixture_ = Mixture(0.5, 0.0, np.full(N_CELLS, 100.0))
    assert model.recommends_repeats()
    return model.save(tmp_path_factory.mktemp("repeat") / "model")


@pytest.fixture
def serve(
    make_config: Callable[..., ServeConfig], repeat_dir: Path
) -> Iterator[Callable[..., Any]]:
    from fastapi.testclient import TestClient

    from sessionrec.serve.app import create_app

    clients: list[Any] = []

    def start(**overrides: Any) -> Any:
        config = make_config(variants=(VariantSpec("default", str(repeat_dir)),), **overrides)
        client = TestClient(create_app(config))
        clients.append(client.__enter__())
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def click(client: Any, session: str, *items: str, query: str = "?k=3") -> dict[str, Any]:
    for item in items[:-1]:
        client.post(EVENTS.format(session) + "?recommend=false", json={"item_id": item})
    return client.post(EVENTS.format(session) + query, json={"item_id": items[-1]}).json()


def test_a_model_that_recommends_repeats_keeps_the_session_items_by_default(serve) -> None:
    client = serve()
    # Session 5 then 1: the repeat layer ranks 1 (last click), then 5, then Markov's best from 1.
    assert ids(click(client, "a", "5", "1")) == ["1", "5", "2"]
    explained = client.get("/v1/sessions/a/recommendations?k=1&explain=true").json()
    assert explained["items"][0]["reason"]["kind"] == "repeat"
    assert explained["items"][0]["reason"]["session_items"][0]["item_id"] == "1"
    # The request's option wins: the seen items are left out, Markov's order from 1 remains.
    left_out = client.get("/v1/sessions/a/recommendations?k=3&exclude_seen=true").json()
    assert ids(left_out) == ["2", "3", "4"]
    stateless = client.post("/v1/recommendations", json={"items": ["5", "1"], "k": 2}).json()
    assert ids(stateless) == ["1", "5"]


def test_the_service_option_fixes_the_default_for_every_model(serve) -> None:
    client = serve(exclude_seen=True)  # --exclude-seen
    assert ids(click(client, "b", "5", "1")) == ["2", "3", "4"]
    again = client.get("/v1/sessions/b/recommendations?k=2&exclude_seen=false").json()
    assert ids(again) == ["1", "5"]


def test_other_models_still_leave_the_seen_items_out(client) -> None:
    assert "1" not in ids(click(client, "c", "5", "1", query="?k=5"))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [((), None), (("--exclude-seen",), True), (("--no-exclude-seen",), False)],
)
def test_exclude_seen_flags(shop: Shop, flags: tuple[str, ...], expected: bool | None) -> None:
    config = config_from_args(parse("serve", str(shop.markov_dir), *flags))
    assert config.exclude_seen is expected
    assert ServeConfig.from_json(config.to_json()) == config


def test_contradicting_exclude_seen_settings_are_refused(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        parse("serve", str(shop.markov_dir), "--exclude-seen", "--no-exclude-seen")
    monkeypatch.setenv("SESSIONREC_EXCLUDE_SEEN", "1")
    monkeypatch.setenv("SESSIONREC_NO_EXCLUDE_SEEN", "1")
    with pytest.raises(ConfigError, match="contradict"):
        config_from_args(parse("serve", str(shop.markov_dir)))
