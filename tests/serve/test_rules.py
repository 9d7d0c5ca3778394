"""Business rules inside the top-k search, catalogs in every format, and the fallback chain."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.data.synthetic import make_catalog
from sessionrec.models.base import SessionBatch
from sessionrec.models.persist import COUNTS, MANIFEST
from sessionrec.models.registry import create_model
from sessionrec.models.topk import select_top_k
from sessionrec.serve.app import create_app
from sessionrec.serve.catalog import Catalog
from sessionrec.serve.config import VariantSpec
from sessionrec.serve.rules import Filters, ItemRules, Mask, search

from .conftest import CATEGORY, SOLD_OUT, ids, train_model

EVENTS = "/v1/sessions/{}/events"


@pytest.fixture
def catalog_client(make_config, shop):
    def make(**overrides):
        overrides.setdefault("catalog", str(shop.catalog_csv))
        return TestClient(create_app(make_config(**overrides)))

    return make


def answer(client, items, k, **params):
    body = {"items": items, "k": k, **params}
    response = client.post("/v1/recommendations", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sources(payload):
    return [item["source"] for item in payload["items"]]


# ------------------------------------------------------ rules inside top-k
def test_available_only_keeps_k_model_items_instead_of_truncating(catalog_client):
    with catalog_client() as client:
        plain = answer(client, ["1"], 3)
        assert ids(plain) == ["2", "3", "4"]
        # 2 is sold out: the search goes deeper instead of returning two items
        filtered = answer(client, ["1"], 3, available_only=True)
        assert ids(filtered) == ["3", "4", "5"]
        assert sources(filtered) == ["model"] * 3 and filtered["fallback"] is False


def test_server_policy_available_only_applies_to_every_request(catalog_client):
    with catalog_client(available_only=True) as client:
        assert ids(answer(client, ["1"], 3)) == ["3", "4", "5"]
        event = client.post(EVENTS.format("p") + "?k=3", json={"item_id": "1"}).json()
        assert ids(event) == ["3", "4", "5"]
        assert client.get("/v1/info").json()["rules_active"] is True


def test_include_and_exclude_categories(catalog_client):
    with catalog_client() as client:
        shirts = answer(client, ["1"], 3, categories=["shirts"])
        # the model's only shirt after 1 is 5; then the most clicked other shirts
        assert ids(shirts) == ["5", "6", "7"]
        assert sources(shirts) == ["model", "popular", "popular"]
        no_shoes = answer(client, ["1"], 2, exclude_categories=["shoes"])
        assert ids(no_shoes) == ["5", "6"]
        by_query = client.get(
            "/v1/sessions/q/recommendations?k=2&category=hats&category=shirts"
        ).json()
        assert all(CATEGORY[int(i)] in ("hats", "shirts") for i in ids(by_query))


def test_request_filters_narrow_the_server_policy_and_never_widen_it(catalog_client):
    with catalog_client(include_categories=("shoes",)) as client:
        assert ids(answer(client, ["1"], 3)) == ["2", "3", "4"]
        assert answer(client, ["1"], 3, categories=["shirts"])["items"] == []


def test_deny_list(catalog_client, tmp_path):
    deny = tmp_path / "deny.txt"
    deny.write_text("# never again\n3\n\n")
    with catalog_client(deny=str(deny)) as client:
        assert ids(answer(client, ["1"], 3)) == ["2", "4", "5"]


def test_unlisted_items_excluded_by_default_or_allowed(make_config, shop, tmp_path):
    lines = shop.catalog_csv.read_text().splitlines()
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(line for line in lines if not line.startswith("4,")) + "\n")
    with TestClient(create_app(make_config(catalog=str(partial)))) as client:
        assert ids(answer(client, ["1"], 3)) == ["2", "3", "5"]
    with TestClient(create_app(make_config(catalog=str(partial), unlisted="allow"))) as client:
        assert ids(answer(client, ["1"], 3)) == ["2", "3", "4"]


def test_details_add_catalog_fields(catalog_client):
    with catalog_client() as client:
        payload = answer(client, ["1"], 1, details=True)
        (item,) = payload["items"]
        assert item["item_id"] == "2" and item["category"] == "shoes"
        assert item["available"] is False
        assert item["attributes"] == {"name": "Item 2", "price": 2.99}


# ---------------------------------------------------------------- fallbacks
def test_fallback_chain_same_category_first(catalog_client):
    with catalog_client() as client:
        # from 9 the model knows only 10; then the most clicked hats (ties by lower id)
        payload = answer(client, ["9"], 3)
        assert ids(payload) == ["10", "11", "12"]
        assert sources(payload) == ["model", "category", "category"]
        assert payload["fallback"] is True


def test_item_unknown_to_the_model_but_in_the_catalog_leads_to_its_category(catalog_client):
    with catalog_client() as client:
        payload = answer(client, ["13"], 3)  # a new hat: no clicks in training
        assert ids(payload) == ["9", "10", "11"]
        assert sources(payload) == ["category"] * 3


def test_unknown_everywhere_gets_global_popularity_with_rules(catalog_client):
    with catalog_client() as client:
        assert ids(answer(client, ["99"], 3)) == ["1", "5", "2"]
        # 2 is sold out; 3 has as many clicks as 2 and comes next
        assert ids(answer(client, ["99"], 3, available_only=True)) == ["1", "5", "3"]


def test_the_model_folder_counts_are_the_default_popularity(make_config):
    # Regression (issue 22 item 5): without --popularity this answer was empty.
    with TestClient(create_app(make_config(popularity=None))) as client:
        payload = answer(client, ["99"], 3)
        assert ids(payload) == ["1", "5", "2"] and payload["fallback"] is True


def test_fallback_is_empty_without_any_popularity_source(make_config, shop, tmp_path):
    # A folder saved before sessionrec kept counts, served without --popularity.
    old = tmp_path / "old-markov"
    shutil.copytree(shop.markov_dir, old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["files"][COUNTS]
    (old / MANIFEST).write_text(json.dumps(manifest))
    (old / COUNTS).unlink()
    config = make_config(popularity=None, variants=(VariantSpec("default", str(old)),))
    with TestClient(create_app(config)) as client:
        payload = answer(client, ["99"], 3)
        assert payload["items"] == [] and payload["fallback"] is False


def test_popularity_table_and_model_counts(make_config, shop, tmp_path):
    table = tmp_path / "pop.csv"
    table.write_text("item_id,count\n12,100\n11,50\n1,1\n")
    with TestClient(create_app(make_config(popularity=str(table)))) as client:
        assert ids(answer(client, ["99"], 3)) == ["12", "11", "1"]


def test_a_model_with_click_counts_needs_no_popularity_file(make_config, tmp_path):
    from sessionrec.serve.registry import ModelLoader

    pop_dir = train_model("pop", [[1, 2], [2, 3], [2]], tmp_path / "pop-model")
    loaded = ModelLoader(make_config(popularity=None)).load("default", str(pop_dir))
    assert loaded.rules.has_popularity
    order = loaded.model.vocab_.decode(loaded.rules.global_order)
    assert order == [2, 1, 3]  # 2 clicked three times, 1 and 3 once (ties by index)


# ------------------------------------------------------------------ catalogs
def _frame(shop) -> pl.DataFrame:
    return pl.read_csv(shop.catalog_csv)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl", ".csv.gz"])
def test_catalog_formats_load_the_same(shop, tmp_path, suffix):
    frame = _frame(shop)
    path = tmp_path / f"catalog{suffix}"
    if suffix == ".csv":
        frame.write_csv(path)
    elif suffix == ".tsv":
        frame.write_csv(path, separator="\t")
    elif suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".jsonl":
        frame.write_ndjson(path)
    else:
        path.write_bytes(gzip.compress(frame.write_csv().encode()))
    catalog = Catalog.read(path)
    assert len(catalog) == 13 and catalog.category_names == ("hats", "shirts", "shoes")
    unavailable = {int(catalog.ids[i]) for i in np.flatnonzero(~catalog.available)}
    assert unavailable == SOLD_OUT
    assert catalog.attributes(catalog.row_of["7"]) == {"name": "Item 7", "price": 7.99}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_synthetic_shop_catalog_is_accepted(tmp_path, suffix):
    frame = make_catalog(100, seed=0)
    path = tmp_path / f"shop{suffix}"
    {".csv": frame.write_csv, ".parquet": frame.write_parquet, ".jsonl": frame.write_ndjson}[
        suffix
    ](path)
    catalog = Catalog.read(path)
    assert len(catalog) == 100
    assert set(catalog.category_names) == set(frame["category"].to_list())
    assert int((~catalog.available).sum()) == int((~frame["available"]).sum())
    assert "name" in catalog.attribute_columns and catalog.popularity is not None


def test_catalog_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,category\n1,a\n")
    with pytest.raises(DataError, match="item_id"):
        Catalog.read(bad)
    bad.write_text("item_id,category\n1,a\n2,b\n1,c\n")
    with pytest.raises(DataError, match=r"bad.csv:4.*duplicate"):
        Catalog.read(bad)
    bad.write_text("item_id,available\n1,maybe\n")
    with pytest.raises(DataError, match="available"):
        Catalog.read(bad)
    with pytest.raises(DataError, match="unknown table format"):
        Catalog.read(tmp_path / "catalog.xlsx")


def test_category_rules_need_a_catalog(make_config):
    with pytest.raises(ConfigError, match="--catalog"):
        from sessionrec.serve.registry import ModelLoader

        ModelLoader(make_config(include_categories=("shoes",)))


# ------------------------------------------------ search equals brute force
def _brute_force(model, batch, k, exclude, allowed):
    scores = model.score(batch)
    scores[0, ~allowed] = -np.inf
    scores[0, exclude] = -np.inf
    return select_top_k(scores, k)[0]


@pytest.mark.parametrize("name", ["sr", "markov", "vsknn"])
def test_search_is_exactly_the_top_k_of_the_masked_scores(name):
    rng = np.random.default_rng(7)
    n_items = 300
    sessions = [rng.integers(0, n_items, size=rng.integers(2, 8)).tolist() for _ in range(3000)]
    model = create_model(name).fit(SessionData.from_sequences(sessions))
    checked_paths = set()
    for trial in range(60):
        share = [0.03, 0.3, 0.6, 0.97][trial % 4]
        allowed = rng.random(model.n_items) < share
        mask = Mask(allowed, np.flatnonzero(~allowed), float(allowed.mean()))
        session = rng.integers(0, model.n_items, size=rng.integers(1, 4)).astype(np.int32)
        batch = SessionBatch.from_sequences([session])
        exclude = rng.integers(0, model.n_items, size=rng.integers(0, 5)).astype(np.int64)
        k = int(rng.choice([1, 5, 20, 100]))
        got_idx, got_scores, fallback = search(model, batch, k, exclude, mask)
        want_idx, want_scores = _brute_force(model, batch, k, exclude, allowed)
        np.testing.assert_array_equal(got_idx, want_idx)
        np.testing.assert_array_equal(got_scores, want_scores)
        assert fallback == bool(model.fallback_mask(batch)[0])
        checked_paths.add(mask.allowed_share >= 0.5)
    assert checked_paths == {True, False}  # both the over-fetch and the exclusion path


def test_filters_merge():
    server = Filters(include_categories=frozenset({"a", "b"}), available_only=True)
    merged = server.merge(Filters(include_categories=frozenset({"b", "c"})))
    assert merged.include_categories == {"b"} and merged.available_only
    assert Filters().merge(Filters(exclude_categories=frozenset({"x"}))).exclude_categories == {"x"}


def test_item_rules_without_catalog_or_rules_have_no_mask():
    rules = ItemRules(ItemVocab([10, 20, 30]))
    assert rules.mask(Filters()) is None
    with pytest.raises(ConfigError, match="catalog"):
        rules.check_filters(Filters(include_categories=frozenset({"a"})))


def test_search_masks_by_exclusion_when_allowed_items_rank_too_deep():
    # A dense model (every item scored) whose best half is not allowed: two over-fetch
    # rounds find nothing, and the third call masks before selection.
    sessions = [[i] * (1 + (3000 - i) // 100) for i in range(3000)]
    model = create_model("pop").fit(SessionData.from_sequences(sessions))
    ranked = np.argsort(-model.popularity_, kind="stable")
    allowed = np.ones(model.n_items, dtype=bool)
    allowed[ranked[:1400]] = False
    mask = Mask(allowed, np.flatnonzero(~allowed), float(allowed.mean()))
    assert mask.allowed_share >= 0.5
    calls = []
    top_k = model.top_k

    def counting_top_k(batch, k, exclude=None):
        calls.append(k)
        return top_k(batch, k, exclude)

    model.top_k = counting_top_k  # type: ignore[method-assign]
    batch = SessionBatch.from_sequences([np.array([5], dtype=np.int32)])
    exclude = np.zeros(0, dtype=np.int64)
    got_idx, got_scores, _ = search(model, batch, 5, exclude, mask)
    want_idx, want_scores = _brute_force(model, batch, 5, exclude, allowed)
    np.testing.assert_array_equal(got_idx, want_idx)
    np.testing.assert_array_equal(got_scores, want_scores)
    assert len(calls) == 3 and calls[-1] == 5


def test_rules_of_a_grown_vocabulary_extend_the_previous_id_tables():
    old = ItemRules(ItemVocab(["a", "b", "c"]))
    grown = ItemRules(ItemVocab(["a", "b", "c", "d", "e"]), previous=old)
    fresh = ItemRules(ItemVocab(["a", "b", "c", "d", "e"]))
    assert grown._id_strings == fresh._id_strings
    assert grown._index_of == fresh._index_of
    assert old._index_of == {"a": 0, "b": 1, "c": 2}  # the serving rules are untouched
    other = ItemRules(ItemVocab(["x", "b", "c", "d"]), previous=old)  # not a growth of it
    assert other._index_of == {"x": 0, "b": 1, "c": 2, "d": 3}
