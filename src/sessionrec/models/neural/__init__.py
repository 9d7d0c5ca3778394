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
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from sessionrec.data.sessions import SessionData

from sessionrec._errors import ConfigError, ModelError
from sessionrec.models.base import SessionBatch
from sessionrec.models.params import check_choice, check_float, check_int, check_param

LOSSES: tuple[str, ...] = ("cross-entropy", "bpr-max")
"""Training losses of the sampled-score models (see :mod:`~sessionrec.models.neural.losses`)."""

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
"""Accepted ``device`` values: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``."""

SELECTION_METRICS: tuple[str, ...] = ("hr@20", "mrr@20")
"""Validation metrics that select the epoch (``selection_metric``)."""


def check_training_params(
    *,
    n_epochs: Any,
    patience: Any,
    valid_fraction: Any,
    selection_metric: Any,
    seed: Any,
    device: Any,
    max_train_seconds: Any = None,
) -> None:
    """Check the hyperparameters every neural model has, with the same messages."""
    check_int("n_epochs", n_epochs)
    check_int("patience", patience, minimum=0)
    check_float("valid_fraction", valid_fraction, minimum=0.0)
    check_param("valid_fraction", valid_fraction, valid_fraction < 1.0, "expected [0, 1)")
    check_choice("selection_metric", selection_metric, SELECTION_METRICS)
    check_int("seed", seed, minimum=0)
    check_param(
        "device",
        device,
        isinstance(device, str) and bool(DEVICE_PATTERN.match(device)),
        "expected 'auto', 'cpu', 'cuda' or 'cuda:N'",
    )
    if max_train_seconds is not None:
        check_float("max_train_seconds", max_train_seconds, minimum=0.0, strict_min=True)


def refit_params(params: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """The hyperparameters that train a setting again once validation has chosen its epochs.

    ``epochs`` epochs on all the data: no validation split (the split's sessions are the
    most recent, the nearest to what the model will be asked) and no time budget (the count
    is fixed). The benchmark protocol's last step; the GRU4Rec protocol's ``train_full``.
    """
    check_int("epochs", epochs)
    return {**params, "n_epochs": int(epochs), "valid_fraction": 0.0, "max_train_seconds": None}


def count_scoring(
    counts: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the training clicks per item decide for scoring, as tensors on ``device``.

    ``(fallback, unseen, bias)``: the popularity row that scores a session without a known
    click (the counts, ``-inf`` for unseen items), the unseen items' indices (an index, not
    a mask: ``index_fill_`` touches only those columns, 7x faster here), and the serving
    bias of :mod:`~sessionrec.models.neural.quantized_serving` (0, ``-inf`` for unseen).
    """
    import torch

    seen = counts > 0
    fallback = np.where(seen, counts.astype(np.float32), -np.inf).astype(np.float32)
    bias = np.where(seen, 0.0, -np.inf).astype(np.float32)
    return (
        torch.as_tensor(fallback, device=device),
        torch.as_tensor(np.flatnonzero(~seen), device=device),
        torch.as_tensor(bias, device=device),
    )


def fit_or_forget(model: Any, fitted: tuple[str, ...], train: Callable[[], None]) -> None:
    """Run ``train()``; when it raises, drop ``fitted`` attributes (and the vocabulary) first.

    A diverged or interrupted fit leaves no half-trained model behind to evaluate or save.
    """
    try:
        train()
    except BaseException:
        for attr in (*fitted, "vocab_", "data_fingerprint_"):
            model.__dict__.pop(attr, None)
        raise


def record_history(model: Any, reports: Sequence[Any], best_epoch: int) -> None:
    """Keep a fit's per-epoch reports (:class:`trainer.EpochReport`) as fitted arrays.

    ``epoch_losses_``, ``epoch_seconds_``, ``epoch_examples_``, ``epoch_valid_`` (NaN for an
    epoch without validation) and ``best_epoch_``, as every neural model saves them.
    """
    model.epoch_losses_ = np.array([r.loss for r in reports])
    model.epoch_seconds_ = np.array([r.seconds for r in reports])
    model.epoch_examples_ = np.array([r.n_examples for r in reports], dtype=np.int64)
    model.epoch_valid_ = np.array([np.nan if r.valid is None else r.valid for r in reports])
    model.best_epoch_ = best_epoch


class ValidationCases:
    """The next-click cases of a validation split, sorted by prefix length, and their score.

    Sorting keeps scoring chunks of similar length together, so little padding is computed;
    the order changes no HR or MRR. Targets the model was not trained on stay in (misses).
    """

    def __init__(self, valid: SessionData) -> None:
        from sessionrec.evaluation.protocol import make_cases

        cases = make_cases(valid, "next")
        order = np.argsort(cases.lengths, kind="stable")
        self.starts = cases.starts[order]
        self.lengths = cases.lengths[order]
        self.items = np.asarray(valid.items, dtype=np.int64)
        self.targets = self.items[self.starts + self.lengths]
        self.n = int(order.size)

    def batch(self, lo: int, hi: int) -> SessionBatch:
        """Cases ``lo:hi`` as a batch of sessions, built as the evaluation builds them."""
        from sessionrec.evaluation.protocol import prefix_batch

        return prefix_batch(self.items, None, self.starts[lo:hi], self.lengths[lo:hi])

    def metric(
        self, score: Callable[[SessionBatch], Any], selection_metric: str, chunk: int
    ) -> float:
        """HR@20 or MRR@20 (percent, ``selection_metric``) of ``score``, ranked as the
        evaluation ranks (pessimistic ties), ``chunk`` cases at a time.

        ``score`` returns a numpy array or a torch tensor. Tensors on an accelerator are
        ranked there: copying every score to the host and ranking it on one CPU core cost
        four times the training time per epoch on a GPU. Arrays and CPU tensors go to the
        evaluation's own ranking, the faster one on the CPU.
        """
        from sessionrec.evaluation import metrics
        from sessionrec.models.topk import rank_targets

        ranks = np.empty(self.n, dtype=np.float64)
        for lo in range(0, self.n, chunk):
            hi = min(lo + chunk, self.n)
            scores = score(self.batch(lo, hi))
            if not isinstance(scores, np.ndarray) and scores.device.type == "cpu":
                scores = scores.numpy()
            if isinstance(scores, np.ndarray):
                ranks[lo:hi] = rank_targets(scores, self.targets[lo:hi], "pessimistic")
            else:
                import torch

                from sessionrec.models.neural.trainer import pessimistic_ranks

                targets = torch.as_tensor(self.targets[lo:hi], device=scores.device)
                ranks[lo:hi] = pessimistic_ranks(scores, targets).cpu().numpy()
        if selection_metric == "hr@20":
            return 100.0 * metrics.hit_rate(ranks, 20)
        return 100.0 * metrics.mrr(ranks, 20)


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


def check_state(
    model: str,
    state: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]],
    other: set[str],
    n_items: int,
) -> None:
    """Refuse saved arrays that do not match the manifest's hyperparameters.

    ``shapes``: the weight arrays the hyperparameters imply (finite floats of these shapes);
    ``other``: the other keys the state must hold, among them ``item_counts``
    (``n_items`` integers). Any missing or unexpected key is an error too.
    """
    missing = sorted((set(shapes) | other) - set(state))
    unexpected = sorted(set(state) - set(shapes) - other)
    if missing or unexpected:
        raise ModelError(
            f"{model} state does not match its hyperparameters: missing {missing}, "
            f"unexpected {unexpected}"
        )
    for key, shape in shapes.items():
        array = state[key]
        if array.shape != shape or array.dtype.kind != "f" or not np.isfinite(array).all():
            raise ModelError(
                f"{model} state array {key!r} must be finite floats of shape {shape} "
                f"(from the manifest's hyperparameters), got {array.dtype} {array.shape}"
            )
    counts = state["item_counts"]
    if counts.shape != (n_items,) or counts.dtype.kind not in "iu":
        raise ModelError(f"{model} state 'item_counts' must be {n_items} integers")
