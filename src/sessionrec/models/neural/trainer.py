"""The training loop every neural model runs, and what it needs: seeding, loss, epochs, ranks.

- :func:`seeded` makes a training run reproducible without touching the caller's random state.
- :class:`LossTracker` averages the loss and raises :class:`ModelError` when it diverges.
- :func:`train_epochs` is the one epoch loop: train, validate, keep the best epoch, stop early.
- :func:`pessimistic_ranks` ranks validation targets on the training device with the same
  full ranking and tie rule as :func:`sessionrec.models.topk.rank_targets` (on CUDA
  this avoids copying every ``[n, n_items]`` score matrix to the host); the metrics of the
  ranks come from :mod:`sessionrec.evaluation.metrics`.

What one model's epoch does lives beside the model (``gru4rec_training``,
``prefix_training``, ``sasrec_training``); devices in :mod:`.devices`, GRU4Rec's optimiser
in :mod:`.adagrad`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from sessionrec._errors import ModelError
from sessionrec._heap import reuse_freed_memory

log = logging.getLogger("sessionrec.models")


# ---------------------------------------------------------------------------------- seeds
@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch's global generators for the duration of a block, restoring them after.

    Dropout and initialisation inside the block are reproducible, and the caller's random
    state (other models, user code) is left as it was. Yields a generator on ``device`` for
    code that takes one explicitly (the negative sample store).
    """
    devices: list[int] = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        yield generator


# ------------------------------------------------------------------------------- epoch loop
class LossTracker:
    """Running mean of an epoch's loss that detects divergence.

    Adds losses on the device without synchronising and checks the running sum every
    ``check_every`` steps (a NaN or infinity propagates into the sum, so none is missed), so
    a diverged run stops early instead of wasting the rest of the epoch. In a distributed
    run it checks only at the end of the epoch: one rank must not stop alone while the
    others wait for it in a collective (the reduced epoch loss stops them all).
    """

    def __init__(self, model: str, epoch: int, device: torch.device, check_every: int = 256):
        self.model = model
        self.epoch = epoch
        in_group = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.check_every = 0 if in_group else check_every
        self._sum = torch.zeros((), dtype=torch.float64, device=device)
        self._steps = 0
        self.n_examples = 0

    def add(self, loss: torch.Tensor, n_examples: int) -> None:
        """``loss``: the step's loss *summed* over its ``n_examples`` examples (detached)."""
        self._sum += loss
        self.n_examples += n_examples
        self._steps += 1
        if self.check_every and self._steps % self.check_every == 0:
            self._check(float(self._sum))

    def mean(self) -> float:
        """Mean loss per example; raises :class:`ModelError` if it is not finite."""
        total = float(self._sum)
        self._check(total)
        return total / max(self.n_examples, 1)

    def _check(self, total: float) -> None:
        if not math.isfinite(total):
            raise ModelError(
                f"{self.model} diverged: the training loss became {total} in epoch "
                f"{self.epoch} (after {self._steps} steps); lower the learning rate or "
                "use more regularisation"
            )


@dataclass
class EarlyStopping:
    """Keep the epoch with the best validation score; stop after ``patience`` worse ones."""

    patience: int
    best_value: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record an epoch's validation score (higher is better); True if it is the best."""
        if value > self.best_value:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did: mean training loss, examples, wall time, validation score."""

    epoch: int
    loss: float
    n_examples: int
    seconds: float
    valid: float | None = None

    @property
    def examples_per_second(self) -> float:
        return self.n_examples / self.seconds if self.seconds > 0 else math.inf


@reuse_freed_memory()
def train_epochs(
    *,
    model: str,
    n_epochs: int,
    run_epoch: Callable[[int], tuple[float, int]],
    validate: Callable[[], float] | None = None,
    patience: int = 0,
    snapshot: Callable[[], Any] | None = None,
    restore: Callable[[Any], None] | None = None,
    max_seconds: float | None = None,
    agree: Callable[[bool], bool] | None = None,
) -> tuple[list[EpochReport], int]:
    """The epoch loop shared by the neural models.

    ``run_epoch(epoch)`` trains one epoch and returns (mean loss, examples); a non-finite loss
    raises :class:`ModelError`. With ``validate`` (higher is better), the weights of the best
    epoch are kept (``snapshot``/``restore``) and training stops after ``patience`` epochs
    without improvement (``patience = 0``: run every epoch, still keep the best). Returns the
    per-epoch reports and the selected epoch (1-based; the last one without validation).

    ``max_seconds`` is a time budget: the first epoch always runs, and no further epoch
    starts when the time used so far plus the longest epoch so far (validation included)
    would pass the budget, so a run ends within it unless one epoch alone is longer. In a
    process group ``agree`` (any rank out of time) makes every rank stop at the same epoch.
    """
    reports: list[EpochReport] = []
    began = time.perf_counter()
    longest = 0.0
    stopper = EarlyStopping(patience=patience) if validate is not None else None
    best_state: Any = None
    for epoch in range(1, n_epochs + 1):
        started = time.perf_counter()
        loss, n_examples = run_epoch(epoch)
        seconds = time.perf_counter() - started
        if not math.isfinite(loss):
            raise ModelError(f"{model} diverged: mean training loss {loss} in epoch {epoch}")
        value = validate() if validate is not None else None
        longest = max(longest, time.perf_counter() - started)
        report = EpochReport(epoch, loss, n_examples, seconds, value)
        reports.append(report)
        log.info(
            "%s epoch %d/%d: loss %.4f, %.1fs (%.0f examples/s)%s",
            model,
            epoch,
            n_epochs,
            loss,
            seconds,
            report.examples_per_second,
            "" if value is None else f", validation {value:.4f}",
        )
        if stopper is not None and value is not None:
            if stopper.update(epoch, value) and snapshot is not None:
                best_state = snapshot()
            if patience > 0 and stopper.should_stop:
                log.info("%s: no improvement for %d epochs, stopping", model, patience)
                break
        if max_seconds is not None and epoch < n_epochs:
            out_of_time = time.perf_counter() - began + longest > max_seconds
            if agree is not None:
                out_of_time = agree(out_of_time)
            if out_of_time:
                log.info(
                    "%s: another epoch (up to %.0fs) would pass max_train_seconds=%g, stopping",
                    model,
                    longest,
                    max_seconds,
                )
                break
    if stopper is None:
        return reports, len(reports)
    if best_state is not None and restore is not None and stopper.best_epoch != len(reports):
        restore(best_state)
    return reports, stopper.best_epoch


# ------------------------------------------------------------------------------ validation
def pessimistic_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's target among all columns, ties counted against it.

    ``scores``: ``[n, n_items]``, ``-inf`` for items without evidence. ``targets``: ``[n]``.
    A target scored ``-inf`` (or NaN) is a miss (rank ``inf``), as in
    :func:`sessionrec.models.topk.rank_targets`.
    """
    target_scores = scores.gather(1, targets.unsqueeze(1))  # [n, 1]
    ranks = (scores >= target_scores).sum(dim=1).to(torch.float64)  # [n]
    miss = ~(target_scores.squeeze(1) > -math.inf)
    return ranks.masked_fill_(miss, math.inf)
