"""One error hierarchy for the whole package.

Every error a user can cause (bad file, bad parameter, bad model folder) is a
:class:`SessionrecError`; the CLI turns it into one clear line and a non-zero exit
instead of a traceback.
"""

from __future__ import annotations


class SessionrecError(Exception):
    """Base class of every error sessionrec raises on purpose."""


class DataError(SessionrecError, ValueError):
    """Input data is malformed: names the file, line and field where it can."""


class ConfigError(SessionrecError, ValueError):
    """A parameter, option or preset is unknown or out of range."""


class ModelError(SessionrecError):
    """A model cannot be used: not fitted, diverged, or a broken/incompatible artifact."""


class NotFittedError(ModelError):
    """A model method that needs ``fit`` was called before it."""


def data_error(
    message: str, *, path: object = None, line: int | None = None, field: str | None = None
) -> DataError:
    """Build a :class:`DataError` whose text starts with ``file:line: field``."""
    where = []
    if path is not None:
        where.append(str(path) + (f":{line}" if line is not None else ""))
    elif line is not None:
        where.append(f"line {line}")
    if field is not None:
        where.append(f"field '{field}'")
    prefix = ", ".join(where)
    return DataError(f"{prefix}: {message}" if prefix else message)
