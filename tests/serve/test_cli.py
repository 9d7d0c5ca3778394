"""``sessionrec serve`` / ``replay`` command lines: options, environment, one-line errors."""

from __future__ import annotations

import argparse

import pytest

from sessionrec._errors import ConfigError
from sessionrec.cli import main
from sessionrec.serve.cli import THREAD_VARIABLES, add_parsers, config_from_args
from sessionrec.serve.config import ServeConfig, VariantSpec


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    for name in THREAD_VARIABLES:  # cmd_serve sets them if missing; keep the test env clean
        monkeypatch.setenv(name, "1")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def error_line(capsys, *argv: str) -> str:
    assert main(list(argv)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("sessionrec: error: ")
    return lines[0]


def test_serve_options_build_the_config(shop):
    args = parse(
        "serve",
        str(shop.markov_dir),
        "--port",
        "9000",
        "--variant",
        f"b={shop.sr_dir}:0.5",
        "--store",
        "redis://127.0.0.1:6379/1",
        "--catalog",
        str(shop.catalog_csv),
        "--available-only",
        "--exclude-category",
        "hats",
        "--max-k",
        "100",
        "--no-exclude-seen",
    )
    config = config_from_args(args)
    assert config.host == "127.0.0.1" and config.port == 9000
    assert config.variants == (
        VariantSpec("default", str(shop.markov_dir), 1.0),
        VariantSpec("b", str(shop.sr_dir), 0.5),
    )
    assert config.store == "redis://127.0.0.1:6379/1" and config.available_only
    assert config.exclude_categories == ("hats",) and config.max_k == 100
    assert config.exclude_seen is False and config.session_ttl == 1800.0
    assert ServeConfig.from_json(config.to_json()) == config


def test_environment_gives_defaults_and_flags_win(monkeypatch, shop):
    monkeypatch.setenv("SESSIONREC_STORE", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SESSIONREC_WORKERS", "2")
    monkeypatch.setenv("SESSIONREC_PORT", "8123")
    config = config_from_args(parse("serve", str(shop.markov_dir), "--port", "8124"))
    assert config.store == "redis://127.0.0.1:1/0" and config.workers == 2
    assert config.port == 8124


def test_admin_token_is_read_from_the_environment_not_the_config(monkeypatch, shop):
    config = config_from_args(parse("serve", str(shop.markov_dir)))
    monkeypatch.delenv("SESSIONREC_ADMIN_TOKEN", raising=False)
    assert config.admin_token() is None
    monkeypatch.setenv("SESSIONREC_ADMIN_TOKEN", "xyz")
    assert config.admin_token() == "xyz" and "xyz" not in config.to_json()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--store", "mysql://x"], "--store"),
        (["--variant", "b"], "--variant expects"),
        (["--variant", "default=/x"], "unique"),
        (["--max-k", "0"], "--max-k"),
        (["--default-k", "50", "--max-k", "10"], "--default-k"),
        (["--catalog", "/nonexistent.csv"], "--catalog"),
        (["--include-category", "hats"], "--catalog"),
        (["--default-weight", "0"], "positive weight"),
    ],
)
def test_serve_errors_are_one_line(capsys, shop, extra, message):
    line = error_line(capsys, "serve", str(shop.markov_dir), *extra)
    assert message in line


def test_serve_refuses_a_missing_or_broken_model_folder(capsys, tmp_path):
    assert "does not exist" in error_line(capsys, "serve", str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    assert "not a model folder" in error_line(capsys, "serve", str(tmp_path / "empty"))


def test_replay_argument_errors(capsys, tmp_path):
    assert "-k" in error_line(capsys, "replay", str(tmp_path / "t.txt"), "-k", "0")
    assert "cannot read" in error_line(capsys, "replay", str(tmp_path / "t.txt"))


def test_config_validation():
    spec = (VariantSpec("default", "/m"),)
    with pytest.raises(ConfigError, match="--unlisted"):
        ServeConfig(variants=spec, unlisted="maybe")
    with pytest.raises(ConfigError, match="--reload-interval"):
        ServeConfig(variants=spec, reload_interval=-1)
    with pytest.raises(ConfigError, match="variant name"):
        VariantSpec("a b", "/m")
    with pytest.raises(ConfigError, match="SESSIONREC_SERVE_CONFIG"):
        ServeConfig.from_env()


def test_main_cli_has_the_serve_and_replay_commands(capsys):
    """The hook in ``sessionrec.cli.build_parser`` (``add_serve_parsers(sub)``)."""
    from sessionrec.cli import main as sessionrec_main

    for command in ("serve", "replay"):
        with pytest.raises(SystemExit) as exit_info:
            sessionrec_main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: sessionrec " + command in capsys.readouterr().out
