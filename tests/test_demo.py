import io
import socket

import polars as pl
import pytest

from sessionrec._errors import ConfigError
from sessionrec.cli import main
from sessionrec.data.synthetic import generate_shop
from sessionrec.demo import (
    CATALOG_COLUMNS,
    category_share,
    check_port_free,
    default_demo_dir,
    demo_config,
    run_demo,
)
from sessionrec.models.registry import load_model


def test_demo_runs_the_whole_loop_and_saves_two_models_and_the_catalog(tmp_path):
    out = io.StringIO()
    folder = tmp_path / "demo"
    result = run_demo(n_events=60_000, seed=3, model_name="sr", output=folder, out=out)
    model = result.model
    text = out.getvalue()
    assert "next-item accuracy" in text and "sr recommends" in text
    assert "Running Shoes ->" in text
    assert set(result.metrics) == {"pop", "sr", "vsknn"}
    assert list(result.models) == ["sr", "vsknn"] and result.folder == folder
    shop = generate_shop(n_events=60_000, seed=3)
    session = shop.demo_session()
    for name in ("sr", "vsknn"):  # both served models recommend sportswear
        (recs,) = result.models[name].recommend([session], k=10, exclude_seen=True)
        assert len(recs) == 10
        assert category_share(recs, shop.catalog, "sportswear/fitness") >= 0.9
        loaded = load_model(folder / "models" / name)
        assert loaded.recommend([session], k=10, exclude_seen=True) == [recs]
    (recs,) = model.recommend([session], k=10, exclude_seen=True)
    assert recs == result.models["sr"].recommend([session], k=10, exclude_seen=True)[0]

    catalog = pl.read_csv(folder / "catalog.csv")
    assert tuple(catalog.columns) == CATALOG_COLUMNS
    assert catalog.equals(shop.catalog.select(CATALOG_COLUMNS))
    assert not [p.name for p in folder.rglob("*") if p.name.startswith(".")]  # no temporaries

    config = demo_config(folder, port=8123)
    assert [(v.name, v.path, v.weight) for v in config.variants] == [
        ("sr", str(folder / "models" / "sr"), 1.0),
        ("vsknn", str(folder / "models" / "vsknn"), 1.0),
    ]
    assert config.catalog == str(folder / "catalog.csv") and config.port == 8123
    assert [v.name for v in demo_config(folder, variants=["vsknn"]).variants] == ["vsknn"]


def test_demo_beats_popularity():
    result = run_demo(
        n_events=60_000, seed=1, model_name="itemknn", out=io.StringIO(), ab_model=None
    )
    assert set(result.metrics) == {"pop", "itemknn"}
    assert result.metrics["itemknn"]["n_cases"] == result.metrics["pop"]["n_cases"] > 500
    assert result.metrics["itemknn"]["hr@20"] > 2 * result.metrics["pop"]["hr@20"]


def test_demo_command_without_serving_prints_the_report_and_writes_the_folder(tmp_path, capsys):
    folder = tmp_path / "demo"
    argv = ["demo", "--events", "30000", "--seed", "2", "--output", str(folder), "--no-serve"]
    assert main([*argv, "--ab-model", "none"]) == 0
    text = capsys.readouterr().out
    assert "sr recommends" in text and f"saved to {folder}" in text and "http://" not in text
    assert [p.name for p in (folder / "models").iterdir()] == ["sr"]
    assert (folder / "catalog.csv").is_file()


def test_demo_folder_defaults_to_the_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("SESSIONREC_DEMO_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_demo_dir() == tmp_path / "cache" / "sessionrec" / "demo"
    monkeypatch.setenv("SESSIONREC_DEMO_DIR", str(tmp_path / "mine"))
    assert default_demo_dir() == tmp_path / "mine"


def test_serving_needs_a_demo_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a demo folder"):
        demo_config(tmp_path)


def test_a_busy_port_fails_before_any_training(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*--port"):
            check_port_free("127.0.0.1", port)
        status = main(["demo", "--output", str(tmp_path / "d"), "--port", str(port)])
    assert status == 1
    captured = capsys.readouterr()
    assert "--port" in captured.err and captured.out == ""
    assert not (tmp_path / "d").exists()
