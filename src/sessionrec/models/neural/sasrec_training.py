"""How SASRec trains: every session's window of clicks, batched by length, and the epoch.

Every training session with a next click gives one window: its last ``max_len + 1`` clicks at
most, whose first ``L`` are the inputs and last ``L`` the targets. Windows of equal ``L`` are
batched together (no padding); batch order is shuffled every epoch. :class:`SASRecEpoch`
runs one epoch with the full softmax (``loss="ce"``) or the TRON sampled softmax
(``loss="sampled"``), Adam with the paper's betas.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from sessionrec._errors import DataError
from sessionrec._progress import progress
from sessionrec.data.sessions import SessionData, gather_ranges
from sessionrec.models.neural.distributed import LossModule
from sessionrec.models.neural.event_types import click_codes
from sessionrec.models.neural.losses import masked_sampled_softmax
from sessionrec.models.neural.sampling import SampleStore, sampling_weights
from sessionrec.models.neural.trainer import LossTracker

if TYPE_CHECKING:
    from sessionrec.models.neural.distributed import Workers
    from sessionrec.models.neural.sasrec import SASRec

log = logging.getLogger("sessionrec.models")


class SASRecEpoch:
    """One training epoch of SASRec (see the module docstring); built once per fit, run per
    epoch."""

    def __init__(
        self,
        model: SASRec,
        train: SessionData,
        counts: np.ndarray,
        generator: torch.Generator,
        device: torch.device,
        workers: Workers | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.batch_size = model.batch_size
        self.rng = np.random.default_rng(model.seed)
        if workers is not None:  # its share of each global batch, its own shuffling
            self.batch_size = workers.local_batch(model.batch_size)
            self.rng = np.random.default_rng(workers.seed(model.seed))
        lengths = train.lengths
        usable = np.flatnonzero(lengths >= 2)
        self.window = np.minimum(lengths[usable] - 1, model.max_len).astype(np.int64)  # L
        self.start = (train.offsets[usable] + lengths[usable] - 1 - self.window).astype(np.int64)
        cut = lengths[usable] - 1 - self.window
        self.truncated_sessions = int((cut > 0).sum())
        self.truncated_clicks = int(cut.sum())
        if self.truncated_sessions:
            log.info(
                "sasrec: %d training session(s) longer than max_len + 1 = %d clicks cut to "
                "their most recent clicks (%d clicks dropped)",
                self.truncated_sessions,
                model.max_len + 1,
                self.truncated_clicks,
            )
        self.items = torch.as_tensor(np.asarray(train.items, dtype=np.int64), device=device)
        self.types = (  # the clicks' canonical event type codes, for a typed network
            torch.as_tensor(
                click_codes(train.types, train.event_types, train.items.size), device=device
            )
            if model.uses_event_types_
            else None
        )
        unseen = torch.as_tensor(counts <= 0, device=device)
        self.unseen_bias = torch.zeros(len(counts), device=device).masked_fill_(unseen, -math.inf)
        self.store: SampleStore | None = None
        if model.loss == "sampled":
            self._prepare_sampling(train, counts, generator)
        self.optimizer = torch.optim.Adam(
            list(model.weights_.values()), lr=model.learning_rate, betas=(0.9, 0.98)
        )
        # The weights as one module ('.' is not allowed in a module's parameter names).
        module = torch.nn.ParameterDict(
            {name.replace(".", "/"): w for name, w in model.weights_.items()}
        )
        self.step: torch.nn.Module = LossModule(module, self._batch_loss)
        windows, n_windows = np.unique(self.window, return_counts=True)
        per_batch = np.maximum(1, self.batch_size // windows)
        self.n_batches = int((-(-n_windows // per_batch)).sum())  # as batches() cuts them
        if workers is not None:
            self.step = workers.wrap(self.step)
            # Every rank takes as many steps (see distributed); a dropout stream per rank.
            self.n_batches = workers.max_int(self.n_batches)
            if workers.max_int(-self.window.size) == 0:  # some rank has no window
                raise DataError(
                    "sasrec: a rank's shard of the training sessions has no session with a "
                    f"next click; use fewer than {workers.world_size} processes"
                )
            torch.manual_seed(int(workers.seed(model.seed).generate_state(1)[0]))

    def _prepare_sampling(
        self, train: SessionData, counts: np.ndarray, generator: torch.Generator
    ) -> None:
        model = self.model
        n_trained = int((counts > 0).sum())
        n_neg = model.n_negatives
        if n_neg > n_trained:
            message = (
                f"n_negatives={n_neg} is more than the {n_trained} items with training "
                f"clicks; using n_negatives={n_trained}"
            )
            warnings.warn(message, UserWarning, stacklevel=6)
            log.warning(message)
            n_neg = n_trained
        self.n_negatives = n_neg
        # log of each item's share of the training targets: in-batch columns are drawn by
        # the data, so their sampling probability is their share of the targets.
        target_clicks = gather_ranges(self.start + 1, self.window)
        target_counts = np.bincount(train.items[target_clicks], minlength=len(counts))
        with np.errstate(divide="ignore"):
            share = np.log(target_counts / target_counts.sum())
            weights = sampling_weights(counts, model.sample_alpha)
            shared = np.log(weights / weights.sum()) + math.log(max(n_neg, 1))
        self.log_q_target = torch.as_tensor(share.astype(np.float32), device=self.device)
        self.log_q_shared = torch.as_tensor(shared.astype(np.float32), device=self.device)
        if n_neg:
            self.store = SampleStore(
                counts, model.sample_alpha, n_neg, generator=generator, device=self.device
            )

    def batches(self) -> list[np.ndarray]:
        """This epoch's batches: arrays of window numbers, one window length per batch.

        Distributed, a rank with fewer batches than another repeats its first ones (in the
        epoch's shuffled order) so that every rank takes as many steps.
        """
        order = self.rng.permutation(self.window.size)
        order = order[np.argsort(self.window[order], kind="stable")]
        sorted_len = self.window[order]
        bounds = np.flatnonzero(np.diff(sorted_len)) + 1
        out: list[np.ndarray] = []
        for group in np.split(order, bounds):
            per_batch = max(1, self.batch_size // int(self.window[group[0]]))
            out.extend(np.split(group, np.arange(per_batch, group.size, per_batch)))
        shuffled = [out[i] for i in self.rng.permutation(len(out))]
        return [shuffled[i % len(shuffled)] for i in range(self.n_batches)]

    def _batch_loss(
        self, _module: torch.nn.Module, clicks: torch.Tensor, types: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The summed loss of a batch of windows ``clicks [B, L + 1]`` (item indices), the
        inputs' event type codes ``types [B, L]`` with a typed network."""
        model = self.model
        weights = model.weights_  # the same tensors as the module's parameters
        table = weights["item_embedding"]
        inputs, targets = clicks[:, :-1], clicks[:, 1:].reshape(-1)  # [B, L], [P]
        hidden = model.outputs(inputs, types, training=True).reshape(-1, table.shape[1])
        n = targets.shape[0]
        if model.loss == "ce":
            logits = torch.addmm(self.unseen_bias, hidden, table.t())  # [P, n_items]
            loss: torch.Tensor = F.cross_entropy(logits, targets, reduction="sum")
            return loss
        if self.store is not None:
            negatives, _ = self.store.draw()  # [S]
        else:
            negatives = targets.new_zeros(0)
        columns = torch.cat([targets, negatives])  # [P + S]
        logits = hidden @ table[columns].t()  # [P, P + S]
        log_q = torch.cat([self.log_q_target[targets] + math.log(n), self.log_q_shared[negatives]])
        return masked_sampled_softmax(logits, columns, log_q, model.logq)

    def run(self, epoch: int) -> tuple[float, int]:
        tracker = LossTracker(self.model.name, epoch, self.device)
        batches = self.batches()
        self.step.train()
        for rows in progress(batches, total=len(batches), desc=f"sasrec epoch {epoch}"):
            length = int(self.window[rows[0]])
            clicks = torch.as_tensor(
                self.start[rows][:, None] + np.arange(length + 1), device=self.device
            )  # [B, L + 1]
            n = int(rows.size) * length
            if self.types is None:
                loss = self.step(self.items[clicks])
            else:
                loss = self.step(self.items[clicks], self.types[clicks[:, :-1]])
            self.optimizer.zero_grad(set_to_none=True)
            (loss / n).backward()
            self.optimizer.step()
            tracker.add(loss.detach(), n)
        return tracker.mean(), tracker.n_examples
