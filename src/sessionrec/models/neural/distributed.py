"""Training one neural model on several processes with ``torch.distributed``.

Launch: ``torchrun --nproc-per-node N -m sessionrec train ...`` (CPU processes talk over
gloo, GPUs over NCCL, one GPU per process). A user script that initialises the process group
itself gets the same behaviour from ``model.fit``: every neural model asks :func:`current`
whether it runs in a group of more than one process.

What every rank does, the same way for every model:

- **Data sharded by session** (:meth:`Workers.shard`): rank ``r`` of ``N`` trains on the
  sessions ``r, r + N, r + 2N, ...`` of the chronologically ordered training data, so each
  shard spans the whole period and keeps its time order (GRU4Rec's session-parallel batches
  need that). Validation sessions are sharded the same way.
- **One global batch**: the ``batch_size`` hyperparameter keeps its single-process meaning,
  the examples of one optimiser step; each rank takes ``ceil(batch_size / N)`` of them
  (:meth:`Workers.local_batch`), so a model trains the same way on 1 or N processes.
- **The same number of steps on every rank** (:meth:`Workers.max_int`): a rank whose shard
  runs out first either repeats some of its shuffled examples (the prefix models and SASRec,
  as ``torch.utils.data.DistributedSampler`` pads) or takes steps with no example and a zero
  gradient (GRU4Rec, whose session-parallel batches cannot repeat a click). Every rank then
  applies the same averaged gradient to the same weights with the same optimiser state, so
  the replicas stay identical without ever being re-broadcast.
- **Samplers seeded per rank** (:meth:`Workers.seed`): each rank shuffles its own shard with
  its own stream; weights are initialised identically from the model's seed.
- **Gradients**: the ``torch.nn.Module`` models (NARM, STAMP, SR-GNN, SASRec) are wrapped in
  ``DistributedDataParallel``, which averages gradients in buckets during the backward pass.
  GRU4Rec keeps its row-sparse Adagrad (an update touches only the item rows of the step, as
  in the paper's implementation): its dense gradient and the item rows each rank touched
  are exchanged in one ``all_gather`` per step (:meth:`Workers.exchange`); a dense
  ``all_reduce`` of whole item tables would move the full catalog every step. Without
  DDP's broadcast, it compares checksums of its weights across ranks after every epoch
  (:meth:`Workers.check_replicas`).
- **Metrics reduced** (:meth:`Workers.reduce_epoch`, :meth:`Workers.reduce_metric`): epoch
  losses are averaged over every example of every rank and validation metrics over every
  validation case, so all ranks select the same epoch and stop at the same time.
- **Only rank 0 writes** the model folder (atomically, as every save); the CLI does that.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from sessionrec._errors import ConfigError, DataError, ModelError
from sessionrec.data.sessions import SessionData

log = logging.getLogger("sessionrec.models")

TIMEOUT = timedelta(minutes=30)
"""How long a rank waits for the others at a collective before the run fails."""


class ReplicaMismatch(ModelError):
    """The ranks' copies of a model's weights differ (raised on every rank at once)."""


def init_from_env(device: str = "auto") -> Workers:
    """Join the process group ``torchrun`` describes in the environment.

    The backend follows the device the model will train on: NCCL when it is a GPU (each
    process takes the GPU ``LOCAL_RANK``), gloo on the CPU. Ranks other than 0 only log
    warnings, so progress is reported once.
    """
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    missing = [key for key in needed if key not in os.environ]
    if missing:
        raise ConfigError(
            f"distributed training needs the environment torchrun sets; missing {missing}"
        )
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=TIMEOUT)
    workers = current()
    if workers is None:
        raise ConfigError("torchrun started a single process: nothing to distribute")
    if workers.rank > 0:
        logging.getLogger("sessionrec").setLevel(logging.WARNING)
    log.info("rank %d of %d joined (%s)", workers.rank, workers.world_size, dist.get_backend())
    return workers


def shutdown() -> None:
    """Leave the process group after every rank arrived (rank 0 has finished writing)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def abandon() -> None:
    """Leave the process group at once (after an error: the other ranks may never arrive)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> Workers | None:
    """The process group this process trains in, or None for an ordinary single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return Workers(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def validation(
    workers: Workers | None, validate: Callable[[], float], n_cases: int
) -> Callable[[], float]:
    """A model's validation score over every rank's ``n_cases`` (just ``validate`` alone).

    Raises :class:`DataError` on every rank when no rank has a validation case.
    """
    total = n_cases if workers is None else workers.total_cases(n_cases)
    if total == 0:
        raise DataError("the validation sessions give no case to score")
    return validate if workers is None else workers.reduce_metric(validate, n_cases)


@dataclass(frozen=True)
class Workers:
    """This process's place in the group and the collectives the models use (module doc)."""

    rank: int
    world_size: int
    device: torch.device  # where the backend's tensors live (CPU for gloo, a GPU for NCCL)

    # ------------------------------------------------------------------------------ data
    def shard(self, data: SessionData) -> SessionData:
        """This rank's sessions: every ``world_size``-th, from the ``rank``-th, in order."""
        return data.subset(np.arange(self.rank, data.n_sessions, self.world_size, dtype=np.int64))

    def local_batch(self, batch_size: int) -> int:
        """This rank's share of a global batch of ``batch_size`` examples."""
        return max(1, math.ceil(batch_size / self.world_size))

    def seed(self, seed: int) -> np.random.SeedSequence:
        """The seed of this rank's shuffling stream: distinct per rank, fixed per ``seed``."""
        return np.random.SeedSequence([seed, self.rank])

    # ----------------------------------------------------------------------- collectives
    def max_int(self, value: int) -> int:
        """The largest ``value`` over the ranks (e.g. the number of steps all must take)."""
        tensor = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (a decision all ranks share)."""
        return self.max_int(int(flag)) > 0

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place."""
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def weighted_mean(self, value: float, weight: float) -> tuple[float, float]:
        """(mean of ``value`` weighted by ``weight`` over the ranks, total weight).

        A rank with zero weight contributes nothing, whatever its value (NaN included).
        """
        local = value * weight if weight > 0 else 0.0
        tensor = torch.tensor([local, float(weight)], dtype=torch.float64, device=self.device)
        self.sum_(tensor)
        total, weights = float(tensor[0]), float(tensor[1])
        return (total / weights if weights > 0 else math.nan), weights

    def exchange(
        self,
        dense: torch.Tensor,
        parts: list[tuple[torch.Tensor, torch.Tensor]],
        capacities: list[int],
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """One step's gradients of all ranks in a single ``all_gather``.

        Returns ``dense`` (float32 ``[n]``) summed over the ranks and, for each table, every
        rank's ``(rows [m] int64, grads [m, width] float32)`` concatenated in rank order. A
        part holds at most its ``capacity`` rows; ranks touch different numbers of rows, so
        each part is padded to it and the true counts travel in front. Everything goes in
        one float32 buffer (row numbers, below 2**31, and counts as the bits of int32s): on a CPU a
        collective costs a millisecond or more whatever its size, and GRU4Rec steps are
        milliseconds long, so one call per step instead of four is most of the scaling.
        """
        k = len(parts)
        widths = [int(grads.shape[1]) for _, grads in parts]
        n_rows = sum(capacities)
        n_grads = sum(c * w for c, w in zip(capacities, widths, strict=True))
        ints = torch.zeros(k + n_rows, dtype=torch.int32, device=self.device)
        floats = torch.zeros(n_grads + dense.numel(), dtype=torch.float32, device=self.device)
        at_row, at_grad = k, 0
        for number, ((rows, grads), capacity) in enumerate(zip(parts, capacities, strict=True)):
            m = int(rows.shape[0])
            if m > capacity:
                raise ValueError(f"part {number} has {m} rows, more than its capacity {capacity}")
            ints[number] = m
            ints[at_row : at_row + m] = rows
            floats[at_grad : at_grad + m * widths[number]] = grads.reshape(-1)
            at_row += capacity
            at_grad += capacity * widths[number]
        floats[n_grads:] = dense
        packed = torch.cat([ints.view(torch.float32), floats])
        every = [torch.empty_like(packed) for _ in range(self.world_size)]
        dist.all_gather(every, packed)
        gathered: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = [([], []) for _ in parts]
        total = torch.zeros_like(dense)
        for buffer in every:
            rank_ints = buffer[: k + n_rows].view(torch.int32)
            rank_floats = buffer[k + n_rows :]
            counts = rank_ints[:k].tolist()
            at_row, at_grad = k, 0
            for number, (capacity, width) in enumerate(zip(capacities, widths, strict=True)):
                m = int(counts[number])
                gathered[number][0].append(rank_ints[at_row : at_row + m].long())
                gathered[number][1].append(
                    rank_floats[at_grad : at_grad + m * width].view(m, width)
                )
                at_row += capacity
                at_grad += capacity * width
            total += rank_floats[n_grads:]
        return total, [(torch.cat(rows), torch.cat(grads)) for rows, grads in gathered]

    # ------------------------------------------------------------------- reduced reports
    def reduce_epoch(
        self, run_epoch: Callable[[int], tuple[float, int]]
    ) -> Callable[[int], tuple[float, int]]:
        """``run_epoch`` reporting the mean loss and the examples of all ranks together."""

        def reduced(epoch: int) -> tuple[float, int]:
            try:
                loss, n_examples = run_epoch(epoch)
            except ReplicaMismatch:  # every rank found it at once
                raise
            except ModelError:  # diverged here: a NaN mean makes every rank fail, not hang
                loss, n_examples = math.nan, 1
            mean, total = self.weighted_mean(loss, n_examples)
            return mean, round(total)

        return reduced

    def reduce_metric(self, validate: Callable[[], float], n_cases: int) -> Callable[[], float]:
        """``validate`` (a mean over this rank's ``n_cases``) averaged over every rank's cases."""

        def reduced() -> float:
            value = validate() if n_cases > 0 else math.nan
            return self.weighted_mean(value, n_cases)[0]

        return reduced

    def check_replicas(self, model: str, tensors: list[torch.Tensor]) -> None:
        """Raise :class:`ReplicaMismatch` unless every rank holds the same ``tensors``.

        Training without DDP's broadcast keeps replicas equal only while every rank applies
        the same update; a checksum per tensor after each epoch catches a slip for the cost
        of one small collective.
        """
        sums = [t.detach().double().sum() for t in tensors]
        squares = [t.detach().double().square().sum() for t in tensors]
        local = torch.stack([*sums, *squares]).to(self.device)
        every = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(every, local)
        if any(not torch.equal(other, every[0]) for other in every[1:]):
            raise ReplicaMismatch(
                f"{model}: the ranks' copies of the weights differ after an epoch; "
                "distributed training cannot go on"
            )

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in ``DistributedDataParallel`` (gradients averaged over the ranks)."""
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type == "cuda":
            return DistributedDataParallel(module, device_ids=[self.device])
        return DistributedDataParallel(module)

    def total_cases(self, n_cases: int) -> int:
        """The number of cases all ranks hold together."""
        tensor = torch.tensor([n_cases], dtype=torch.int64, device=self.device)
        return int(self.sum_(tensor).item())


class LossModule(torch.nn.Module):
    """A training step's loss over ``network``'s weights, behind one ``forward``.

    ``DistributedDataParallel`` averages the gradients of what runs through the wrapped
    module's ``forward``; the models call their networks piecewise (session vectors, then the
    item table), so ``loss(network, *batch)`` is put behind one. Single-process training calls
    the module unwrapped, with the same arithmetic.
    """

    def __init__(self, network: torch.nn.Module, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.network = network
        self._loss = loss

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self._loss(self.network, *batch)
