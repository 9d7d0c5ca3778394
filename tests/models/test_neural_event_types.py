"""Event types in the neural models (GRU4Rec, SASRec, NARM, STAMP): the type embedding.

The known answer: sessions whose item sequences are the same and whose next item depends
only on the event type of the last click (a view of item 3 is followed by item 4, a cart of
item 3 by item 5). A model with the type embedding ranks the right item first in both cases;
one without it sees the same input twice and cannot tell them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.neural.event_types import TYPE_EMBEDDING, click_codes
from sessionrec.models.neural.gru4rec import GRU4Rec
from sessionrec.models.neural.narm import NARM
from sessionrec.models.neural.sasrec import SASRec
from sessionrec.models.neural.srgnn import SRGNN
from sessionrec.models.neural.stamp import STAMP
from sessionrec.models.registry import load_model

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

EVENT_TYPES = ("cart", "purchase", "view")  # sorted, as the data layer writes them
VIEW, CART = EVENT_TYPES.index("view"), EVENT_TYPES.index("cart")
PREFIX_ITEMS = (6, 7, 8, 9)  # the clicks before item 3 vary; they say nothing of the next

MODELS: dict[str, tuple[type[Recommender], dict[str, Any]]] = {
    "gru4rec": (
        GRU4Rec,
        {"hidden_size": 16, "batch_size": 16, "n_sample": 0, "learning_rate": 0.1},
    ),
    "narm": (
        NARM,
        {
            "embedding_size": 16,
            "hidden_size": 16,
            "batch_size": 32,
            "learning_rate": 0.01,
            "dropout_embed": 0.0,
            "dropout_context": 0.0,
        },
    ),
    "stamp": (STAMP, {"embedding_size": 16, "batch_size": 32, "learning_rate": 0.02}),
    "sasrec": (
        SASRec,
        {"hidden_size": 16, "max_len": 8, "batch_size": 64, "dropout": 0.0, "learning_rate": 0.01},
    ),
}


def type_decides_next(n_sessions: int = 240, seed: int = 0) -> SessionData:
    """Sessions ``p, 3, next``: ``next`` is 4 after a view of 3 and 5 after a cart of 3."""
    rng = np.random.default_rng(seed)
    sessions, types = [], []
    for s in range(n_sessions):
        carted = s % 2 == 1
        sessions.append([int(rng.choice(PREFIX_ITEMS)), 3, 5 if carted else 4])
        types.append([VIEW, CART if carted else VIEW, VIEW])
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sessions], out=offsets[1:])
    return SessionData(
        offsets=offsets,
        items=np.concatenate(sessions),
        vocab=ItemVocab([f"i{i}" for i in range(10)]),
        types=np.concatenate(types).astype(np.int8),
        event_types=EVENT_TYPES,
    )


def without_types(data: SessionData) -> SessionData:
    return SessionData(offsets=data.offsets, items=data.items, vocab=data.vocab)


def queries() -> SessionBatch:
    """``6, 3`` with 3 viewed, then with 3 carted."""
    return SessionBatch.from_sequences(
        [[6, 3], [6, 3]], types=[[VIEW, VIEW], [VIEW, CART]], event_types=EVENT_TYPES
    )


def top1(model: Recommender, batch: SessionBatch) -> list[int]:
    return [int(items[0]) for items, _ in model.top_k(batch, 1)]


def make(name: str, **params: Any) -> Recommender:
    cls, small = MODELS[name]
    return cls(**{**small, "n_epochs": 6, "device": "cpu", **params})


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest) -> tuple[str, Recommender]:
    name = request.param
    return name, make(name).fit(type_decides_next())


def test_typed_model_learns_what_the_type_decides(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    assert model.uses_event_types_  # type: ignore[attr-defined]
    assert top1(model, queries()) == [4, 5]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_untyped_model_cannot_tell_the_cases_apart(name: str) -> None:
    untyped = make(name, event_types=False).fit(type_decides_next())
    assert not untyped.uses_event_types_  # type: ignore[attr-defined]
    scores = untyped.score(queries())
    np.testing.assert_array_equal(scores[0], scores[1])  # one answer: one case is wrong


@pytest.mark.parametrize("name", sorted(MODELS))
def test_auto_without_types_is_the_model_of_before(name: str) -> None:
    """``"auto"`` on data without types: no type table, the same scores as ``False``."""
    data = without_types(type_decides_next())
    auto = make(name, n_epochs=2).fit(data)
    off = make(name, n_epochs=2, event_types=False).fit(data)
    assert not auto.uses_event_types_  # type: ignore[attr-defined]
    assert TYPE_EMBEDDING not in auto._named_weights()  # type: ignore[attr-defined]
    batch = SessionBatch.from_sequences([[6, 3], [7], [8, 3, 4]])
    np.testing.assert_array_equal(auto.score(batch), off.score(batch))


def test_a_batch_without_types_is_all_views(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    plain = SessionBatch.from_sequences([[6, 3], [7, 3]])
    viewed = SessionBatch.from_sequences(
        [[6, 3], [7, 3]], types=[[VIEW, VIEW], [VIEW, VIEW]], event_types=EVENT_TYPES
    )
    np.testing.assert_array_equal(model.score(plain), model.score(viewed))
    assert top1(model, plain) == [4, 4]


def test_state_round_trip_keeps_the_types(fitted: tuple[str, Recommender], tmp_path: Path) -> None:
    _, model = fitted
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.uses_event_types_  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.score(queries()), model.score(queries()))


def test_fine_tuning_keeps_the_type_embedding(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    tuned = model.fine_tune(type_decides_next(seed=1), n_epochs=1)  # type: ignore[attr-defined]
    assert tuned.uses_event_types_
    assert top1(tuned, queries()) == [4, 5]


def test_forced_types_on_untyped_data_count_views() -> None:
    """``event_types=True`` builds the table even on data without types (all views)."""
    model = make("gru4rec", event_types=True, n_epochs=1).fit(without_types(type_decides_next()))
    assert model.uses_event_types_
    assert model.score(queries()).shape == (2, 10)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_event_types_values_are_checked(value: Any) -> None:
    for cls, _ in MODELS.values():
        with pytest.raises(ConfigError, match="event_types"):
            cls(event_types=value)


def test_click_codes_map_names_and_default_to_views() -> None:
    np.testing.assert_array_equal(
        click_codes(np.array([0, 1, 2], np.int8), EVENT_TYPES, 3), [1, 2, 0]
    )
    np.testing.assert_array_equal(click_codes(None, (), 2), [0, 0])


# ---------------------------------------------------------------------- several processes
def _train_in_group(rank: int, world: int, store: str, out: str) -> None:
    """Each of two gloo processes trains on its shard: rank 0's has views only, rank 1's
    every cart, so under ``"auto"`` the ranks must agree to build the type table."""
    import datetime
    import json

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        # A rank's in-batch negatives are its own targets (4 or 5, never both): GRU4Rec
        # needs shared negatives to learn to tell them apart.
        extra: dict[str, dict[str, Any]] = {name: {} for name in MODELS}
        extra["gru4rec"] = {"n_sample": 6}
        result = {}
        for name in sorted(MODELS):
            model = make(name, n_epochs=8, **extra[name]).fit(type_decides_next())
            result[name] = [model.uses_event_types_, top1(model, queries())]  # type: ignore[attr-defined]
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_ranks_agree_on_the_type_table(tmp_path: Path) -> None:
    import json

    import torch.multiprocessing as mp

    shards = [type_decides_next().subset(np.arange(r, 240, 2)) for r in range(2)]
    assert shards[0].type_mask("cart").sum() == 0 and shards[1].type_mask("cart").any()
    mp.spawn(_train_in_group, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for name in sorted(MODELS):
        assert ranks[0][name] == ranks[1][name] == [True, [4, 5]], name


def test_srgnn_never_reads_types() -> None:
    """SR-GNN's graph nodes are items, which clicks of several types may share: no table."""
    model = SRGNN(hidden_size=8, batch_size=32, n_epochs=1, device="cpu").fit(type_decides_next())
    assert not model.uses_event_types_
    scores = model.score(queries())
    np.testing.assert_array_equal(scores[0], scores[1])
