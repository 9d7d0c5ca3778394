"""Which device a neural model trains and scores on, from one string.

Torch-free at import: the hyperparameter checks (:data:`DEVICE_PATTERN`) run when a model is
constructed, where torch may not be installed; torch is imported when a device is resolved.
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

from sessionrec._errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
"""Accepted ``device`` values: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``."""


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    import torch

    if not DEVICE_PATTERN.match(name):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
    return device


def load_device(name: str) -> torch.device:
    """:func:`resolve_device` for loading a saved model: the CPU when the device is missing.

    A model trained on a GPU must still load where there is none (a CPU-only service).
    """
    import torch

    try:
        return resolve_device(name)
    except ConfigError as exc:
        warnings.warn(f"{exc}; loading the model on the CPU", UserWarning, stacklevel=5)
        return torch.device("cpu")
