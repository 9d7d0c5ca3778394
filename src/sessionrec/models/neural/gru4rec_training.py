"""GRU4Rec's training: session-parallel mini-batches and the epoch that runs them.

- :class:`SessionParallelPlan` / :func:`session_parallel_plan` lay out an epoch's
  session-parallel mini-batches in advance (numpy, no per-step Python bookkeeping in the
  training loop); validation walks the validation sessions the same way.
- :class:`SessionParallelEpoch` runs one epoch: sampled scores of each step's targets and
  shared negatives, the loss, Adagrad with momentum on the touched rows, and in a process
  group the exchange of every rank's gradients (:mod:`~sessionrec.models.neural.distributed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from sessionrec._errors import ConfigError
from sessionrec._progress import progress
from sessionrec.data.sessions import SessionData
from sessionrec.models.neural.adagrad import AdagradM
from sessionrec.models.neural.event_types import click_codes
from sessionrec.models.neural.losses import SampledLoss
from sessionrec.models.neural.sampling import SampleStore
from sessionrec.models.neural.trainer import LossTracker, pessimistic_ranks

if TYPE_CHECKING:
    from sessionrec.models.neural.distributed import Workers
    from sessionrec.models.neural.gru4rec import GRU4Rec, GRU4RecNetwork


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
    input_types: np.ndarray | None = None  # int64 [n_rows]: the input click's event type code

    @property
    def n_steps(self) -> int:
        return int(self.step_offsets.shape[0] - 1)

    @property
    def n_rows(self) -> int:
        return int(self.inputs.shape[0])

    def step(self, t: int) -> slice:
        return slice(int(self.step_offsets[t]), int(self.step_offsets[t + 1]))


def session_parallel_plan(
    offsets: np.ndarray,
    items: np.ndarray,
    batch_size: int,
    min_rows: int = 1,
    types: np.ndarray | None = None,
) -> SessionParallelPlan:
    """Lay out an epoch of session-parallel mini-batches (see :class:`SessionParallelPlan`).

    ``offsets``/``items`` are CSR sessions in training order. Training stops once fewer than
    ``min_rows`` slots remain (a softmax over the batch's own targets needs two).
    ``types`` (aligned with ``items``): each click's event type code, laid out as the inputs.
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
        input_types=None if types is None else np.asarray(types, dtype=np.int64)[flat_click],
    )


def validation_plan(
    valid: SessionData, counts: np.ndarray, batch_size: int, types: bool = False
) -> SessionParallelPlan:
    """Session-parallel plan of the validation clicks on items the model was trained on
    (``counts > 0``), ``batch_size`` sessions at a time; with ``types``, the clicks'
    canonical event type codes too."""
    known = counts[valid.items] > 0
    kept = np.bincount(valid.session_index()[known], minlength=valid.n_sessions)
    offsets = np.zeros(valid.n_sessions + 1, dtype=np.int64)
    np.cumsum(kept, out=offsets[1:])
    codes = click_codes(valid.types, valid.event_types, valid.items.size)[known] if types else None
    return session_parallel_plan(offsets, valid.items[known], batch_size, min_rows=1, types=codes)


def session_parallel_ranks(
    network: GRU4RecNetwork, plan: SessionParallelPlan, bias: torch.Tensor
) -> np.ndarray:
    """The pessimistic rank of every target of ``plan`` among all items (``inf``: a miss),
    the network's states carried from click to click as in training, without dropout."""
    device = network.item_weights.device
    inputs = torch.as_tensor(plan.inputs, device=device)
    targets = torch.as_tensor(plan.targets, device=device)
    not_start = torch.as_tensor(~plan.starts, dtype=torch.float32, device=device)[:, None]
    types = None if plan.input_types is None else torch.as_tensor(plan.input_types, device=device)
    hidden = [
        torch.zeros((int(plan.step_offsets[1]), network.hidden_size), device=device)
        for _ in range(network.n_layers)
    ]
    ranks = []
    for t in range(plan.n_steps):
        rows = plan.step(t)
        if t in plan.keep:
            keep = torch.as_tensor(plan.keep[t], device=device)
            hidden = [h.index_select(0, keep) for h in hidden]
        hidden = [h * not_start[rows] for h in hidden]
        hidden = network.layers(
            network.embed(inputs[rows], None if types is None else types[rows]), hidden
        )
        scores = network.score_all(hidden[-1], bias)  # [n, n_items]
        ranks.append(pessimistic_ranks(scores, targets[rows]))
    return torch.cat(ranks).cpu().numpy()


# ---------------------------------------------------------------------------------- epoch
class SessionParallelEpoch:
    """One training epoch of session-parallel GRU4Rec; built once per fit, run per epoch.

    Everything that does not change between epochs (the batch layout, its tensors, the
    logQ corrections of the targets) is prepared here, so the step loop only slices.
    """

    def __init__(
        self,
        model: GRU4Rec,
        network: GRU4RecNetwork,
        train: SessionData,
        counts: np.ndarray,
        n_sample: int,
        generator: torch.Generator,
        device: torch.device,
        workers: Workers | None = None,
        target_counts: np.ndarray | None = None,
    ) -> None:
        """``counts``: the clicks per item the extra negatives are drawn by;
        ``target_counts`` (default ``counts``): those of the sessions trained on, whose
        targets are the in-batch negatives (a fine-tune's new sessions alone)."""
        self.model = model
        self.network = network
        self.device = device
        self.workers = workers
        self.n_sample = n_sample
        self.loss = SampledLoss(
            model.loss, bpreg=model.bpreg, elu_param=model.elu_param, logq=model.logq
        )
        self.optimizer = AdagradM(
            network.dense,
            list(network.tables.values()),
            lr=model.learning_rate,
            momentum=model.momentum,
        )
        # Without extra samples a row needs another row's target as its negative.
        slots = model.batch_size if workers is None else workers.local_batch(model.batch_size)
        codes = (
            click_codes(train.types, train.event_types, train.items.size)
            if network.type_embedding is not None
            else None
        )
        plan = session_parallel_plan(
            train.offsets, train.items, slots, min_rows=1 if n_sample else 2, types=codes
        )
        self.plan = plan
        self.n_steps = plan.n_steps
        # The most rows of its own (not the shared negatives) a step can touch in each
        # table: inputs and targets in the shared table, else targets or inputs alone.
        self.own_capacity = [2 * slots, slots] if network.inputs is None else [slots] * 3
        if workers is not None:
            # Every rank takes as many steps; one whose sessions ran out adds nothing to them.
            self.n_steps = workers.max_int(plan.n_steps)
            torch.manual_seed(int(workers.seed(model.seed).generate_state(1)[0]))  # dropout
        self.inputs = torch.as_tensor(plan.inputs, device=device)
        self.input_types = (
            None if plan.input_types is None else torch.as_tensor(plan.input_types, device=device)
        )
        self.targets = torch.as_tensor(plan.targets, device=device)
        self.not_start = torch.as_tensor(~plan.starts, dtype=torch.float32, device=device)[:, None]
        self.has_start = np.add.reduceat(plan.starts, plan.step_offsets[:-1]) > 0
        self.has_start[0] = False  # the first step starts from zero states anyway
        self.keep = {t: torch.as_tensor(rows, device=device) for t, rows in plan.keep.items()}
        with np.errstate(divide="ignore"):
            data = counts if target_counts is None else target_counts
            log_counts = np.log(data.astype(np.float64)).astype(np.float32)
        # logQ of an in-batch target: it is there because the data drew it, ~ popularity.
        self.target_log_q = torch.as_tensor(log_counts[plan.targets], device=device)
        self.samples = (
            SampleStore(counts, model.sample_alpha, n_sample, generator=generator, device=device)
            if n_sample
            else None
        )

    def run(self, epoch: int) -> tuple[float, int]:
        model, network, plan = self.model, self.network, self.plan
        d = model.hidden_size
        shared = network.inputs is None
        tracker = LossTracker(model.name, epoch, self.device)
        hidden = [
            torch.zeros((int(plan.step_offsets[1]), d), device=self.device)
            for _ in range(model.n_layers)
        ]
        no_samples = torch.zeros(0, dtype=torch.int64, device=self.device)
        no_log_q = torch.zeros(0, dtype=torch.float32, device=self.device)
        inv_batch = 1.0 / model.batch_size
        steps = progress(range(self.n_steps), total=self.n_steps, desc=f"gru4rec epoch {epoch}")
        for t in steps:
            if t >= plan.n_steps:  # distributed: this rank is done, the others are not
                samples = self.samples.draw()[0] if self.samples is not None else no_samples
                self.optimizer.step(*self._reduce(*self._no_gradient(samples), samples))
                continue
            rows = plan.step(t)
            n = rows.stop - rows.start
            if t in self.keep:
                hidden = [h.index_select(0, self.keep[t]) for h in hidden]
            if self.has_start[t]:
                hidden = [h * self.not_start[rows] for h in hidden]
            x, y = self.inputs[rows], self.targets[rows]
            samples, sample_log_q = (
                self.samples.draw() if self.samples is not None else (no_samples, no_log_q)
            )
            # The rows of the item tables this step touches are the leaves of the graph;
            # AdagradM applies their gradients row by row.
            out_ids = torch.cat([y, samples])  # [n + S]: the columns to score
            bias = network.item_bias.index_select(0, out_ids).requires_grad_()  # [n + S, 1]
            if shared:
                ids = torch.cat([x, out_ids])  # [2n + S]
                weights = network.item_weights.index_select(0, ids).requires_grad_()
                first, out = weights.split([n, out_ids.shape[0]])  # [n, d], [n + S, d]
                leaves = [weights, bias]
                table_rows = [(0, ids), (1, out_ids)]
            else:
                assert network.inputs is not None
                out = network.item_weights.index_select(0, out_ids).requires_grad_()
                first = network.inputs.index_select(0, x).requires_grad_()  # [n, e] or [n, 3d]
                leaves = [out, bias, first]
                table_rows = [(0, out_ids), (1, out_ids), (2, x)]
            if self.input_types is not None and network.type_embedding is not None:
                # Typed: the click's event type embedding is added to its item's.
                first = first + network.type_embedding.index_select(0, self.input_types[rows])
            states = network.layers(
                first,
                hidden,
                dropout_embed=model.dropout_p_embed,
                dropout_hidden=model.dropout_p_hidden,
                training=True,
            )
            scores = torch.addmm(bias.t(), states[-1], out.t())  # [n, n + S]
            log_q = (
                torch.cat([self.target_log_q[rows], sample_log_q]) if self.loss.uses_log_q else None
            )
            loss = self.loss(scores, log_q)
            grads = torch.autograd.grad(
                loss * inv_batch, [*leaves, *network.dense.tensors.values()]
            )
            leaf_grads = grads[: len(leaves)]
            dense_grads: Sequence[torch.Tensor] = grads[len(leaves) :]
            table_grads = [
                (table, ids_, g) for (table, ids_), g in zip(table_rows, leaf_grads, strict=True)
            ]
            if self.workers is not None:
                dense_grads, table_grads = self._reduce(dense_grads, table_grads, samples)
            self.optimizer.step(dense_grads, table_grads)
            tracker.add(loss.detach(), n)
            hidden = [h.detach() for h in states]
        if self.workers is not None:
            tables = list(network.tables.values())
            self.workers.check_replicas(model.name, [network.dense.flat, *tables])
        return tracker.mean(), tracker.n_examples

    def _reduce(
        self,
        dense_grads: Sequence[torch.Tensor],
        table_grads: list[tuple[int, torch.Tensor, torch.Tensor]],
        samples: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[tuple[int, torch.Tensor, torch.Tensor]]]:
        """Every rank's gradients summed (distributed training).

        Each rank's loss is already divided by the *global* batch size, so the sum is the
        gradient of the global batch. The rows of the extra negatives are the same on every
        rank (one seeded store, drawn in step), so their gradients are summed with the dense
        ones; only the rows of each rank's own inputs and targets travel with their numbers
        (one collective for all of it: :meth:`Workers.exchange`). AdagradM sums
        the gradients of a row that arrives more than once, as it does for a row that occurs
        twice in one step.
        """
        assert self.workers is not None
        n_samples = int(samples.shape[0])
        flat_parts = [g.reshape(-1) for g in dense_grads]
        own: list[tuple[torch.Tensor, torch.Tensor]] = []
        for number, rows, grads in table_grads:
            # The output tables' rows end with the samples; the input table has none.
            m = rows.shape[0] - (n_samples if number < 2 else 0)
            own.append((rows[:m], grads[:m]))
            flat_parts.append(grads[m:].reshape(-1))
        flat, gathered = self.workers.exchange(torch.cat(flat_parts), own, self.own_capacity)
        n_dense = self.network.dense.flat.numel()
        at = n_dense
        tables = []
        for (number, _, grads), (rows_all, grads_all) in zip(table_grads, gathered, strict=True):
            k, width = (n_samples if number < 2 else 0), int(grads.shape[1])
            sample_grads = flat[at : at + k * width].view(k, width)
            at += k * width
            tables.append(
                (
                    number,
                    torch.cat([rows_all, samples[:k]]),
                    torch.cat([grads_all, sample_grads]),
                )
            )
        return [flat[:n_dense]], tables

    def _no_gradient(
        self, samples: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[tuple[int, torch.Tensor, torch.Tensor]]]:
        """A step's gradients from a rank without examples: zero, on the shared negatives only.

        Laid out as a step with examples lays them out: one entry per table in table order,
        the output tables' rows ending with the step's samples.
        """
        no_rows = torch.zeros(0, dtype=torch.int64, device=self.device)
        tables = []
        for number, table in enumerate(self.network.tables.values()):
            rows = samples if number < 2 else no_rows
            tables.append((number, rows, table.new_zeros((rows.shape[0], table.shape[1]))))
        return [torch.zeros_like(self.network.dense.flat)], tables
