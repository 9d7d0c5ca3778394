"""The hooks in tests/conftest.py: under SESSIONREC_REQUIRE_EXTRAS=1 an importorskip fails.

Each case runs pytest in a fresh process on a small generated test file, with a copy of this
repository's tests/conftest.py beside it, and checks the outcomes pytest counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

MISSING = "sessionrec_no_such_module"

# One test of each kind; only the importorskip ones depend on the switch.
TESTS = f"""
import pytest


@pytest.fixture
def needs_missing():
    pytest.importorskip("{MISSING}")


def test_importorskip_at_run_time():
    pytest.importorskip("{MISSING}")


def test_importorskip_with_its_own_reason():
    pytest.importorskip("{MISSING}", reason="install the extra")


def test_importorskip_with_a_version_not_met():
    pytest.importorskip("json", minversion="99")


def test_importorskip_in_a_fixture(needs_missing):
    pass


def test_importorskip_of_an_installed_module():
    assert pytest.importorskip("json").loads("[1]") == [1]


def test_a_plain_skip_stays_a_skip():
    pytest.skip("not about a dependency")


@pytest.mark.skipif(True, reason="a condition")
def test_a_skip_marker_stays_a_skip():
    pass
"""

MODULE_LEVEL = f"""
import pytest

pytest.importorskip("{MISSING}")


def test_never_runs():
    pass
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str | None):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_cases=TESTS)
    if required is None:
        monkeypatch.delenv("SESSIONREC_REQUIRE_EXTRAS", raising=False)
    else:
        monkeypatch.setenv("SESSIONREC_REQUIRE_EXTRAS", required)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")


@pytest.mark.parametrize("required", [None, "0"])
def test_without_the_switch_a_missing_module_skips(pytester, monkeypatch, required):
    result = run(pytester, monkeypatch, required)
    result.assert_outcomes(passed=1, skipped=6)


def test_with_the_switch_every_importorskip_fails(pytester, monkeypatch):
    result = run(pytester, monkeypatch, "1")
    result.assert_outcomes(passed=1, failed=3, errors=1, skipped=2)
    required = " (required: SESSIONREC_REQUIRE_EXTRAS=1)"
    for line in [
        "*_ test_importorskip_at_run_time _*",
        f"could not import '{MISSING}': No module named '{MISSING}'{required}",
        "*_ test_importorskip_with_its_own_reason _*",
        f"install the extra{required}",
        "*_ test_importorskip_with_a_version_not_met _*",
        f"module 'json' has __version__ *, required is: '99'{required}",
        "*_ ERROR at setup of test_importorskip_in_a_fixture _*",
        "SKIPPED * not about a dependency",
        "SKIPPED * a condition",
    ]:
        result.stdout.fnmatch_lines([line])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_with_the_switch_a_module_level_importorskip_fails_collection(pytester, monkeypatch):
    pytester.makepyfile(test_module_level=MODULE_LEVEL)
    result = run(pytester, monkeypatch, "1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR collecting test_module_level.py _*",
            f"could not import '{MISSING}': * (required: SESSIONREC_REQUIRE_EXTRAS=1)",
        ]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_without_the_switch_a_module_level_importorskip_skips_the_file(pytester, monkeypatch):
    pytester.makepyfile(test_module_level=MODULE_LEVEL)
    result = run(pytester, monkeypatch, None)
    result.assert_outcomes(passed=1, skipped=7)
    assert result.ret == pytest.ExitCode.OK
