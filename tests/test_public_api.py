"""The public API: what ``from sessionrec import *`` promises, and the README example."""

import subprocess
import sys

import sessionrec


def test_all_names_exist_and_are_unique():
    assert len(set(sessionrec.__all__)) == len(sessionrec.__all__)
    for name in sessionrec.__all__:
        assert hasattr(sessionrec, name), name


def test_all_matches_the_documented_surface():
    expected = {
        "read_events",
        "prepare",
        "SessionData",
        "ItemVocab",
        "create_model",
        "Recommender",
        "Reason",
        "load_model",
        "evaluate",
        "generate_shop",
        "DataError",
        "ConfigError",
        "ModelError",
    }
    assert expected <= set(sessionrec.__all__)


def test_readme_python_example_runs_end_to_end(tmp_path):
    shop = sessionrec.generate_shop(n_events=30_000, seed=2)
    data = sessionrec.prepare(shop.clicks.drop("session_id"), valid_days=1)
    model = sessionrec.create_model("sr", {"steps": 10}).fit(data.train, data.valid)
    result = sessionrec.evaluate(model, data.valid, cutoffs=(20,))
    assert result.metrics()["n_cases"] > 0
    (recs,) = model.recommend([shop.demo_session()], k=5, exclude_seen=True)
    assert 0 < len(recs) <= 5 and all(r.item_id not in shop.demo_session() for r in recs)
    path = model.save(tmp_path / "sr")
    same = sessionrec.load_model(path)
    assert same.recommend([shop.demo_session()], k=5, exclude_seen=True) == [recs]


def test_import_does_not_need_optional_extras():
    code = (
        "import sys, sessionrec; sys.exit(int('torch' in sys.modules or 'fastapi' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
