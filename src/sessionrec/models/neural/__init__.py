"""Neural session models, trained with PyTorch (the optional ``torch`` extra).

Importing this package never imports torch: a model class can be registered, constructed
and listed without it, and only fitting or loading one needs torch (a :class:`ConfigError`
tells how to install it). What the models share lives beside them:

- :mod:`~sessionrec.models.neural.trainer`: device choice, seeding, session-parallel batches,
  the Adagrad-with-momentum optimiser, the epoch loop with early stopping and NaN detection;
- :mod:`~sessionrec.models.neural.losses`: cross-entropy (with logQ correction) and BPR-max;
- :mod:`~sessionrec.models.neural.sampling`: popularity^alpha negative sampling.
"""

from __future__ import annotations

import importlib.util
import re

from sessionrec._errors import ConfigError

LOSSES: tuple[str, ...] = ("cross-entropy", "bpr-max")
"""Training losses of the sampled-score models (see :mod:`~sessionrec.models.neural.losses`)."""

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
"""Accepted ``device`` values: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``."""


def torch_available() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["torch"] = None
        return False


def require_torch(model: str) -> None:
    """Raise a :class:`ConfigError` that says how to install torch when it is missing."""
    if not torch_available():
        raise ConfigError(
            f"model {model!r} needs PyTorch, which is not installed: "
            "pip install 'sessionrec[torch]'"
        )
