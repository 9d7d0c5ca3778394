"""New catalog items (never clicked, unknown to the model) shown for related sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sessionrec._errors import ConfigError
from sessionrec.serve.app import create_app
from sessionrec.serve.catalog import Catalog
from sessionrec.serve.new_items import NewItems, words

from .conftest import ids

EVENTS = "/v1/sessions/{}/events"

CATALOG = """item_id,name,category,brand,colour,price,available
1,Trail Runner Shoe,shoes,acme,red,50,true
2,Road Runner Shoe,shoes,zoom,blue,60,true
3,Wool Hat,hats,acme,red,10,true
n1,Trail Runner Shoe II,shoes,acme,red,55,true
n2,Road Racer,shoes,zoom,green,70,true
n3,Summer Sandal,shoes,other,white,20,true
n4,Red Beanie,hats,acme,red,12,true
n5,Trail Runner Shoe Pro,shoes,acme,red,90,false
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "catalog.csv"
    path.write_text(CATALOG)
    return Catalog.read(path)


def new_items(catalog: Catalog) -> NewItems:
    return NewItems(catalog, np.array([3, 4, 5, 6, 7]))  # rows of n1..n5


def test_words_are_lower_case_letters_and_digits():
    assert words("Trail-Runner  Shoe II!") == {"trail", "runner", "shoe", "ii"}
    assert words(None) == frozenset()


def test_candidates_rank_by_category_attributes_and_name(catalog):
    found = new_items(catalog).candidates(["1"], 5, lambda row: True)
    # all new shoes; n1 and n5 share brand and colour with item 1 (2/2) and 3 of 4 words
    # ("trail runner shoe" + "ii"/"pro": Jaccard 3/4); n2 shares no attribute and no word
    # ("road racer" against "trail runner shoe": 0/5); n3 nothing either
    assert [item for item, _ in found] == ["n1", "n5", "n2", "n3"]
    assert found[0][1] == pytest.approx((1.0 + 1.0 + 3 / 4) / 3)
    assert found[2][1] == pytest.approx(1.0 / 3)  # the category alone


def test_the_most_recent_category_weighs_most_and_rules_are_obeyed(catalog):
    finder = new_items(catalog)
    # clicked a shoe (2: zoom, blue) then a hat (3: acme, red): the hats weigh 1, the shoes
    # 1/2. n4 (hat, acme, red): (1 + 2/2 + 0) / 3; n1 (shoe, acme, red, shares "runner" and
    # "shoe" of 7 words): (1/2 + 2/2 + 2/7) / 3
    found = finder.candidates(["2", "3"], 2, lambda row: True)
    assert found == [
        ("n4", pytest.approx(2 / 3)),
        ("n1", pytest.approx((0.5 + 1 + 2 / 7) / 3)),
    ]
    # a rule that rules out n1 (e.g. the deny list) leaves it out
    found = finder.candidates(["1"], 1, lambda row: catalog.ids[row] != "n1")
    assert found == [("n5", pytest.approx((1.0 + 1.0 + 3 / 4) / 3))]
    assert finder.candidates(["unknown"], 3, lambda row: True) == []


@pytest.fixture
def new_item_client(make_config, shop):
    config = make_config(catalog=str(shop.catalog_csv), new_item_share=0.5)
    with TestClient(create_app(config)) as client:
        yield client


def test_a_new_hat_is_shown_to_a_hat_session_and_says_so(new_item_client):
    client = new_item_client
    # item 13 is a hat in the catalog that the model never saw (conftest)
    answer = client.post(EVENTS.format("hats") + "?k=2&explain=true", json={"item_id": "9"})
    answer = answer.json()
    assert ids(answer) == ["10", "13"]  # from 9 the model knows 10; one place (0.5 * 2) left
    assert [i["source"] for i in answer["items"]] == ["model", "new_item"]
    assert answer["items"][1]["reason"]["kind"] == "new_item"
    assert answer["fallback"] is False
    details = client.get("/v1/sessions/hats/recommendations?k=2&details=true").json()
    assert details["items"][1]["category"] == "hats"
    # no new shoes: a shoe session gets none; k=1 leaves no place (floor(0.5 * 1) = 0)
    shoes = client.post(EVENTS.format("shoes") + "?k=4", json={"item_id": "1"}).json()
    assert "new_item" not in [i["source"] for i in shoes["items"]]
    assert ids(client.get("/v1/sessions/hats/recommendations?k=1").json()) == ["10"]
    # request filters apply to new items too
    filtered = client.get("/v1/sessions/hats/recommendations?k=2&exclude_category=hats").json()
    assert "13" not in ids(filtered)
    assert client.get("/v1/info").json()["defaults"]["new_item_share"] == 0.5


def test_without_the_option_new_items_never_appear(make_config, shop):
    with TestClient(create_app(make_config(catalog=str(shop.catalog_csv)))) as client:
        answer = client.post(EVENTS.format("h") + "?k=10", json={"item_id": "9"}).json()
        assert "13" not in ids(answer)


def test_the_share_is_checked(make_config, shop):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        make_config(catalog=str(shop.catalog_csv), new_item_share=1.5)
    with pytest.raises(ConfigError, match="needs --catalog"):
        make_config(new_item_share=0.2)
