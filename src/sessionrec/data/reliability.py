"""How many test cases a split needs before its metrics mean something.

HR@20 on a few dozen cases moves by several points when one case changes (on 14 cases one
hit is 7 points), so differences between models, or with published numbers, are noise
there. :func:`small_test_warning` says so; ``prepare``, ``evaluate`` and results files use
it, so the warning reads the same everywhere.
"""

from __future__ import annotations

__all__ = ["MIN_RELIABLE_CASES", "SMALL_TEST_NOTE", "small_test_warning"]

MIN_RELIABLE_CASES = 1000
"""Fewer test cases than this and HR/MRR are noise (one case is over 0.1 points)."""

SMALL_TEST_NOTE = "(too few test cases: the metrics are noise)"
"""Printed beside the case count of a command's text output when the warning applies."""


def small_test_warning(n_cases: int) -> str | None:
    """The warning for a test set of ``n_cases`` cases, or ``None`` when it has enough."""
    if n_cases >= MIN_RELIABLE_CASES:
        return None
    return (
        f"only {n_cases} test case(s), fewer than {MIN_RELIABLE_CASES:,}: metrics from so few "
        "cases are noise, not a measurement (use more test days or a larger log)"
    )
