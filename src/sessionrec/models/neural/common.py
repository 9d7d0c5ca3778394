"""What every neural model shares: its training hyperparameters and the training skeleton.

:class:`NeuralRecommender` owns what GRU4Rec, the prefix models and SASRec do alike: the
hyperparameters of training (epochs, early stopping, validation split, time budget, seed,
device), declared and checked once; ``fit`` (validation split, sharding across processes,
seeding, the epoch loop of :func:`~sessionrec.models.neural.trainer.train_epochs`, the
training history); and the saved history arrays. A model supplies its network and its epoch
(:meth:`NeuralRecommender._start_training`), how to keep and restore the best epoch's
weights, and its scoring.

Importing this module never imports torch: a model can be constructed and listed without it;
fitting or loading one needs torch, and :func:`require_torch` says how to install it.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.util
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, dataclass_transform

import numpy as np

from sessionrec._errors import ConfigError, DataError, ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.models.base import SessionBatch, TrainingHistory
from sessionrec.models.neural.devices import DEVICE_PATTERN
from sessionrec.models.neural.quantized_serving import QuantizedServing
from sessionrec.models.params import check_choice, check_float, check_int, check_param

if TYPE_CHECKING:
    import torch

    from sessionrec.models.neural.distributed import Workers
    from sessionrec.models.neural.fine_tune import WarmStart
    from sessionrec.models.neural.trainer import EpochReport

log = logging.getLogger("sessionrec.models")

LOSSES: tuple[str, ...] = ("cross-entropy", "bpr-max")
"""Training losses of the sampled-score models (see :mod:`~sessionrec.models.neural.losses`)."""

SELECTION_METRICS: tuple[str, ...] = ("hr@20", "mrr@20")
"""Validation metrics that select the epoch (``selection_metric``)."""

HISTORY_KEYS: tuple[str, ...] = ("epoch_losses", "epoch_seconds", "epoch_examples", "epoch_valid")
"""The per-epoch arrays a fit keeps (as ``<key>_`` attributes) and a saved model holds."""


# ----------------------------------------------------------------------------- torch extra
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


# ------------------------------------------------------------------------ hyperparameters
_Class = TypeVar("_Class", bound=type)


@dataclass_transform(kw_only_default=True)
def hyperparameters(cls: _Class) -> _Class:
    """Make ``cls``'s annotated class attributes its keyword-only hyperparameters.

    A dataclass that only stores (its own ``__repr__`` and identity comparison stay those of
    :class:`~sessionrec.models.base.Recommender`); checks go in ``_check_params``, which
    ``__post_init__`` calls. A base class declares a group of hyperparameters once, and a
    model lists its own and any base default it changes.

    The signature, which ``get_params`` and the registry read, lists the model's own
    hyperparameters first and the groups of its bases after them (a dataclass would put the
    bases' first), so ``sessionrec models`` lists them as it always has.
    """
    dataclasses.dataclass(kw_only=True, eq=False, repr=False)(cls)  # changes cls in place
    mro = cls.__mro__

    def group(name: str) -> int:  # position in the MRO of the class that declared it first
        return max(i for i, c in enumerate(mro) if name in vars(c).get("__annotations__", {}))

    init = cls.__init__  # type: ignore[misc]
    signature = inspect.signature(init)
    self_param, *params = signature.parameters.values()
    ordered = sorted(params, key=lambda p: group(p.name))  # stable: in-group order kept
    init.__signature__ = signature.replace(parameters=[self_param, *ordered])
    return cls


def refit_params(params: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """The hyperparameters that train a setting again once validation has chosen its epochs.

    ``epochs`` epochs on all the data: no validation split (the split's sessions are the
    most recent, the nearest to what the model will be asked) and no time budget (the count
    is fixed). The benchmark protocol's last step; the GRU4Rec protocol's ``train_full``.
    """
    check_int("epochs", epochs)
    return {**params, "n_epochs": int(epochs), "valid_fraction": 0.0, "max_train_seconds": None}


# ----------------------------------------------------------------------- saved state
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


# ------------------------------------------------------------------------------ scoring
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
        self.types, self.event_types = valid.types, valid.event_types

    def batch(self, lo: int, hi: int) -> SessionBatch:
        """Cases ``lo:hi`` as a batch of sessions, built as the evaluation builds them."""
        from sessionrec.evaluation.protocol import prefix_batch

        return prefix_batch(
            self.items,
            None,
            self.starts[lo:hi],
            self.lengths[lo:hi],
            self.types,
            self.event_types,
        )

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


# ---------------------------------------------------------------------------- the base
@hyperparameters
class NeuralRecommender(QuantizedServing):
    """Base of the neural models: training hyperparameters, the training skeleton, history.

    Training hyperparameters (every neural model has them; a model may change a default):

    - ``n_epochs``: training epochs (the most, with early stopping).
    - ``patience``, ``valid_fraction``, ``selection_metric``: with a validation split, either
      passed to ``fit`` or the chronologically last ``valid_fraction`` of the training
      sessions, keep the epoch with the best HR@20 or MRR@20 (full ranking, pessimistic ties)
      and stop after ``patience`` epochs without improvement (0: never stop early).
    - ``max_train_seconds``: a time budget in seconds for the epochs, validation included
      (None: none): no epoch starts that would pass it; see
      :func:`~sessionrec.models.neural.trainer.train_epochs`.
    - ``seed``, ``device``: reproducibility (initialisation, dropout, shuffling, sampling),
      and ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Threads: torch uses every core by default; on a CPU shared with other jobs pin it to one
    thread (``OMP_NUM_THREADS=1``).

    Fitted attributes every neural model has: ``item_counts_`` (training clicks per item)
    and the training history ``epoch_losses_``, ``epoch_seconds_``, ``epoch_examples_``,
    ``epoch_valid_`` (NaN for an epoch without validation) and ``best_epoch_``
    (:meth:`training_history` returns them together).

    A trained model can be fine-tuned on newer sessions, new items included:
    :meth:`fine_tune` (``docs/fine-tuning.md``).
    """

    n_epochs: int = 10
    patience: int = 3
    valid_fraction: float = 0.0
    selection_metric: str = "hr@20"
    max_train_seconds: float | None = None
    seed: int = 42
    device: str = "auto"

    trains_distributed = True

    fine_tunable: ClassVar[frozenset[str]] = frozenset(
        {"n_epochs", "patience", "valid_fraction", "selection_metric", "max_train_seconds"}
        | {"seed", "device"}
    )
    """The hyperparameters :meth:`fine_tune` may change: how to train, not what the weights
    are (a model adds its own, e.g. ``learning_rate``, ``batch_size``, dropout)."""

    def __post_init__(self) -> None:
        self._check_params()
        self._init_from: WarmStart | None = None  # set by fine_tune for the one fit it runs

    def _check_params(self) -> None:
        """Reject out-of-range hyperparameters (a model checks its own, then calls this)."""
        check_int("n_epochs", self.n_epochs)
        check_int("patience", self.patience, minimum=0)
        check_float("valid_fraction", self.valid_fraction, minimum=0.0)
        check_param(
            "valid_fraction", self.valid_fraction, self.valid_fraction < 1.0, "expected [0, 1)"
        )
        check_choice("selection_metric", self.selection_metric, SELECTION_METRICS)
        check_int("seed", self.seed, minimum=0)
        check_param(
            "device",
            self.device,
            isinstance(self.device, str) and bool(DEVICE_PATTERN.match(self.device)),
            "expected 'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        if self.max_train_seconds is not None:
            check_float("max_train_seconds", self.max_train_seconds, minimum=0.0, strict_min=True)

    # --------------------------------------------------------------------------- training
    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        """Split, shard, seed, build, run the epochs with validation, keep the history."""
        require_torch(self.name)
        from sessionrec.models.neural import distributed
        from sessionrec.models.neural.devices import resolve_device
        from sessionrec.models.neural.trainer import seeded, train_epochs

        if valid is None and self.valid_fraction > 0:
            train, valid = last_fraction_split(train, self.valid_fraction)
        if not (train.lengths >= 2).any():
            raise DataError(
                f"{type(self).__name__} needs training sessions with at least two clicks"
            )
        warm = self._init_from
        self.item_counts_ = train.item_counts()  # of the whole training data, on every rank
        if warm is not None:  # fine-tuning: the source model's clicks count too
            self.item_counts_ = self.item_counts_ + warm.counts
        workers = distributed.current()
        if workers is not None:  # this rank's sessions (distributed: see that module)
            train = workers.shard(train)
            valid = workers.shard(valid) if valid is not None else None
        device = resolve_device(self.device)
        with seeded(self.seed, device) as generator:
            run_epoch = self._start_training(train, device, generator, workers)
            if warm is not None:
                from sessionrec.models.neural.fine_tune import copy_weights

                # Over the fresh initialisation: the new items' rows keep theirs.
                n_new = self.n_items - warm.source.n_items
                copy_weights(self.name, warm.source._named_weights(), self._named_weights(), n_new)
            validate = None
            if valid is not None:
                validate = distributed.validation(workers, *self._validator(valid))
            reports, best = train_epochs(
                model=self.name,
                n_epochs=self.n_epochs if warm is None else warm.n_epochs,
                run_epoch=run_epoch if workers is None else workers.reduce_epoch(run_epoch),
                validate=validate,
                patience=self.patience,
                snapshot=self._snapshot,
                restore=self._restore,
                max_seconds=self.max_train_seconds,
                agree=None if workers is None else workers.any,
            )
        self._end_training()
        self._record_history(reports, best)

    @abc.abstractmethod
    def _start_training(
        self,
        train: SessionData,
        device: torch.device,
        generator: torch.Generator,
        workers: Workers | None,
    ) -> Callable[[int], tuple[float, int]]:
        """Build and initialise the network (fitted attributes from here on) and return the
        function that runs one epoch: ``run_epoch(epoch) -> (mean loss, examples)``.

        Runs inside the seeded block: draws from torch's global generator and ``generator``
        (on ``device``) are reproducible. ``train`` is this rank's shard when ``workers``.
        """

    def _validator(self, valid: SessionData) -> tuple[Callable[[], float], int]:
        """The validation metric (HR@20 or MRR@20, percent) of the current weights on every
        next-click case of ``valid``, ranked as the evaluation ranks, and the number of
        cases. By default :meth:`_validation_scores`, :meth:`_validation_chunk` at a time."""
        cases = ValidationCases(valid)
        chunk = self._validation_chunk()
        return lambda: cases.metric(self._validation_scores, self.selection_metric, chunk), cases.n

    def _validation_scores(self, batch: SessionBatch) -> Any:
        """Scores for validation (a numpy array or a tensor on the model's device)."""
        return self.score(batch)

    def _validation_chunk(self) -> int:
        """Validation cases scored at once."""
        return 512

    @abc.abstractmethod
    def _snapshot(self) -> Any:
        """A copy of the weights (the best epoch's, kept while later epochs train)."""

    @abc.abstractmethod
    def _restore(self, saved: Any) -> None:
        """Put back the weights of :meth:`_snapshot`."""

    def _end_training(self) -> None:
        """Make the trained weights ready for scoring (after the best epoch is restored)."""

    @abc.abstractmethod
    def _named_weights(self) -> dict[str, torch.Tensor]:
        """Every weight tensor of the network by name (the live tensors, to copy into in
        place); the item tables' first dimension runs over the items, new ones last."""

    # ------------------------------------------------------------------------- fine-tuning
    def fine_tune(
        self, train: SessionData, valid: SessionData | None = None, **changes: Any
    ) -> Self:
        """A new model that starts from this one's weights and trains on ``train`` (the
        newest sessions); this model is left as it is (it may be serving).

        ``changes``: hyperparameters to train with (``n_epochs``, ``learning_rate``, ...;
        the others are this model's). Only those of :attr:`fine_tunable` may differ from
        this model's: a change to the architecture (``hidden_size``, ...) raises
        :class:`ConfigError`. ``n_epochs=0`` trains nothing (the new model scores the old
        items as this one does). ``valid`` (or ``valid_fraction``) selects the epoch as in
        :meth:`fit`.

        Items clicked in ``train`` that this model does not know are appended to the
        vocabulary: every old item keeps its internal index. Their rows in the item tables
        start as a fresh network's would; every other weight starts as this model's. Items
        not clicked again keep their rows. The training clicks per item
        (:meth:`training_counts`) are this model's plus ``train``'s, and the data
        fingerprint names both (:func:`~sessionrec.models.vocab_growth.chained_fingerprint`).
        The optimiser starts afresh (its state is not saved): a smaller ``learning_rate``
        than the first training's keeps the first steps from undoing it.
        See ``docs/fine-tuning.md``.
        """
        from sessionrec.models.neural.fine_tune import WarmStart, fine_tune_params
        from sessionrec.models.vocab_growth import (
            chained_fingerprint,
            extended_counts,
            extended_vocab,
        )

        self._check_fitted()
        if not isinstance(train, SessionData):
            raise DataError(f"fine_tune expects SessionData, got {type(train).__name__}")
        params = fine_tune_params(self, changes)
        vocab = extended_vocab(self.vocab_, train)
        prior = extended_counts(self.item_counts_, len(vocab))
        epochs = int(changes.get("n_epochs", self.n_epochs))
        log.info(
            "fine-tuning %s on %d sessions for %d epoch(s): %d new item(s)",
            self.name,
            train.n_sessions,
            epochs,
            len(vocab) - self.n_items,
        )
        model = type(self)(**params)
        model._init_from = WarmStart(self, prior, epochs)
        extended = train.with_vocab(vocab)
        try:
            model.fit(extended, None if valid is None else valid.with_vocab(vocab))
        finally:
            model._init_from = None
        model.training_counts_ = prior + extended.item_counts()
        model.data_fingerprint_ = chained_fingerprint(self.data_fingerprint_, train.fingerprint())
        return model

    # ---------------------------------------------------------------------------- history
    def _record_history(self, reports: list[EpochReport], best_epoch: int) -> None:
        self.epoch_losses_ = np.array([r.loss for r in reports])
        self.epoch_seconds_ = np.array([r.seconds for r in reports])
        self.epoch_examples_ = np.array([r.n_examples for r in reports], dtype=np.int64)
        self.epoch_valid_ = np.array([np.nan if r.valid is None else r.valid for r in reports])
        self.best_epoch_ = best_epoch

    def training_history(self) -> TrainingHistory:
        """The last fit's per-epoch losses, times, examples and validation metric."""
        self._check_fitted()
        return TrainingHistory(
            losses=self.epoch_losses_,
            seconds=self.epoch_seconds_,
            examples=self.epoch_examples_,
            valid=self.epoch_valid_,
            valid_metric=self.selection_metric,
            best_epoch=self.best_epoch_,
        )

    def training_counts(self) -> np.ndarray:
        self._check_fitted()
        return self.item_counts_

    # ------------------------------------------------------------------------- saved state
    _SAVED_KEYS: ClassVar[tuple[str, ...]] = ("item_counts", "best_epoch", *HISTORY_KEYS)
    """The state keys :meth:`_history_state` writes; a model's ``_set_state`` expects them."""

    def _history_state(self) -> dict[str, np.ndarray]:
        """The saved arrays every neural model has: counts, best epoch, history."""
        state = {
            "item_counts": self.item_counts_,
            "best_epoch": np.array([self.best_epoch_], dtype=np.int64),
        }
        for key in HISTORY_KEYS:
            state[key] = getattr(self, key + "_")
        return state

    def _set_history_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_counts_ = state["item_counts"].astype(np.int64)
        self.best_epoch_ = int(state["best_epoch"].reshape(-1)[0])
        for key in HISTORY_KEYS:
            setattr(self, key + "_", np.asarray(state[key]))
