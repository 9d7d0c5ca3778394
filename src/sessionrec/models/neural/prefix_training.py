"""How the prefix models (NARM, STAMP, SR-GNN) train: prefix cases, padded batches, the epoch.

These models are trained the way the benchmark protocol evaluates
(``shared/data/README.md``): every training session ``s`` of length ``n`` gives the cases
``s[:i] -> s[i]`` for ``i = 1..n-1``.

- :func:`prefix_cases` lists those cases as *indices* into the :class:`SessionData` CSR arrays
  (where the prefix starts, how long it is, which item follows): no padded copy of every prefix
  is ever built. A prefix longer than ``max_len`` keeps its ``max_len`` most recent clicks.
- :class:`PrefixBatches` shuffles the cases per epoch with the model's seed and gathers each
  mini-batch into a ``[B, L]`` matrix padded only to that batch's longest prefix, rows
  sorted by length; on a CPU the network then runs on runs of similar length
  (:func:`length_runs`), so short prefixes are not padded to the batch's longest.
- :class:`PrefixEpoch` runs one epoch: Adam (with L2) on the mean full-softmax
  cross-entropy of each batch, then a step of the learning-rate decay.

Padded batches hold ``item index + 1`` with 0 as padding, prefixes left-aligned: position
``j < length`` is a click, the rest padding. Every network's embedding table therefore has
``n_items + 1`` rows, row 0 the padding.

Importing this module never imports torch (scoring pads prefixes with :func:`pad_prefixes`
where torch may not be installed); :class:`PrefixEpoch` imports it when built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sessionrec._errors import ConfigError
from sessionrec._progress import progress

if TYPE_CHECKING:
    import torch

    from sessionrec.models.neural.distributed import Workers


# ----------------------------------------------------------------------------- prefix cases
@dataclass(frozen=True)
class PrefixCases:
    """Training cases ``items[starts[c] : starts[c] + lengths[c]] -> targets[c]``.

    ``starts`` and ``lengths`` already include the truncation to the ``max_len`` most recent
    clicks; ``n_truncated`` counts the cases it shortened.
    """

    starts: np.ndarray  # int64 [n_cases]: offset of the prefix's first (kept) click
    lengths: np.ndarray  # int64 [n_cases]: clicks in the (truncated) prefix, 1..max_len
    targets: np.ndarray  # int64 [n_cases]: internal index of the next click
    n_truncated: int

    def __len__(self) -> int:
        return int(self.starts.shape[0])


def prefix_cases(offsets: np.ndarray, items: np.ndarray, max_len: int) -> PrefixCases:
    """Every (session, prefix end) pair of CSR sessions, prefixes cut to ``max_len`` clicks.

    A session of ``n`` clicks gives ``n - 1`` cases, in session order then prefix length.
    """
    if max_len < 1:
        raise ConfigError(f"max_len must be positive, got {max_len}")
    offsets = np.asarray(offsets, dtype=np.int64)
    per_session = np.maximum(np.diff(offsets) - 1, 0)
    n = int(per_session.sum())
    session = np.repeat(np.arange(per_session.size, dtype=np.int64), per_session)
    first_case = np.cumsum(per_session) - per_session
    full = np.arange(n, dtype=np.int64) - np.repeat(first_case, per_session) + 1  # 1..len-1
    ends = offsets[:-1][session] + full  # offset of the target click
    lengths = np.minimum(full, max_len)
    return PrefixCases(
        starts=ends - lengths,
        lengths=lengths,
        targets=np.asarray(items, dtype=np.int64)[ends],
        n_truncated=int((full > max_len).sum()),
    )


def pad_prefixes(shifted_items: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[B, max(lengths)]`` int64 matrix of the prefixes, left-aligned, padded with 0.

    ``shifted_items`` are the clicks as ``internal index + 1`` (0 is the padding id).
    """
    width = int(lengths.max()) if lengths.size else 0
    position = np.arange(width, dtype=np.int64)
    inside = position[None, :] < lengths[:, None]  # [B, L]
    index = np.minimum(starts[:, None] + position[None, :], max(shifted_items.size - 1, 0))
    if shifted_items.size == 0:
        return np.zeros((lengths.size, width), dtype=np.int64)
    return np.where(inside, shifted_items[index], 0)


class PrefixBatches:
    """An epoch's mini-batches of :class:`PrefixCases`, reshuffled every epoch.

    Each batch is ``(items [B, L], lengths [B], targets [B])`` in numpy, ``L`` the batch's own
    longest prefix, rows sorted by length (shortest first: see :func:`length_runs`); the
    last batch of an epoch may be smaller. With ``n_batches`` more than
    the cases fill (a distributed rank whose shard is smaller than another's), the shuffled
    order is repeated from its start to fill them, as ``DistributedSampler`` pads.
    """

    def __init__(
        self,
        cases: PrefixCases,
        items: np.ndarray,
        batch_size: int,
        seed: int | np.random.SeedSequence,
        n_batches: int | None = None,
        types: np.ndarray | None = None,
    ) -> None:
        self.cases = cases
        self.shifted = np.asarray(items, dtype=np.int64) + 1
        self.types = types  # the clicks' event type codes, for a typed network
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.n_batches = -(-len(cases) // batch_size) if n_batches is None else n_batches

    def __len__(self) -> int:
        return self.n_batches

    def epoch(self) -> Iterator[tuple[np.ndarray, ...]]:
        """``(items, lengths, targets)`` per batch, and the padded type codes ``[B, L]``
        after them when the batches have types."""
        order = self.rng.permutation(len(self.cases))
        if order.size < (self.n_batches - 1) * self.batch_size + 1:
            order = np.resize(order, self.n_batches * self.batch_size)  # repeats cyclically
        cases = self.cases
        for lo in range(0, order.size, self.batch_size):
            chosen = order[lo : lo + self.batch_size]
            chosen = chosen[np.argsort(cases.lengths[chosen], kind="stable")]
            lengths = cases.lengths[chosen]
            padded = pad_prefixes(self.shifted, cases.starts[chosen], lengths)
            if self.types is None:
                yield padded, lengths, cases.targets[chosen]
            else:
                types = pad_prefixes(self.types, cases.starts[chosen], lengths)
                yield padded, lengths, cases.targets[chosen], types


def length_runs(lengths: np.ndarray, min_rows: int = 32) -> list[tuple[int, int]]:
    """Cut a batch's sorted prefix lengths into row ranges ``[lo, hi)`` to run one by one.

    A run's longest prefix is at most twice its shortest (unless merged to ``min_rows``
    rows, which bounds the number of runs), so padding each run to its own longest costs
    at most about twice the real clicks. Padding the whole batch to its longest prefix
    would cost up to ``max_len`` times each short prefix: with prefixes of 4 clicks on
    average and a few of 50 in every large batch, most of the work was padding.
    """
    n = int(lengths.size)
    runs: list[tuple[int, int]] = []
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(lengths, 2 * lengths[lo], side="right"))
        hi = max(hi, min(lo + min_rows, n))
        if n - hi < min_rows:  # no short run at the end
            hi = n
        runs.append((lo, hi))
        lo = hi
    return runs


# ---------------------------------------------------------------------------------- epoch
class PrefixEpoch:
    """One training epoch of a prefix model; built once per fit, run per epoch.

    ``batch_loss(network, items, lengths, targets)`` is the summed loss of a padded batch;
    each step minimises its mean over the batch (the papers' loss). In a process group the
    loss runs through the wrapped module, so the gradients are averaged across ranks.
    """

    def __init__(
        self,
        name: str,
        network: torch.nn.Module,
        batch_loss: Callable[..., torch.Tensor],
        batches: PrefixBatches,
        *,
        learning_rate: float,
        l2: float,
        lr_decay: float,
        lr_decay_every: int,
        seed: int,
        device: torch.device,
        workers: Workers | None,
    ) -> None:
        import torch

        from sessionrec.models.neural.distributed import LossModule

        self.name = name
        self.batches = batches
        self.device = device
        self.step: torch.nn.Module = LossModule(network, batch_loss)
        if workers is not None:
            self.step = workers.wrap(self.step)
            # Identical initial weights (the seed), a dropout stream of its own per rank.
            torch.manual_seed(int(workers.seed(seed).generate_state(1)[0]))
        self.optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate, weight_decay=l2)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=lr_decay_every, gamma=lr_decay
        )

    def run(self, epoch: int) -> tuple[float, int]:
        import torch

        from sessionrec.models.neural.trainer import LossTracker

        self.step.train()
        tracker = LossTracker(self.name, epoch, self.device)
        batches = self.batches
        for batch in progress(batches.epoch(), total=len(batches), desc=f"{self.name} {epoch}"):
            targets = batch[2]
            loss = self.step(*(torch.as_tensor(part, device=self.device) for part in batch))
            self.optimizer.zero_grad(set_to_none=True)
            (loss / targets.size).backward()  # the papers' mean over the batch
            self.optimizer.step()
            tracker.add(loss.detach(), int(targets.size))
        self.scheduler.step()
        self.step.eval()
        return tracker.mean(), tracker.n_examples
