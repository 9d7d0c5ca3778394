"""GRU4Rec's optimiser: Adagrad with momentum over one flat dense buffer and row-sparse tables.

- :class:`FlatParameters` keeps the dense weights back to back in one buffer, so that an
  update is a few operations on the whole buffer instead of a few per tensor;
- :class:`AdagradM` updates that buffer and the rows of the item tables a step touched,
  with compiled (numba) loops on the CPU and the same arithmetic in tensor code elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
import torch

from sessionrec._errors import ConfigError


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
