"""The base of the prefix models (NARM, STAMP, SR-GNN): a full softmax over a session prefix.

These models read a whole session prefix and predict the next click with a full softmax over
every item, trained on every prefix of every training session
(:mod:`~sessionrec.models.neural.prefix_training` lays the cases out and runs an epoch).

:class:`PrefixRecommender` adds to :class:`~sessionrec.models.neural.common.NeuralRecommender`
(epochs, validation, seeding, history) what the three share: the Adam hyperparameters (with
step learning-rate decay and L2) and ``max_len``, validation scored with
:mod:`sessionrec.evaluation`'s ranking and metrics, the one ``score`` hook, the popularity
fallback and persistence. A model supplies its network
(:meth:`PrefixRecommender._build_network`) and how it turns a padded batch into session
vectors (:meth:`PrefixRecommender._session_vectors`); every item is scored by the dot
product of that vector with the item's embedding, shared with the input. A few live
sessions (a service request) find their top k through an int8 copy of that table
(:mod:`~sessionrec.models.neural.quantized_serving`), with the same answers.

NARM and STAMP add each click's event-type embedding to its item embedding
(:meth:`PrefixRecommender._embed`, their ``event_types`` hyperparameter; the table is an
extra ``type_embedding`` module of the network, present only when used); SR-GNN does not.
"""

from __future__ import annotations

import abc
import copy
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._errors import DataError
from sessionrec.models.base import SessionBatch
from sessionrec.models.neural.common import (
    NeuralRecommender,
    check_state,
    count_scoring,
    hyperparameters,
    require_torch,
)
from sessionrec.models.neural.event_types import (
    N_EVENT_TYPES,
    TYPE_EMBEDDING,
    click_codes,
    network_uses_event_types,
)
from sessionrec.models.neural.prefix_training import (
    PrefixBatches,
    PrefixEpoch,
    length_runs,
    pad_prefixes,
    prefix_cases,
)
from sessionrec.models.params import check_float, check_int, check_param

if TYPE_CHECKING:
    import torch

    from sessionrec.data.sessions import SessionData
    from sessionrec.models.neural.distributed import Workers

log = logging.getLogger("sessionrec.models")

# A model's ``formulation``: its paper's equations, or the model of its authors' code where
# the two differ (STAMP, SR-GNN; each model's docstring lists how).
FORMULATIONS = ("paper", "authors-code")

SCORE_CHUNK = 512
"""Prefixes run through the network at once when scoring (bounds the activations' memory)."""


def embedding_weight(network: torch.nn.Module) -> torch.Tensor:
    """The network's item embedding table ``[n_items + 1, e]`` (row 0: padding)."""
    weight: torch.Tensor = network.get_submodule("embedding").weight  # type: ignore[assignment]
    return weight


@hyperparameters
class PrefixRecommender(NeuralRecommender):
    """Base of the full-softmax prefix models; see the module docstring.

    Hyperparameters shared by the prefix models (besides the training ones of
    :class:`~sessionrec.models.neural.common.NeuralRecommender`):

    - ``batch_size``, ``learning_rate``: Adam mini-batches and step size.
    - ``lr_decay``, ``lr_decay_every``: the learning rate is multiplied by ``lr_decay`` every
      ``lr_decay_every`` epochs (1.0: constant).
    - ``l2``: Adam's weight decay (L2 penalty on every parameter).
    - ``max_len``: a prefix longer than this keeps its most recent ``max_len`` clicks, in
      training and when scoring (training counts them in ``n_truncated_`` and logs it once).

    Validation ranks every validation prefix against every item (pessimistic ties), as
    :mod:`sessionrec.evaluation` does.

    Scoring: items without training clicks are dropped from a session (like unknown items)
    and score ``-inf``; a session left empty gets the popularity fallback (training clicks
    per item as its scores).

    Fitted attributes: ``network_`` (a ``torch.nn.Module``), ``n_truncated_`` and those of
    every neural model (``item_counts_``, the training history).
    """

    artifact_version = 1

    batch_size: int = 512
    learning_rate: float = 0.001
    lr_decay: float = 1.0
    lr_decay_every: int = 1
    l2: float = 0.0
    max_len: int = 50
    n_epochs: int = 30

    fine_tunable = NeuralRecommender.fine_tunable | {
        "batch_size",
        "learning_rate",
        "lr_decay",
        "lr_decay_every",
        "l2",
        "max_len",
    }

    def _check_params(self) -> None:
        check_int("batch_size", self.batch_size)
        check_float("learning_rate", self.learning_rate, minimum=0.0, strict_min=True)
        check_float("lr_decay", self.lr_decay, minimum=0.0, strict_min=True)
        check_param("lr_decay", self.lr_decay, self.lr_decay <= 1.0, "expected a factor in (0, 1]")
        check_int("lr_decay_every", self.lr_decay_every)
        check_float("l2", self.l2, minimum=0.0)
        check_int("max_len", self.max_len)
        super()._check_params()

    # ------------------------------------------------------------------- model-specific
    @abc.abstractmethod
    def _build_network(self, n_items: int) -> torch.nn.Module:
        """A freshly initialised network whose ``embedding`` has ``n_items + 1`` rows.

        Called inside the seeded block: draws from torch's global generator are reproducible.
        """

    @abc.abstractmethod
    def _session_vectors(
        self,
        network: torch.nn.Module,
        items: torch.Tensor,
        lengths: torch.Tensor,
        types: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Session vectors ``[B, e]`` from padded prefixes ``items [B, L]`` (0 = padding,
        left-aligned) and their lengths ``[B]`` (all >= 1). ``network.training`` says
        whether dropout applies. ``types`` ``[B, L]``: the clicks' event type codes, for a
        network with the type table (:meth:`_embed` adds them)."""

    @staticmethod
    def _embed(
        network: torch.nn.Module, items: torch.Tensor, types: torch.Tensor | None
    ) -> torch.Tensor:
        """The item embeddings of padded prefixes ``[B, L, e]``, plus each click's event
        type embedding when ``types`` are given (padding stays zero)."""
        net: Any = network
        embedded: torch.Tensor = net.embedding(items)
        if types is None:
            return embedded
        clicks = (items > 0).unsqueeze(2).to(embedded.dtype)
        return embedded + net[TYPE_EMBEDDING](types) * clicks

    @property
    def uses_event_types_(self) -> bool:
        """Whether the fitted network embeds the clicks' event types (``event_types``)."""
        return TYPE_EMBEDDING in dict(self.network_.named_children())

    def _event_types_setting(self) -> bool | str:
        """The model's ``event_types`` (NARM, STAMP); a model without it never reads types."""
        return False

    def _add_type_table(self, network: torch.nn.Module) -> None:
        """Give ``network`` the type embedding, zero (an untrained type changes nothing)."""
        import torch
        from torch import nn

        table = embedding_weight(network)
        embedding = nn.Embedding(N_EVENT_TYPES, table.shape[1]).to(table.device)
        with torch.no_grad():
            embedding.weight.zero_()
        network.add_module(TYPE_EMBEDDING, embedding)

    def _batch_loss(
        self,
        network: torch.nn.Module,
        items: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        types: torch.Tensor | None = None,
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
            runs = []
            for lo, hi in length_runs(sizes):
                width = int(sizes[lo:hi].max())
                run_types = None if types is None else types[lo:hi, :width]
                runs.append(
                    self._session_vectors(network, items[lo:hi, :width], lengths[lo:hi], run_types)
                )
            vectors = torch.cat(runs)  # [B, e]
        else:
            vectors = self._session_vectors(network, items, lengths, types)  # [B, e]
        logits = vectors @ self._item_table(network).t()  # [B, n_items]
        return functional.cross_entropy(logits, targets, reduction="sum")

    # ---------------------------------------------------------------------------- training
    def _start_training(
        self,
        train: SessionData,
        device: torch.device,
        generator: torch.Generator,
        workers: Workers | None,
    ) -> Callable[[int], tuple[float, int]]:
        batch_size = self.batch_size
        seed: int | np.random.SeedSequence = self.seed
        if workers is not None:  # this rank's share of each batch, its own shuffling
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
        if n_truncated:
            log.info(
                "%s: %d of %d training prefixes are longer than max_len=%d and keep their "
                "most recent clicks only",
                self.name,
                n_truncated,
                n_cases,
                self.max_len,
            )
        warm = self._init_from
        # A fine-tuned model keeps its source's inputs (the weights are built for them).
        typed = (
            f"{TYPE_EMBEDDING}.weight" in warm.source._named_weights()
            if warm is not None
            else network_uses_event_types(self._event_types_setting(), train, None, workers)
        )
        codes = click_codes(train.types, train.event_types, train.items.size) if typed else None
        batches = PrefixBatches(cases, train.items, batch_size, seed, n_batches, codes)
        network = self._build_network(train.n_items).to(device)
        if typed:
            self._add_type_table(network)
        self.network_ = network
        self.n_truncated_ = n_truncated
        self._scoring_network: torch.nn.Module | None = None  # float64 copy, made lazily
        self._prepare_scoring()
        epoch = PrefixEpoch(
            self.name,
            network,
            self._batch_loss,
            batches,
            learning_rate=self.learning_rate,
            l2=self.l2,
            lr_decay=self.lr_decay,
            lr_decay_every=self.lr_decay_every,
            seed=self.seed,
            device=device,
            workers=workers,
        )

        def run_epoch(number: int) -> tuple[float, int]:
            result = epoch.run(number)
            self._scoring_network = None  # the weights changed: validation copies them anew
            return result

        return run_epoch

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.network_.state_dict().items()}

    def _restore(self, saved: dict[str, torch.Tensor]) -> None:
        self.network_.load_state_dict(saved)

    def _end_training(self) -> None:
        self.network_.eval()
        self._scoring_network = None

    def _named_weights(self) -> dict[str, torch.Tensor]:
        # state_dict's tensors share the parameters' storage: copying into them sets them.
        return dict(self.network_.state_dict())

    def _validation_scores(self, batch: SessionBatch) -> torch.Tensor:
        return self._scores(batch)

    def _validation_chunk(self) -> int:
        return SCORE_CHUNK

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
        codes = self._known_types(batch)
        with torch.inference_mode():
            table = self._item_table(network)
            for lo in range(0, rows.size, SCORE_CHUNK):
                chunk = rows[lo : lo + SCORE_CHUNK]
                padded = pad_prefixes(shifted, starts[chunk], kept[chunk])
                types = None
                if codes is not None:
                    types = torch.as_tensor(
                        pad_prefixes(codes, starts[chunk], kept[chunk]), device=device
                    )
                vectors = self._session_vectors(
                    network,
                    torch.as_tensor(padded, device=device),
                    torch.as_tensor(kept[chunk], device=device),
                    types,
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
        codes = self._known_types(batch)
        with torch.inference_mode():
            padded = pad_prefixes(shifted, starts[rows], kept[rows])
            types = None
            if codes is not None:
                types = torch.as_tensor(
                    pad_prefixes(codes, starts[rows], kept[rows]), device=device
                )
            vectors = self._session_vectors(
                network,
                torch.as_tensor(padded, device=device),
                torch.as_tensor(kept[rows], device=device),
                types,
            )
        return rows, vectors

    def _known_types(self, batch: SessionBatch) -> np.ndarray | None:
        """The event type codes of the known clicks (as :meth:`_known_prefixes` keeps them)
        for a typed network, else ``None``; a batch without types is all views."""
        if not self.uses_event_types_:
            return None
        known = self.item_counts_[batch.items] > 0 if batch.items.size else np.zeros(0, bool)
        return click_codes(batch.types, batch.event_types, batch.items.size)[known]

    def _fallback_scores(self) -> np.ndarray:
        return self._fallback.cpu().numpy()

    # ------------------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = self._history_state()
        state["n_truncated"] = np.array([self.n_truncated_], dtype=np.int64)
        for key, tensor in self.network_.state_dict().items():
            state["net." + key] = tensor.detach().cpu().numpy()
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        require_torch(self.name)
        import torch

        from sessionrec.models.neural.devices import load_device

        device = load_device(self.device)
        # The saved weights overwrite the initialisation; seeding keeps loading side-effect
        # free for the caller's random state.
        with torch.random.fork_rng(devices=[]):
            network = self._build_network(self.n_items).to(device)
        if f"net.{TYPE_EMBEDDING}.weight" in state:  # saved with the weights when used
            self._add_type_table(network)
        expected = {"net." + key: tuple(value.shape) for key, value in network.state_dict().items()}
        other = {*self._SAVED_KEYS, "n_truncated"}
        check_state(self.name, state, expected, other, self.n_items)
        network.load_state_dict(
            {key[4:]: torch.from_numpy(state[key]) for key in expected}, strict=True
        )
        network.eval()
        self.network_ = network
        self._set_history_state(state)
        self.n_truncated_ = int(state["n_truncated"].reshape(-1)[0])
        self._prepare_scoring()
