"""``sessionrec serve`` / ``replay`` command lines: options, environment, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sessionrec._errors import ConfigError
from sessionrec.cli import main
from sessionrec.serve.cli import THREAD_VARIABLES, add_parsers, config_from_args
from sessionrec.serve.config import ServeConfig, VariantSpec

from .conftest import THREADS_ENV, free_port


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


def corrupt_copy(model_dir: Path, target: Path) -> Path:
    """A copy of a model folder whose ``state.npz`` is cut short (a broken download)."""
    shutil.copytree(model_dir, target)
    state = target / "state.npz"
    state.write_bytes(state.read_bytes()[:40])
    return target


def test_serve_refuses_a_corrupt_model_in_one_line_before_uvicorn(tmp_path, shop):
    """Issue 22: the worker's lifespan failed instead: a 34-line traceback and exit 3."""
    broken = corrupt_copy(shop.markov_dir, tmp_path / "broken")
    result = subprocess.run(
        [sys.executable, "-m", "sessionrec", "serve", str(broken), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **THREADS_ENV},
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"sessionrec: error: {broken / 'state.npz'}: checksum mismatch "
        "(the file is corrupt or was modified)"
    ]


def test_serve_refuses_a_corrupt_variant_in_one_line(capsys, tmp_path, shop):
    broken = corrupt_copy(shop.sr_dir, tmp_path / "broken")
    line = error_line(capsys, "-q", "serve", str(shop.markov_dir), "--variant", f"b={broken}")
    assert "checksum mismatch" in line and str(broken) in line


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_checks_the_port_before_loading_the_models(capsys, tmp_path, shop, busy_port):
    """A busy port is named before the models load (a corrupt model is never reached)."""
    broken = corrupt_copy(shop.markov_dir, tmp_path / "broken")
    for folder in (shop.markov_dir, broken):
        line = error_line(capsys, "serve", str(folder), "--port", str(busy_port))
        assert f"cannot listen on 127.0.0.1:{busy_port}" in line and "--port" in line


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SESSIONREC_PORT", "abc", "SESSIONREC_PORT='abc' is invalid"),
        ("SESSIONREC_WORKERS", "two", "SESSIONREC_WORKERS='two' is invalid"),
        ("SESSIONREC_AVAILABLE_ONLY", "maybe", "SESSIONREC_AVAILABLE_ONLY='maybe' is invalid"),
        ("SESSIONREC_LOG_LEVEL", "verbose", "--log-level must be one of"),
        ("SESSIONREC_UNLISTED", "maybe", "--unlisted must be"),
        ("SESSIONREC_STORE", "mysql://x", "--store"),
    ],
)
def test_bad_environment_variables_are_one_line(
    capsys, monkeypatch, shop, variable, value, message
):
    monkeypatch.setenv(variable, value)
    assert message in error_line(capsys, "serve", str(shop.markov_dir), "--port", "1")


def test_bad_inputs_of_the_service_are_one_line(capsys, tmp_path, shop):
    no_id = tmp_path / "catalog.csv"
    no_id.write_text("sku,category\n1,shoes\n")
    binary = tmp_path / "popularity.txt"
    binary.write_bytes(b"\xff\xfe\x00 1 2\n")
    counts = tmp_path / "counts.csv"
    counts.write_text("item_id,count\n1,many\n")
    model = str(shop.markov_dir)
    port = str(free_port())
    cases = [
        (["--catalog", str(no_id)], "no 'item_id' column"),
        (["--popularity", str(binary)], "cannot read sessions file"),
        (["--popularity", str(counts)], "expected a number"),
        (["--popularity", str(tmp_path)], "--popularity"),
        (["--deny", str(binary)], "cannot read id list"),
        (["--variant", "b=" + model + ":-1"], "weight must be finite and >= 0"),
        (["--variant", "b c=" + model], "variant name 'b c' is invalid"),
        (["--variant", "b=" + str(no_id)], "model folder"),
    ]
    for extra, message in cases:
        assert message in error_line(capsys, "-q", "serve", model, "--port", port, *extra)


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


def test_serve_warns_when_the_popularity_file_is_other_training_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sessionrec.data.sessions import SessionData
    from sessionrec.models.registry import create_model
    from sessionrec.serve.cli import warn_other_training_data

    model = create_model("pop").fit(SessionData.from_sequences([["a", "b"], ["b", "c"]]))
    same = tmp_path / "same" / "train_sessions.txt"
    other = tmp_path / "other" / "train_sessions.txt"
    for path, text in ((same, "a b\nb c\n"), (other, "x y\ny z\n")):
        path.parent.mkdir()
        path.write_text(text)
    caplog.set_level(logging.WARNING, logger="sessionrec")
    warn_other_training_data(model, "default", str(same))
    warn_other_training_data(model, "default", None)
    assert caplog.text == ""
    warn_other_training_data(model, "default", str(other))
    assert f"serving with --popularity {other}" in caplog.text
    assert "variant default was trained on other data" in caplog.text
