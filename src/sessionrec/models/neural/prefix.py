"""What the prefix models (NARM, STAMP, SR-GNN) share: prefix cases, batches, training, scoring.

These models read a whole session prefix and predict the next click with a full softmax over
every item. They are trained the way the benchmark protocol evaluates
(``shared/data/README.md``): every training session ``s`` of length ``n`` gives the cases
``s[:i] -> s[i]`` for ``i = 1..n-1``.

- :func:`prefix_cases` lists those cases as *indices* into the :class:`SessionData` CSR arrays
  (where the prefix starts, how long it is, which item follows): no padded copy of every prefix
  is ever built. A prefix longer than ``max_len`` keeps its ``max_len`` most recent clicks.
- :class:`PrefixBatches` shuffles the cases per epoch with the model's seed and gathers each
  mini-batch into a ``[B, L]`` matrix padded only to that batch's longest prefix, rows
  sorted by length; on a CPU the network then runs on runs of similar length
  (:func:`length_runs`), so short prefixes are not padded to the batch's longest.
- :class:`PrefixRecommender` is the base class: hyperparameter checks, the Adam training loop
  (with step learning-rate decay and L2) run by
  :func:`~sessionrec.models.neural.trainer.train_epochs` (validation-based epoch selection,
  early stopping, NaN detection), validation scored with :mod:`sessionrec.evaluation`'s ranking
  and metrics, the one ``score`` hook, the popularity fallback and persistence. A model
  supplies its network (:meth:`PrefixRecommender._build_network`) and how it turns a padded
  batch into session vectors (:meth:`PrefixRecommender._session_vectors`); every item is
  scored by the dot product of that vector with the item's embedding, shared with the input.
  A few live sessions (a service request) find their top k through an int8 copy of that
  table (:mod:`~sessionrec.models.neural.quantized_serving`), with the same answers.

Padded batches hold ``item index + 1`` with 0 as padding, prefixes left-aligned: position
``j < length`` is a click, the rest padding. Every network's embedding table therefore has
``n_items + 1`` rows, row 0 the padding.
"""

from __future__ import annotations

import abc
import copy
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sessionrec._errors import ConfigError, DataError
from sessionrec._progress import progress
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.models.base import SessionBatch
from sessionrec.models.neural import (
    ValidationCases,
    check_state,
    check_training_params,
    count_scoring,
    fit_or_forget,
    record_history,
    require_torch,
)
from sessionrec.models.neural.quantized_serving import QuantizedServing
from sessionrec.models.params import check_float, check_int, check_param

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sessionrec.models")

# A model's ``formulation``: its paper's equations, or the model of its authors' code where
# the two differ (STAMP, SR-GNN; each model's docstring lists how).
FORMULATIONS = ("paper", "authors-code")

SCORE_CHUNK = 512
"""Prefixes run through the network at once when scoring (bounds the activations' memory)."""


# ------------------------------------------------------------------------------ prefix cases
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
    ) -> None:
        self.cases = cases
        self.shifted = np.asarray(items, dtype=np.int64) + 1
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.n_batches = -(-len(cases) // batch_size) if n_batches is None else n_batches

    def __len__(self) -> int:
        return self.n_batches

    def epoch(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        order = self.rng.permutation(len(self.cases))
        if order.size < (self.n_batches - 1) * self.batch_size + 1:
            order = np.resize(order, self.n_batches * self.batch_size)  # repeats cyclically
        cases = self.cases
        for lo in range(0, order.size, self.batch_size):
            chosen = order[lo : lo + self.batch_size]
            chosen = chosen[np.argsort(cases.lengths[chosen], kind="stable")]
            lengths = cases.lengths[chosen]
            padded = pad_prefixes(self.shifted, cases.starts[chosen], lengths)
            yield padded, lengths, cases.targets[chosen]


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


# ------------------------------------------------------------------------------ base class
def embedding_weight(network: torch.nn.Module) -> torch.Tensor:
    """The network's item embedding table ``[n_items + 1, e]`` (row 0: padding)."""
    weight: torch.Tensor = network.get_submodule("embedding").weight  # type: ignore[assignment]
    return weight


class PrefixRecommender(QuantizedServing):
    """Base of the full-softmax prefix models; see the module docstring.

    Shared hyperparameters:

    - ``batch_size``, ``learning_rate``: Adam mini-batches and step size.
    - ``lr_decay``, ``lr_decay_every``: the learning rate is multiplied by ``lr_decay`` every
      ``lr_decay_every`` epochs (1.0: constant).
    - ``l2``: Adam's weight decay (L2 penalty on every parameter).
    - ``max_len``: a prefix longer than this keeps its most recent ``max_len`` clicks, in
      training and when scoring (training counts them in ``n_truncated_`` and logs it once).
    - ``n_epochs``, ``patience``, ``valid_fraction``, ``selection_metric``: with a validation
      split, either passed to ``fit`` or the chronologically last ``valid_fraction`` of the
      training sessions, keep the epoch with the best HR@20 or MRR@20 of every validation
      prefix (full ranking, pessimistic ties, :mod:`sessionrec.evaluation`) and stop after
      ``patience`` epochs without improvement (0: never stop early).
    - ``max_train_seconds``: a time budget in seconds for the epochs, validation included
      (None: none): no epoch starts that would pass it; see
      :func:`~sessionrec.models.neural.trainer.train_epochs`.
    - ``seed``, ``device``: reproducibility (initialisation, dropout, shuffling), and
      ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Scoring: items without training clicks are dropped from a session (like unknown items)
    and score ``-inf``; a session left empty gets the popularity fallback (training clicks
    per item as its scores). Threads: pin torch to one thread on a shared CPU
    (``OMP_NUM_THREADS=1``).

    Fitted attributes: ``network_`` (a ``torch.nn.Module``), ``item_counts_``,
    ``n_truncated_`` and the history ``epoch_losses_``, ``epoch_seconds_``,
    ``epoch_examples_``, ``epoch_valid_``, ``best_epoch_``.
    """

    artifact_version = 1
    trains_distributed = True

    network_: torch.nn.Module
    item_counts_: np.ndarray
    n_truncated_: int
    epoch_losses_: np.ndarray
    epoch_seconds_: np.ndarray
    epoch_examples_: np.ndarray
    epoch_valid_: np.ndarray
    best_epoch_: int
    _scoring_network: torch.nn.Module | None  # float64 copy for scoring, made lazily

    _HISTORY: ClassVar[tuple[str, ...]] = (
        "epoch_losses",
        "epoch_seconds",
        "epoch_examples",
        "epoch_valid",
    )

    # ----------------------------------------------------------------------- construction
    def _set_common(
        self,
        *,
        batch_size: int,
        learning_rate: float,
        lr_decay: float,
        lr_decay_every: int,
        l2: float,
        max_len: int,
        n_epochs: int,
        patience: int,
        valid_fraction: float,
        selection_metric: str,
        max_train_seconds: float | None,
        seed: int,
        device: str,
    ) -> None:
        """Check and store the shared hyperparameters (subclasses call it from ``__init__``)."""
        check_int("batch_size", batch_size)
        check_float("learning_rate", learning_rate, minimum=0.0, strict_min=True)
        check_float("lr_decay", lr_decay, minimum=0.0, strict_min=True)
        check_param("lr_decay", lr_decay, lr_decay <= 1.0, "expected a factor in (0, 1]")
        check_int("lr_decay_every", lr_decay_every)
        check_float("l2", l2, minimum=0.0)
        check_int("max_len", max_len)
        check_training_params(
            n_epochs=n_epochs,
            patience=patience,
            valid_fraction=valid_fraction,
            selection_metric=selection_metric,
            seed=seed,
            device=device,
            max_train_seconds=max_train_seconds,
        )
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.lr_decay_every = lr_decay_every
        self.l2 = l2
        self.max_len = max_len
        self.n_epochs = n_epochs
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.selection_metric = selection_metric
        self.max_train_seconds = max_train_seconds
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------- model-specific
    @abc.abstractmethod
    def _build_network(self, n_items: int) -> torch.nn.Module:
        """A freshly initialised network whose ``embedding`` has ``n_items + 1`` rows.

        Called inside the seeded block: draws from torch's global generator are reproducible.
        """

    @abc.abstractmethod
    def _session_vectors(
        self, network: torch.nn.Module, items: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Session vectors ``[B, e]`` from padded prefixes ``items [B, L]`` (0 = padding,
        left-aligned) and their lengths ``[B]`` (all >= 1). ``network.training`` says
        whether dropout applies."""

    def _batch_loss(
        self,
        network: torch.nn.Module,
        items: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """The summed full-softmax cross-entropy of a padded batch of prefixes.

        On a CPU, rows sorted by length (as :class:`PrefixBatches` gives them) run in
        :func:`length_runs`, each padded to its own longest prefix: the same sum, with far
        less padded work. On a GPU the batch runs whole: there padding costs parallel lanes
        rather than time, and cutting runs would need the lengths on the host every step
        (not measured: no GPU was available).
        """
        import torch
        from torch.nn import functional

        if items.device.type == "cpu" and items.shape[0] > 1:
            sizes = lengths.numpy()
            vectors = torch.cat(
                [
                    self._session_vectors(
                        network, items[lo:hi, : int(sizes[lo:hi].max())], lengths[lo:hi]
                    )
                    for lo, hi in length_runs(sizes)
                ]
            )  # [B, e]
        else:
            vectors = self._session_vectors(network, items, lengths)  # [B, e]
        logits = vectors @ self._item_table(network).t()  # [B, n_items]
        return functional.cross_entropy(logits, targets, reduction="sum")

    # ---------------------------------------------------------------------------- training
    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        require_torch(self.name)
        fit_or_forget(self, ("network_", "item_counts_"), lambda: self._train(train, valid))

    def _train(self, train: SessionData, valid: SessionData | None) -> None:
        import torch

        from sessionrec.models.neural import distributed
        from sessionrec.models.neural.trainer import (
            LossTracker,
            resolve_device,
            seeded,
            train_epochs,
        )

        if valid is None and self.valid_fraction > 0:
            train, valid = last_fraction_split(train, self.valid_fraction)
        item_counts = train.item_counts()  # of the whole training data, on every rank
        workers = distributed.current()
        batch_size = self.batch_size
        seed: int | np.random.SeedSequence = self.seed
        if workers is not None:  # this rank's sessions and share of each batch
            train = workers.shard(train)
            valid = workers.shard(valid) if valid is not None else None
            batch_size, seed = workers.local_batch(batch_size), workers.seed(self.seed)
        cases = prefix_cases(train.offsets, train.items, self.max_len)
        n_local_batches = -(-len(cases) // batch_size)
        n_cases, n_truncated, n_batches = len(cases), cases.n_truncated, n_local_batches
        if workers is not None:
            n_cases = workers.total_cases(n_cases)
            n_truncated = workers.total_cases(n_truncated)
            n_batches = workers.max_int(n_local_batches)
            if n_cases and workers.max_int(-len(cases)) == 0:  # some rank has no case
                raise DataError(
                    f"{self.name}: a rank's shard of the training sessions has no case to "
                    f"train on; use fewer than {workers.world_size} processes"
                )
        if n_cases == 0:
            raise DataError(f"{self.name} needs training sessions with at least two clicks")
        if n_truncated:
            log.info(
                "%s: %d of %d training prefixes are longer than max_len=%d and keep their "
                "most recent clicks only",
                self.name,
                n_truncated,
                n_cases,
                self.max_len,
            )
        device = resolve_device(self.device)
        batches = PrefixBatches(cases, train.items, batch_size, seed, n_batches)
        with seeded(self.seed, device):
            network = self._build_network(train.n_items).to(device)
            self.network_ = network
            self.item_counts_ = item_counts
            self.n_truncated_ = n_truncated
            self._prepare_scoring()
            step: torch.nn.Module = distributed.LossModule(network, self._batch_loss)
            if workers is not None:
                step = workers.wrap(step)
                # Identical initial weights (the seed), a dropout stream of its own per rank.
                torch.manual_seed(int(workers.seed(self.seed).generate_state(1)[0]))
            optimizer = torch.optim.Adam(
                network.parameters(), lr=self.learning_rate, weight_decay=self.l2
            )
            scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=self.lr_decay_every, gamma=self.lr_decay
            )

            def run_epoch(epoch: int) -> tuple[float, int]:
                step.train()
                tracker = LossTracker(self.name, epoch, device)
                steps = progress(batches.epoch(), total=len(batches), desc=f"{self.name} {epoch}")
                for padded, lengths, targets in steps:
                    loss = step(
                        torch.as_tensor(padded, device=device),
                        torch.as_tensor(lengths, device=device),
                        torch.as_tensor(targets, device=device),
                    )
                    optimizer.zero_grad(set_to_none=True)
                    (loss / targets.size).backward()  # the papers' mean over the batch
                    optimizer.step()
                    tracker.add(loss.detach(), int(targets.size))
                scheduler.step()
                step.eval()
                self._scoring_network = None  # the weights changed
                return tracker.mean(), tracker.n_examples

            validate = None
            if valid is not None:
                validate = distributed.validation(workers, *self._validator(valid))
            reports, best = train_epochs(
                model=self.name,
                n_epochs=self.n_epochs,
                run_epoch=run_epoch if workers is None else workers.reduce_epoch(run_epoch),
                validate=validate,
                patience=self.patience,
                snapshot=lambda: {k: v.detach().clone() for k, v in network.state_dict().items()},
                restore=network.load_state_dict,
                max_seconds=self.max_train_seconds,
                agree=None if workers is None else workers.any,
            )
        network.eval()
        self._scoring_network = None
        record_history(self, reports, best)

    def _validator(self, valid: SessionData) -> tuple[Any, int]:
        """HR@20 or MRR@20 (percent) of every next-click case of ``valid``, as evaluation
        does, and the number of those cases."""
        cases = ValidationCases(valid)
        return lambda: cases.metric(self._scores, self.selection_metric, SCORE_CHUNK), cases.n

    # ----------------------------------------------------------------------------- scoring
    @staticmethod
    def _item_table(network: torch.nn.Module) -> torch.Tensor:
        """The output vectors of the items ``[n_items, e]``: the embeddings without padding."""
        return embedding_weight(network)[1:]

    def _inference_network(self) -> torch.nn.Module:
        """A float64 copy of the network for scoring, made on first use after a change.

        Float32 matrix products round differently with the number of rows (torch picks
        kernels by shape), enough to reorder near-equal scores: a session's scores would
        depend on the batch it is scored in. In float64 the differences vanish in the final
        rounding to float32. Training stays in float32.
        """
        network = self._scoring_network
        if network is None:
            network = copy.deepcopy(self.network_).double().eval()
            self._scoring_network = network
        return network

    def _prepare_scoring(self) -> None:
        self._scoring_network = None
        device = embedding_weight(self.network_).device
        self._fallback, self._unseen, self._serving_bias = count_scoring(self.item_counts_, device)

    def score(self, batch: SessionBatch) -> np.ndarray:
        """Every item's score for each session: the network's, or the popularity fallback.

        Items without training clicks are dropped from the input and score ``-inf``; a session
        of more than ``max_len`` such clicks keeps the most recent ones; a session left empty
        gets the training clicks per item as scores.
        """
        return self._scores(batch).cpu().numpy()

    def _scores(self, batch: SessionBatch) -> torch.Tensor:
        """:meth:`score` as a float32 tensor on the model's device."""
        import torch

        self._check_fitted()
        n = len(batch)
        network = self._inference_network()
        device = embedding_weight(network).device
        scores = torch.empty((n, self.n_items), dtype=torch.float32, device=device)
        shifted, starts, kept = self._known_prefixes(batch)
        empty = kept == 0
        if empty.any():
            scores[torch.as_tensor(empty, device=device)] = self._fallback
        rows = np.flatnonzero(~empty)
        with torch.inference_mode():
            table = self._item_table(network)
            for lo in range(0, rows.size, SCORE_CHUNK):
                chunk = rows[lo : lo + SCORE_CHUNK]
                padded = pad_prefixes(shifted, starts[chunk], kept[chunk])
                vectors = self._session_vectors(
                    network,
                    torch.as_tensor(padded, device=device),
                    torch.as_tensor(kept[chunk], device=device),
                )
                logits = (vectors @ table.t()).index_fill_(1, self._unseen, -math.inf)
                if chunk[-1] - chunk[0] + 1 == chunk.size:  # consecutive rows: the usual case
                    # copy_ rounds to float32 in place; .float() would allocate a new matrix
                    # first, which cost more than the ranking on the CPU.
                    scores[int(chunk[0]) : int(chunk[-1]) + 1].copy_(logits)
                else:
                    scores.index_copy_(0, torch.as_tensor(chunk, device=device), logits.float())
        return scores

    def _known_prefixes(self, batch: SessionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each session's last ``max_len`` known clicks: (every known click shifted by one
        for the padding row, each session's start among them, its kept length)."""
        n = len(batch)
        known = self.item_counts_[batch.items] > 0 if batch.items.size else np.zeros(0, bool)
        owner = np.repeat(np.arange(n), batch.lengths)[known]
        lengths = np.bincount(owner, minlength=n).astype(np.int64)
        shifted = batch.items[known].astype(np.int64) + 1
        kept = np.minimum(lengths, self.max_len)
        return shifted, np.cumsum(lengths) - kept, kept

    # Serving: a few live sessions find their top k through an int8 copy of the float64
    # item table (QuantizedServing); evaluation batches take the dense product of _scores.
    def _serving_table(self) -> tuple[object, torch.Tensor, torch.Tensor]:
        network = self._inference_network()  # a new copy whenever the weights change
        return network, self._item_table(network).detach(), self._serving_bias

    def _session_states(self, batch: SessionBatch) -> tuple[np.ndarray, torch.Tensor]:
        import torch

        network = self._inference_network()
        device = embedding_weight(network).device
        shifted, starts, kept = self._known_prefixes(batch)
        rows = np.flatnonzero(kept > 0)
        if rows.size == 0:
            return rows, self._item_table(network)[:0]  # no vectors, the table's width
        with torch.inference_mode():
            padded = pad_prefixes(shifted, starts[rows], kept[rows])
            vectors = self._session_vectors(
                network,
                torch.as_tensor(padded, device=device),
                torch.as_tensor(kept[rows], device=device),
            )
        return rows, vectors

    def _fallback_scores(self) -> np.ndarray:
        return self._fallback.cpu().numpy()

    # ------------------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            "item_counts": self.item_counts_,
            "best_epoch": np.array([self.best_epoch_], dtype=np.int64),
            "n_truncated": np.array([self.n_truncated_], dtype=np.int64),
        }
        for key, tensor in self.network_.state_dict().items():
            state["net." + key] = tensor.detach().cpu().numpy()
        for key in self._HISTORY:
            state[key] = getattr(self, key + "_")
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        require_torch(self.name)
        import torch

        from sessionrec.models.neural.trainer import load_device

        device = load_device(self.device)
        # The saved weights overwrite the initialisation; seeding keeps loading side-effect
        # free for the caller's random state.
        with torch.random.fork_rng(devices=[]):
            network = self._build_network(self.n_items).to(device)
        expected = {"net." + key: tuple(value.shape) for key, value in network.state_dict().items()}
        other = {"item_counts", "best_epoch", "n_truncated", *self._HISTORY}
        check_state(self.name, state, expected, other, self.n_items)
        counts = state["item_counts"]
        network.load_state_dict(
            {key[4:]: torch.from_numpy(state[key]) for key in expected}, strict=True
        )
        network.eval()
        self.network_ = network
        self.item_counts_ = counts.astype(np.int64)
        self.best_epoch_ = int(state["best_epoch"].reshape(-1)[0])
        self.n_truncated_ = int(state["n_truncated"].reshape(-1)[0])
        for key in self._HISTORY:
            setattr(self, key + "_", np.asarray(state[key]))
        self._prepare_scoring()
