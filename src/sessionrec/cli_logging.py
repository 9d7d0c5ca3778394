"""The command line's logging: one stderr handler for the ``sessionrec`` loggers, Python
warnings shown as log lines, and a warning that is both warned and logged printed once."""

from __future__ import annotations

import collections
import logging
import sys
import warnings
from typing import Any

__all__ = ["WarningsOnce", "configure_logging"]

log = logging.getLogger("sessionrec")


class WarningsOnce(logging.Filter):
    """Print a warning that sessionrec both logs and raises as a Python warning once.

    The library does both for some warnings (GRU4Rec's clamped ``n_sample``), because a
    Python user may watch either; the command line shows Python warnings as log lines
    (:func:`configure_logging`), so the second copy of the same text is dropped. Only those
    copies: a message logged again later, e.g. by a running service, still prints.
    """

    def __init__(self) -> None:
        super().__init__()
        self.warned: set[str] = set()  # texts of Python warnings shown
        self.logged: collections.deque[str] = collections.deque(maxlen=64)  # recent log texts

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if getattr(record, "python_warning", False):
            if text in self.logged:
                return False
            self.warned.add(text)
            return True
        if text in self.warned:
            return False
        self.logged.append(text)
        return True


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log the ``sessionrec`` loggers to stderr (``quiet``: errors only; ``verbose``: debug),
    with Python warnings as log lines and each warning printed once (:class:`WarningsOnce`)."""
    level = logging.ERROR if quiet else logging.DEBUG if verbose > 0 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WarningsOnce())
    root = logging.getLogger("sessionrec")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

    def show_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        # one log line like every other message, not Python's two-line form
        log.warning("%s", message, extra={"python_warning": True})

    warnings.showwarning = show_warning
