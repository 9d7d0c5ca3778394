import io

from sessionrec.data.synthetic import generate_shop
from sessionrec.demo import category_share, run_demo
from sessionrec.models.base import Recommender


def test_demo_runs_the_whole_loop_and_recommends_sportswear(tmp_path):
    out = io.StringIO()
    result = run_demo(n_events=60_000, seed=3, model_name="sr", output=tmp_path / "m", out=out)
    model = result.model
    text = out.getvalue()
    assert "next-item accuracy" in text and "sr recommends" in text
    assert "Running Shoes ->" in text
    shop = generate_shop(n_events=60_000, seed=3)
    (recs,) = model.recommend([shop.demo_session()], k=10, exclude_seen=True)
    assert len(recs) == 10
    assert category_share(recs, shop.catalog, "sportswear/fitness") >= 0.9
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.recommend([shop.demo_session()], k=10, exclude_seen=True) == [recs]


def test_demo_beats_popularity():
    result = run_demo(n_events=60_000, seed=1, model_name="itemknn", out=io.StringIO())
    assert set(result.metrics) == {"pop", "itemknn"}
    assert result.metrics["itemknn"]["n_cases"] == result.metrics["pop"]["n_cases"] > 500
    assert result.metrics["itemknn"]["hr@20"] > 2 * result.metrics["pop"]["hr@20"]
