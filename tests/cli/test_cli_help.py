"""``--help`` of every subcommand: every option explained, every default shown."""

from __future__ import annotations

import argparse

import pytest

from sessionrec.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [a for a in parser._actions if not isinstance(a, skip)]


def _shows_a_default(action: argparse.Action) -> bool:
    """Options whose default says something: not None, not an empty list, not a flag off."""
    default = action.default
    if default is None or default is argparse.SUPPRESS or default == []:
        return False
    return not (action.nargs == 0 and not default)


def _help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The option's help as ``--help`` prints it, on one line."""
    formatter = parser._get_formatter()
    return " ".join(formatter._expand_help(action).split())  # type: ignore[attr-defined]


def test_every_option_of_every_subcommand_has_help_and_shows_its_default() -> None:
    # Before: 31 options without help (serve's limits, prepare's filters, evaluate --ties,
    # recommend -k, ...), and no default shown unless a help text spelled it out.
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"prepare", "train", "evaluate", "tune", "report", "serve", "replay"} <= set(commands)
    problems = []
    for name, sub in [("sessionrec", parser), *commands.items()]:
        for action in _options(sub):
            flag = "/".join(action.option_strings) or action.dest
            if not action.help:
                problems.append(f"{name} {flag}: no help")
                continue
            if _shows_a_default(action):
                text = _help_text(sub, action)
                if f"(default: {action.default})" not in text:
                    problems.append(f"{name} {flag}: default {action.default!r} not shown")
    assert problems == []


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("evaluate", ["--cutoffs CUTOFFS comma-separated K values (default: 5,10,20)"]),
        ("recommend", ["-k K number of recommendations (default: 10)"]),
        ("tune", ["(default: mrr@20)", "(default: 0.1)", "default: 50 when --time-budget"]),
        (
            "prepare",
            [
                "(default: 5)",  # --min-item-support
                "last N days become the test set (default: the preset's standard test period",
                "(default: end)",
            ],
        ),
        ("serve", ["(default: 100000)", "(default: 8000)", "(default: info)"]),
    ],
)
def test_help_prints_the_defaults(
    capsys: pytest.CaptureFixture[str], command: str, expected: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for part in expected:
        assert part in text, part


def test_flags_that_are_off_and_empty_lists_show_no_default() -> None:
    serve = _subparsers(build_parser())["serve"]
    by_flag = {a.option_strings[0]: a for a in _options(serve) if a.option_strings}
    for flag in ("--available-only", "--variant", "--include-category"):
        assert "(default" not in _help_text(serve, by_flag[flag]), flag


def test_no_exclude_seen_says_what_it_does() -> None:
    serve = _subparsers(build_parser())["serve"]
    by_flag = {a.option_strings[0]: a for a in _options(serve) if a.option_strings}
    keep = _help_text(serve, by_flag["--no-exclude-seen"])
    assert keep.startswith("keep the session's own items among the recommendations")
    assert "removed unless the model recommends repeats" in keep  # what neither flag does
    remove = _help_text(serve, by_flag["--exclude-seen"])
    assert remove.startswith("remove the session's own items")
