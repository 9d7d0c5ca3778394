"""Negative sampling for sampled-softmax style training: popularity^alpha, from a sample store.

GRU4Rec (Hidasi & Karatzoglou 2018, section 3.1) scores every mini-batch row against the
other rows' targets (in-batch negatives, which follow the data's popularity) plus ``n_sample``
extra items shared by the whole batch, drawn with probability proportional to
``popularity ** alpha``. ``alpha = 0`` is uniform over the items seen in training, ``alpha = 1``
is popularity sampling; values between trade the two off.

Drawing a few thousand items per step from a 40k-way categorical distribution is cheap on
the whole but costs a kernel launch and a search per step. :class:`SampleStore` draws a large
block of samples at once (the "sample store" of the reference implementation) and hands out
one row per step, refilling when the block is used up. The store lives on the training
device, so a step never waits for the host.

Items without training clicks have weight 0 and are never sampled: the model never sees them,
and they score ``-inf`` at inference.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sessionrec._errors import ConfigError

DEFAULT_STORE_SIZE = 4_000_000
"""Samples drawn per refill of a store (``n_sample`` per step, so 2048 gives ~2000 steps)."""


def sampling_weights(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Unnormalised sampling weights ``count ** alpha`` (float64), 0 for items never clicked.

    ``0 ** 0`` is 1 in numpy; items without clicks are set to 0 explicitly so that
    ``alpha = 0`` means "uniform over the items seen in training".
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ConfigError("item counts must be a 1-d array of non-negative numbers")
    weights = np.zeros_like(counts)
    seen = counts > 0
    weights[seen] = counts[seen] ** float(alpha)
    return weights


def log_sampling_weights(counts: np.ndarray, alpha: float) -> np.ndarray:
    """``log(count ** alpha) = alpha * log(count)`` (float32), ``-inf`` for unseen items.

    This is the log of the (unnormalised) probability of drawing an item, used by the logQ
    correction of sampled softmax (Bengio & Senécal 2008; Yi et al. 2019).
    """
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # alpha = 0: 0 * log(0) is NaN
        out = float(alpha) * np.log(counts)
    out[counts <= 0] = -np.inf
    return out.astype(np.float32)


class SampleStore:
    """Popularity^alpha negatives, ``n_sample`` per call to :meth:`draw`, from a precomputed block.

    Draws with replacement by inverse transform sampling (uniforms searched in the cumulative
    distribution), with a :class:`torch.Generator` so that a seeded training run draws the same
    negatives on every run. Each :meth:`draw` returns the items and their log sampling weights
    (for the logQ correction), both views into the store: treat them as read-only.
    ``store_size`` bounds the samples held at once; ``max_rows`` the draws per refill.
    """

    def __init__(
        self,
        counts: np.ndarray,
        alpha: float,
        n_sample: int,
        *,
        generator: torch.Generator,
        device: torch.device,
        store_size: int = DEFAULT_STORE_SIZE,
        max_rows: int | None = None,
    ) -> None:
        if n_sample <= 0:
            raise ConfigError(f"n_sample must be positive to build a sample store, got {n_sample}")
        weights = sampling_weights(counts, alpha)
        total = weights.sum()
        if not total > 0 or not math.isfinite(total):
            raise ConfigError("cannot sample negatives: no item has training clicks")
        self.n_sample = int(n_sample)
        self.device = device
        self.generator = generator
        # ``max_rows``: no point drawing more rows than an epoch uses (small data).
        self.rows = max(1, min(int(store_size) // self.n_sample, max_rows or 2**62))
        cdf = np.cumsum(weights / total)
        cdf[-1] = 1.0  # rounding must not leave uniforms just below 1 without an item
        self._cdf = torch.as_tensor(cdf, dtype=torch.float64, device=device)  # [n_items]
        self._log_weights = torch.as_tensor(
            log_sampling_weights(counts, alpha), device=device
        )  # [n_items]
        self._next = self.rows  # empty: the first draw fills the store
        self._items = torch.empty(0, dtype=torch.int64, device=device)
        self._logw = torch.empty(0, dtype=torch.float32, device=device)

    def probabilities(self) -> np.ndarray:
        """The sampling distribution over the items (float64, sums to 1)."""
        return np.diff(self._cdf.cpu().numpy(), prepend=0.0)

    def _refill(self) -> None:
        uniform = torch.rand(
            self.rows * self.n_sample,
            generator=self.generator,
            dtype=torch.float64,
            device=self.device,
        )
        # right=True: item i is drawn for u in [cdf[i-1], cdf[i]); zero-weight items have an
        # empty interval and are never drawn.
        items = torch.searchsorted(self._cdf, uniform, right=True).clamp_(max=len(self._cdf) - 1)
        self._items = items.view(self.rows, self.n_sample)  # [rows, n_sample]
        self._logw = self._log_weights[items].view(self.rows, self.n_sample)
        self._next = 0

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_sample`` items (int64 ``[n_sample]``) and their log weights (float32)."""
        if self._next >= self.rows:
            self._refill()
        row = self._next
        self._next += 1
        return self._items[row], self._logw[row]
