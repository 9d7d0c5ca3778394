"""What every neural model trains with: devices, seeding, batching, optimiser, epoch loop.

One implementation of each concern, shared by the neural models:

- :func:`resolve_device` picks CPU or CUDA from one string; the same code runs on both.
- :func:`seeded` makes a training run reproducible without touching the caller's random state.
- :func:`session_parallel_plan` lays out GRU4Rec's session-parallel mini-batches for a whole
  epoch in advance (numpy, no per-step Python bookkeeping in the training loop).
- :class:`AdagradM` is Adagrad with momentum for dense parameters and row-sparse item tables.
- :class:`LossTracker` averages the loss and raises :class:`ModelError` when it diverges.
- :func:`train_epochs` is the one epoch loop: train, validate, keep the best epoch, stop early.
- :func:`pessimistic_ranks` ranks validation targets on the training device with the same
  full ranking and tie rule as :func:`sessionrec.models.topk.rank_targets` (on CUDA
  this avoids copying every ``[n, n_items]`` score matrix to the host); the metrics of the
  ranks come from :mod:`sessionrec.evaluation.metrics`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import torch

from sessionrec._errors import ConfigError, ModelError
from sessionrec._heap import reuse_freed_memory
from sessionrec.models.neural import DEVICE_PATTERN

log = logging.getLogger("sessionrec.models")


# --------------------------------------------------------------------------- devices, seeds
def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
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
    try:
        return resolve_device(name)
    except ConfigError as exc:
        warnings.warn(f"{exc}; loading the model on the CPU", UserWarning, stacklevel=5)
        return torch.device("cpu")


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


# ------------------------------------------------------------------- session-parallel batches
@dataclass(frozen=True)
class SessionParallelPlan:
    """All mini-batches of one epoch of session-parallel training (Hidasi et al. 2016, 3.1.1).

    The first ``batch_size`` sessions (in data order, i.e. by start time) take one slot each.
    At every step each slot emits one example, its session's current click as input and the
    next click as target, and moves one click on. A slot whose session has no next click
    takes the next unused session and its hidden state is reset; when no session is left the
    slot is dropped and the batch shrinks. Sessions with a single click give no example.
    Nothing is padded or truncated: every click but each session's last is an input once.

    Rows of step ``t`` are ``step_offsets[t]:step_offsets[t + 1]`` of the flat arrays, in
    slot order. ``keep[t]`` (only for steps where the batch shrank) lists which rows of step
    ``t - 1`` continue into step ``t``, in order; every other step continues all rows.
    """

    step_offsets: np.ndarray  # int64 [n_steps + 1]
    inputs: np.ndarray  # int64 [n_rows]: item clicked
    targets: np.ndarray  # int64 [n_rows]: the next item clicked in the same session
    starts: np.ndarray  # bool [n_rows]: the row's session begins here (reset its hidden state)
    sessions: np.ndarray  # int64 [n_rows]: which session the row belongs to
    keep: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return int(self.step_offsets.shape[0] - 1)

    @property
    def n_rows(self) -> int:
        return int(self.inputs.shape[0])

    def step(self, t: int) -> slice:
        return slice(int(self.step_offsets[t]), int(self.step_offsets[t + 1]))


def session_parallel_plan(
    offsets: np.ndarray, items: np.ndarray, batch_size: int, min_rows: int = 1
) -> SessionParallelPlan:
    """Lay out an epoch of session-parallel mini-batches (see :class:`SessionParallelPlan`).

    ``offsets``/``items`` are CSR sessions in training order. Training stops once fewer than
    ``min_rows`` slots remain (a softmax over the batch's own targets needs two).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    usable = np.flatnonzero(np.diff(offsets) >= 2)
    n_slots = min(batch_size, usable.size)
    slot_session = usable[:n_slots].copy()
    click = offsets[slot_session].copy()  # position of each slot's current input click
    end = offsets[slot_session + 1].copy()
    starts = np.ones(n_slots, dtype=bool)
    next_usable = n_slots
    sizes: list[int] = []
    chunks_click: list[np.ndarray] = []
    chunks_start: list[np.ndarray] = []
    chunks_session: list[np.ndarray] = []
    keep: dict[int, np.ndarray] = {}
    while click.size >= max(min_rows, 1):
        sizes.append(click.size)
        chunks_click.append(click.copy())
        chunks_start.append(starts)
        chunks_session.append(slot_session.copy())
        click += 1
        starts = np.zeros(click.size, dtype=bool)
        finished = np.flatnonzero(click + 1 >= end)
        if finished.size == 0:
            continue
        refill = finished[: max(0, min(finished.size, usable.size - next_usable))]
        new_sessions = usable[next_usable : next_usable + refill.size]
        next_usable += refill.size
        slot_session[refill] = new_sessions
        click[refill] = offsets[new_sessions]
        end[refill] = offsets[new_sessions + 1]
        starts[refill] = True
        if refill.size < finished.size:  # no session left for these slots: shrink the batch
            alive = np.ones(click.size, dtype=bool)
            alive[finished[refill.size :]] = False
            keep[len(sizes)] = np.flatnonzero(alive)
            slot_session, click, end, starts = (
                slot_session[alive],
                click[alive],
                end[alive],
                starts[alive],
            )
    step_offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=step_offsets[1:])
    keep = {t: rows for t, rows in keep.items() if t < len(sizes)}
    flat_click = np.concatenate(chunks_click) if chunks_click else np.zeros(0, np.int64)
    return SessionParallelPlan(
        step_offsets=step_offsets,
        inputs=items[flat_click],
        targets=items[flat_click + 1],
        starts=np.concatenate(chunks_start) if chunks_start else np.zeros(0, bool),
        sessions=np.concatenate(chunks_session) if chunks_session else np.zeros(0, np.int64),
        keep=keep,
    )


# ---------------------------------------------------------------------------------- optimiser
class FlatParameters:
    """Dense weight tensors stored back to back in one flat buffer.

    ``tensors[name]`` are autograd leaves sharing the buffer's memory: an optimiser updates
    every dense weight with a few operations on :attr:`flat` instead of a few per tensor,
    which matters when a training step is only a millisecond long.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], device: torch.device) -> None:
        sizes = [math.prod(shape) for shape in shapes.values()]
        self.flat = torch.zeros(sum(sizes), device=device)  # [n_dense]
        self.tensors: dict[str, torch.Tensor] = {}
        start = 0
        for (name, shape), size in zip(shapes.items(), sizes, strict=True):
            view = self.flat[start : start + size].view(shape)
            self.tensors[name] = view.detach().requires_grad_(True)
            start += size

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]


class AdagradM:
    """Adagrad with momentum: GRU4Rec's optimiser, for dense weights and row-sparse tables.

    Per weight, with gradient ``g``, accumulator ``a`` and velocity ``v`` (both start at 0)::

        a += g ** 2
        v  = momentum * v - lr * g / sqrt(a + eps)
        w += v                                  (without momentum: w -= lr * g / sqrt(a + eps))

    Dense weights are one flat buffer (:class:`FlatParameters`). Item tables are
    *row-sparse*: a step touches only the rows gathered in it (inputs, targets, negatives), so
    only those rows' accumulators, velocities and weights change ("lazy" momentum, as in the
    sparse updates of the reference implementation). A row gathered several times in a step
    gets the sum of its gradients, once.

    On CPU the update is two compiled loops (numba) over the flat buffer and the touched rows;
    elsewhere, or with ``compiled=False``, the same arithmetic in tensor operations. A GRU4Rec
    step on CPU is a millisecond or two, and the ~30 small tensor operations of the update
    were a third of it.
    """

    def __init__(
        self,
        dense: FlatParameters,
        tables: Sequence[torch.Tensor],
        *,
        lr: float,
        momentum: float,
        eps: float = 1e-6,
        compiled: bool | None = None,
    ) -> None:
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.flat = dense.flat
        # Compiled CPU kernels by default on CPU; the tensor code runs anywhere (and tests
        # that both agree).
        self.compiled = self.flat.device.type == "cpu" if compiled is None else compiled
        if self.compiled and self.flat.device.type != "cpu":
            raise ConfigError("AdagradM's compiled update needs CPU tensors")
        self._acc = torch.zeros_like(self.flat)
        self._vel = torch.zeros_like(self.flat) if self.momentum > 0 else None
        self.tables = list(tables)
        self._table_acc = [torch.zeros_like(t) for t in self.tables]
        self._table_vel = [torch.zeros_like(t) if self.momentum > 0 else None for t in self.tables]

    @torch.no_grad()
    def step(
        self,
        dense_grads: Sequence[torch.Tensor],
        table_grads: Sequence[tuple[int, torch.Tensor, torch.Tensor]],
    ) -> None:
        """Apply one update.

        ``dense_grads``: gradients of the :class:`FlatParameters` tensors, in their order.
        ``table_grads``: for a table, ``(table_number, rows [m] int64, grads [m, width])``;
        ``rows`` may repeat.
        """
        grad = torch.cat([g.reshape(-1) for g in dense_grads])  # [n_dense]
        if self.compiled:
            vel = self._vel if self._vel is not None else self._acc
            _adagrad_dense(
                self.flat.numpy(),
                self._acc.numpy(),
                vel.numpy(),
                self._vel is not None,
                grad.numpy(),
                self.lr,
                self.momentum,
                self.eps,
            )
        else:
            self._update(self.flat, self._acc, self._vel, grad)
        for number, rows, row_grads in table_grads:
            self._update_rows(number, rows, row_grads)

    def _update_rows(self, number: int, rows: torch.Tensor, row_grads: torch.Tensor) -> None:
        table = self.tables[number]
        acc = self._table_acc[number]
        vel = self._table_vel[number]
        if self.compiled:
            # One compiled pass instead of ~15 small tensor operations: on CPU the per-step
            # overhead of those is what a GRU4Rec step mostly consists of.
            _adagrad_rows(
                table.numpy(),
                acc.numpy(),
                vel.numpy() if vel is not None else acc.numpy(),
                vel is not None,
                rows.numpy(),
                row_grads.numpy(),
                self.lr,
                self.momentum,
                self.eps,
            )
            return
        # Writes to the big tables are index_add_ only (the fastest scatter; the rows are
        # unique once duplicates are summed, so adding a difference sets a value).
        unique, inverse = torch.unique(rows, return_inverse=True)  # [u], [m]
        grad = row_grads.new_zeros((unique.shape[0], row_grads.shape[1]))
        grad.index_add_(0, inverse, row_grads)  # [u, width]: duplicates summed
        squared = grad * grad
        scale = acc.index_select(0, unique).add_(squared).add_(self.eps).sqrt_()
        acc.index_add_(0, unique, squared)
        step = grad.div_(scale).mul_(-self.lr)  # [u, width]
        if vel is not None:
            old = vel.index_select(0, unique)
            change = torch.sub(step, old, alpha=1.0 - self.momentum)  # new - old velocity
            vel.index_add_(0, unique, change)
            step = old.add_(change)  # the new velocity
        table.index_add_(0, unique, step)

    def _update(
        self, weight: torch.Tensor, acc: torch.Tensor, vel: torch.Tensor | None, grad: torch.Tensor
    ) -> None:
        acc.addcmul_(grad, grad)
        scale = acc.add(self.eps).sqrt_()
        if vel is None:
            weight.addcdiv_(grad, scale, value=-self.lr)
        else:
            vel.mul_(self.momentum).addcdiv_(grad, scale, value=-self.lr)
            weight.add_(vel)


# error_model="numpy" drops the division-by-zero checks that keep LLVM from vectorising the
# loops (a 15x difference here). No fast-math: approximate reciprocal square roots made
# training measurably worse (first-epoch loss +3% on rsc15-100k), exact IEEE is as fast.
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _adagrad_dense(
    weights: np.ndarray,
    acc: np.ndarray,
    vel: np.ndarray,
    use_momentum: bool,
    grads: np.ndarray,
    lr: float,
    momentum: float,
    eps: float,
) -> None:  # pragma: no cover - compiled
    """:class:`AdagradM`'s update of 1-d float32 arrays, in place."""
    lr32, momentum32, eps32 = np.float32(lr), np.float32(momentum), np.float32(eps)
    for i in range(weights.shape[0]):
        g = grads[i]
        a = acc[i] + g * g
        acc[i] = a
        step = -lr32 * g / np.sqrt(a + eps32)
        if use_momentum:
            step += momentum32 * vel[i]
            vel[i] = step
        weights[i] += step


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _adagrad_rows(
    table: np.ndarray,
    acc: np.ndarray,
    vel: np.ndarray,
    use_momentum: bool,
    rows: np.ndarray,
    grads: np.ndarray,
    lr: float,
    momentum: float,
    eps: float,
) -> None:  # pragma: no cover - compiled
    """:class:`AdagradM`'s update of the ``rows`` of 2-d float32 tables, in place.

    Duplicate rows' gradients are summed first, in a compact buffer numbered by first
    appearance (``slot``), so no sort is needed.
    """
    m, width = grads.shape
    lr32, momentum32, eps32 = np.float32(lr), np.float32(momentum), np.float32(eps)
    slot = np.full(table.shape[0], -1, dtype=np.int64)
    distinct = np.empty(m, dtype=np.int64)
    summed = np.empty((m, width), dtype=np.float32)
    n = 0
    for i in range(m):
        r = rows[i]
        k = slot[r]
        if k < 0:
            slot[r] = n
            distinct[n] = r
            for j in range(width):
                summed[n, j] = grads[i, j]
            n += 1
        else:
            for j in range(width):
                summed[k, j] += grads[i, j]
    for k in range(n):
        r = distinct[k]
        for j in range(width):
            g = summed[k, j]
            a = acc[r, j] + g * g
            acc[r, j] = a
            step = -lr32 * g / np.sqrt(a + eps32)
            if use_momentum:
                step += momentum32 * vel[r, j]
                vel[r, j] = step
            table[r, j] += step


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
