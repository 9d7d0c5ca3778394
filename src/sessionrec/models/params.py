"""Hyperparameter checks: each rejects a bad value with a :class:`ConfigError` naming it.

Models call these from ``__init__`` (scikit-learn style: store unchanged, reject out of range),
so a bad ``--param`` fails before any data is read.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError


def check_param(name: str, value: Any, ok: bool, expectation: str) -> None:
    """Raise :class:`ConfigError` naming the hyperparameter when ``ok`` is false."""
    if not ok:
        raise ConfigError(f"hyperparameter {name}={value!r} is invalid: {expectation}")


def check_int(name: str, value: Any, minimum: int = 1) -> None:
    """Accept only integers >= ``minimum``."""
    check_param(
        name,
        value,
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and bool(value >= minimum),
        f"expected an integer >= {minimum}",
    )


def check_float(
    name: str, value: Any, minimum: float | None = None, strict_min: bool = False
) -> None:
    """Accept only finite real numbers, optionally above a bound."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and bool(np.isfinite(value))
    if ok and minimum is not None:
        ok = value > minimum if strict_min else value >= minimum
    bound = "" if minimum is None else (f" {'>' if strict_min else '>='} {minimum}")
    check_param(name, value, ok, f"expected a finite number{bound}")


def check_choice(name: str, value: Any, choices: Collection[Any]) -> None:
    check_param(name, value, value in choices, f"expected one of {sorted(choices)}")


def check_fraction(name: str, value: Any) -> None:
    """Accept only a share strictly between 0 and 1 (e.g. a validation fraction)."""
    check_float(name, value, minimum=0.0, strict_min=True)
    check_param(name, value, value < 1.0, "expected < 1")
