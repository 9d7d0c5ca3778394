"""GRU4Rec: a recurrent network over the clicks of the session, trained session-parallel.

References:
    Hidasi, Karatzoglou, Baltrunas & Tikk (2016), "Session-based recommendations with
    recurrent neural networks", ICLR: the model, session-parallel mini-batches, mini-batch
    based output sampling.
    Hidasi & Karatzoglou (2018), "Recurrent neural networks with top-k gains for
    session-based recommendations", CIKM: additional shared negative samples drawn by
    popularity^alpha, the BPR-max loss with score regularisation, ELU final activation,
    constrained (shared) input/output embeddings.
    Hidasi & Czapp (2023), "The effect of third party implementations on reproducibility",
    RecSys: the features that third-party implementations get wrong (session-parallel
    batches with hidden-state resets, no padding; sampling shared by the batch; separate
    embedding/hidden dropout; Adagrad with momentum; logQ-corrected cross-entropy; the
    tuned hyperparameters of the official code) and what they cost.

How it works. A session's clicks are fed one at a time to one or more GRU layers; the top
layer's state scores every item by a dot product with the item's output vector plus a bias
(with ``constrained_embedding`` the output vectors are also the input embeddings). Training
is session-parallel (:func:`~sessionrec.models.neural.gru4rec_training.session_parallel_plan`): the
hidden state of a slot is carried over from step to step and reset when its session ends,
gradients flow through the current step only (the hidden state from the previous step is
a constant), and each step scores its targets against the batch's other targets plus
``n_sample`` items drawn by popularity^``sample_alpha``
(:class:`~sessionrec.models.neural.sampling.SampleStore`). The loss is cross-entropy over
a softmax (with logQ correction weighted by ``logq``) or BPR-max over ELU
(:mod:`~sessionrec.models.neural.losses`), optimised by Adagrad with momentum with
row-sparse item tables (:class:`~sessionrec.models.neural.adagrad.AdagradM`).

Deviations from the papers and the official PyTorch code (hidasib/GRU4Rec_PyTorch_Official):

- All GRU layers have the same size (``hidden_size``, ``n_layers``) instead of a list of
  per-layer sizes.
- Every GRU layer uses the PyTorch ``GRUCell`` equations (reset gate applied after the
  recurrent product), as the official PyTorch code does for its layers. Its one-hot input
  mode (``constrained_embedding=False, embedding_size=0``) uses the Theano-era variant
  (reset gate before the product) for the first layer; here it uses the same equations,
  reading the first layer's input-gate rows from an item table.
- Initialisation: uniform ``±sqrt(6 / (fan_in + fan_out))`` per gate block and for the item
  table, biases zero (what the official code's default "compatibility mode" does), drawn
  from torch's seeded generator instead of numpy's.
- logQ correction subtracts ``logq * log(count)`` for the in-batch targets and
  ``logq * sample_alpha * log(count)`` for the extra samples (the unnormalised log
  probability of the process that put the item in the row), like the official code; the
  official code mislabels some columns on the last, shrinking steps of an epoch, here every
  column gets its own correction.
- The epoch's batches are laid out in advance in numpy, hidden states are detached rather
  than rebuilt, dense weights live in one flat buffer and item tables are updated by
  gathered rows instead of sparse gradient tensors: the same arithmetic with fewer
  operations per step, which is where the official code spends its time on CPU.
- Items without training clicks score ``-inf`` (the official code has no such items: its
  vocabulary is the training items) and are dropped from a session's input, like unknown
  items; a session without any known item scores ``-inf`` everywhere (no fallback).
- Validation, early stopping and epoch selection are added (the official code trains a fixed
  number of epochs): with a validation split (``fit(train, valid)`` or ``valid_fraction``)
  the epoch with the best ``selection_metric`` is kept and training stops after ``patience``
  epochs without improvement.
- The loss divides by the configured ``batch_size`` on every step, also on the last steps of
  an epoch when fewer sessions are left (as the official code does).
- On several processes (``torchrun``, :mod:`~sessionrec.models.neural.distributed`) each
  rank runs ``batch_size / N`` slots over its shard of the sessions; the gradients of all
  ranks are summed, so a step is the single-process step of the global batch, except that a
  row's in-batch negatives are the targets of its own rank's slots (the ``n_sample`` extra
  negatives are the same on every rank, drawn from the same seeded store).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec.data.sessions import SessionData, gather_ranges
from sessionrec.evaluation.metrics import hit_rate, mrr
from sessionrec.models.base import Reason, SessionBatch, distinct_recent_first
from sessionrec.models.neural.common import (
    LOSSES,
    NeuralRecommender,
    check_state,
    hyperparameters,
    require_torch,
)
from sessionrec.models.neural.event_types import (
    N_EVENT_TYPES,
    TYPE_EMBEDDING,
    check_event_types,
    click_codes,
    network_uses_event_types,
)
from sessionrec.models.params import check_choice, check_float, check_int, check_param

if TYPE_CHECKING:
    import torch

    from sessionrec.models.neural.distributed import Workers
    from sessionrec.models.neural.gru4rec_training import SessionParallelPlan

log = logging.getLogger("sessionrec.models")

VALID_BATCH_SIZE = 512
"""Sessions scored in parallel when validating (the official evaluation's batch size)."""

PRESET_FOLDER = Path(__file__).parent / "presets"
"""``<name>.json``: GRU4Rec's hyperparameter presets by dataset (``presets/README.md`` says
where each comes from); ``sessionrec ... --params-file`` reads them as they are."""


def presets() -> dict[str, dict[str, Any]]:
    """Every preset of :data:`PRESET_FOLDER` by name: ``GRU4Rec(**presets()["diginetica"])``."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(PRESET_FOLDER.glob("*.json"))
    }


# ------------------------------------------------------------------------------- network
def gru_cell(
    input_gates: torch.Tensor, hidden: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """One GRU step with the ``torch.nn.GRUCell`` equations, gates in (reset, update, new) order.

    ``input_gates``: ``[n, 3d]``, the input's contribution ``x @ W_ih + b_ih``.
    ``hidden``: ``[n, d]``. ``w_hh``: ``[d, 3d]``. ``b_hh``: ``[3d]``. Returns ``[n, d]``.
    """
    import torch

    d = hidden.shape[1]
    hidden_gates = torch.addmm(b_hh, hidden, w_hh)  # [n, 3d]
    x_rz, x_n = input_gates.split([2 * d, d], dim=1)
    h_rz, h_n = hidden_gates.split([2 * d, d], dim=1)
    reset, update = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)  # [n, d] each
    candidate = torch.tanh(x_n + reset * h_n)  # [n, d]
    return candidate + update * (hidden - candidate)  # (1 - z) * candidate + z * hidden


class GRU4RecNetwork:
    """GRU4Rec's weights and forward pass.

    Plain tensors rather than an ``nn.Module``: item tables are updated row by row by
    :class:`AdagradM` from gathered rows, and dense weights live in one
    :class:`FlatParameters` buffer, so the module machinery would only add overhead.

    ``item_weights`` ``[n_items, d]`` and ``item_bias`` ``[n_items, 1]``: each item's output
    vector and bias; with ``input_mode="shared"`` the output vectors are also the input
    embeddings. ``inputs``: the separate input table, ``[n_items, embedding_size]``
    (``"embedding"``), or the first layer's input-gate rows ``[n_items, 3d]`` (``"onehot"``,
    what a one-hot input times ``W_ih`` selects); ``None`` when shared.
    ``type_embedding`` (with ``event_types``, a dense weight starting at zero): a row per
    canonical event type added to the first layer's input; ``None`` without.
    """

    def __init__(
        self,
        n_items: int,
        *,
        hidden_size: int,
        n_layers: int,
        input_mode: str,
        embedding_size: int,
        device: torch.device,
        event_types: bool = False,
    ) -> None:
        import torch

        from sessionrec.models.neural.adagrad import FlatParameters

        d = hidden_size
        self.n_items = n_items
        self.hidden_size = d
        self.n_layers = n_layers
        self.input_mode = input_mode
        self.item_weights = torch.zeros((n_items, d), device=device)
        self.item_bias = torch.zeros((n_items, 1), device=device)
        input_width = {"shared": 0, "embedding": embedding_size, "onehot": 3 * d}[input_mode]
        self.inputs = torch.zeros((n_items, input_width), device=device) if input_width else None
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(n_layers):
            if not (layer == 0 and input_mode == "onehot"):
                fan_in = embedding_size if (layer == 0 and input_mode == "embedding") else d
                shapes[f"layer{layer}.w_ih"] = (fan_in, 3 * d)
            shapes[f"layer{layer}.w_hh"] = (d, 3 * d)
            shapes[f"layer{layer}.b_ih"] = (3 * d,)
            shapes[f"layer{layer}.b_hh"] = (3 * d,)
        if event_types:  # last, so the other weights keep their place and initial values
            first_width = input_width if input_mode != "shared" else d
            shapes[TYPE_EMBEDDING] = (N_EVENT_TYPES, first_width)
        self.dense = FlatParameters(shapes, device)
        self.type_embedding = self.dense.tensors.get(TYPE_EMBEDDING)
        w = self.dense.tensors
        self._layers = [
            (w.get(f"layer{i}.w_ih"), w[f"layer{i}.b_ih"], w[f"layer{i}.w_hh"], w[f"layer{i}.b_hh"])
            for i in range(n_layers)
        ]

    @property
    def tables(self) -> dict[str, torch.Tensor]:
        """Row-sparse tables by name, in :class:`AdagradM` order."""
        tables = {"item_weights": self.item_weights, "item_bias": self.item_bias}
        if self.inputs is not None:
            tables["inputs"] = self.inputs
        return tables

    def initialize(self, generator: torch.Generator) -> None:
        """Uniform ``±sqrt(6 / (fan_in + fan_out))`` per gate block and table; biases zero."""
        import torch

        d = self.hidden_size

        def uniform_(tensor: torch.Tensor, fan_in: int, fan_out: int) -> None:
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            values = torch.rand(tensor.shape, generator=generator, device=tensor.device)
            tensor.copy_(values.mul_(2 * bound).sub_(bound))

        with torch.no_grad():  # the dense leaves share the flat buffer
            self.dense.flat.zero_()
            self.item_bias.zero_()
            uniform_(self.item_weights, self.n_items, d)
            if self.inputs is not None:
                gates = 3 if self.input_mode == "onehot" else 1
                width = self.inputs.shape[1] // gates
                for gate in range(gates):
                    block = self.inputs[:, gate * width : (gate + 1) * width]
                    uniform_(block, self.n_items, width)
            for w_ih, _, w_hh, _ in self._layers:
                for gate in range(3):
                    if w_ih is not None:
                        uniform_(w_ih[:, gate * d : (gate + 1) * d], w_ih.shape[0], d)
                    uniform_(w_hh[:, gate * d : (gate + 1) * d], d, d)

    def embed(self, items: torch.Tensor, types: torch.Tensor | None = None) -> torch.Tensor:
        """The first layer's input for clicked ``items`` ``[n]`` (no gradient tracking),
        plus the type embedding of their canonical event ``types`` ``[n]`` when given (a
        network without the type table ignores them)."""
        table = self.item_weights if self.inputs is None else self.inputs
        first = table.index_select(0, items)  # [n, d], [n, embedding_size] or [n, 3d]
        if types is None or self.type_embedding is None:
            return first
        return first + self.type_embedding.index_select(0, types)

    def layers(
        self,
        first: torch.Tensor,
        hidden: list[torch.Tensor],
        *,
        dropout_embed: float = 0.0,
        dropout_hidden: float = 0.0,
        training: bool = False,
    ) -> list[torch.Tensor]:
        """Run every GRU layer one step; returns each layer's new state ``[n, d]``.

        ``first``: the embedded clicks ``[n, e]`` (or input-gate rows ``[n, 3d]`` in one-hot
        mode). ``hidden``: each layer's previous state ``[n, d]``. In training, dropout hits
        the embeddings and every layer's output, and the dropped-out output is the state
        carried to the next step, as in the official code. In one-hot mode there is no
        embedding to drop: ``dropout_embed`` applies to the first layer's output instead,
        again as the official code does.
        """
        import torch
        from torch.nn import functional

        onehot = self.input_mode == "onehot"
        x = first
        if training and dropout_embed > 0.0 and not onehot:
            x = functional.dropout(x, dropout_embed)
        states = []
        for layer, (w_ih, b_ih, w_hh, b_hh) in enumerate(self._layers):
            gates = x + b_ih if w_ih is None else torch.addmm(b_ih, x, w_ih)  # [n, 3d]
            x = gru_cell(gates, hidden[layer], w_hh, b_hh)
            p = dropout_embed if (layer == 0 and onehot) else dropout_hidden
            if training and p > 0.0:
                x = functional.dropout(x, p)
            states.append(x)
        return states

    def output_bias(self, counts: np.ndarray) -> torch.Tensor:
        """Output biases with ``-inf`` for items without training clicks (``[n_items]``)."""
        import torch

        unseen = torch.as_tensor(counts <= 0, device=self.item_bias.device)
        return self.item_bias[:, 0].masked_fill(unseen, -math.inf)

    def score_all(self, top: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Scores of every item ``[n, n_items]`` from the top layer's state ``[n, d]``."""
        import torch

        return torch.addmm(bias, top, self.item_weights.t())

    def snapshot(self) -> list[torch.Tensor]:
        return [t.clone() for t in (*self.tables.values(), self.dense.flat)]

    def restore(self, saved: list[torch.Tensor]) -> None:
        import torch

        with torch.no_grad():
            targets = (*self.tables.values(), self.dense.flat)
            for target, source in zip(targets, saved, strict=True):
                target.copy_(source)


# ----------------------------------------------------------------------------- estimator
@hyperparameters
class GRU4Rec(NeuralRecommender):
    """GRU4Rec (Hidasi et al. 2016; Hidasi & Karatzoglou 2018); see the module docstring.

    Hyperparameters (names follow the official code where it has them):

    - ``loss``: ``"cross-entropy"`` (softmax; ``logq`` weighs the logQ correction) or
      ``"bpr-max"`` (ELU with ``elu_param``, 0 = linear; ``bpreg`` weighs the score
      regularisation).
    - ``hidden_size``, ``n_layers``: GRU size and depth.
    - ``constrained_embedding``: input embeddings are the output vectors (shared);
      otherwise ``embedding_size`` > 0 gives a separate input embedding and 0 a one-hot input.
    - ``batch_size``, ``learning_rate``, ``momentum``: session-parallel slots, Adagrad step
      size and momentum.
    - ``dropout_p_embed``, ``dropout_p_hidden``: dropout on the input embeddings and on the
      GRU layers' outputs.
    - ``n_sample``, ``sample_alpha``: extra negatives per step shared by the batch (0 = only
      the in-batch targets), drawn with probability proportional to ``popularity ** alpha``.
    - ``event_types``: ``"auto"`` (default), ``True`` or ``False``: whether a learned
      embedding of each click's event type (view, cart, purchase) is added to the first
      layer's input (:mod:`~sessionrec.models.neural.event_types`). ``"auto"`` uses the
      types when the training data has events other than views; on data without types the
      model is exactly the untyped one. A batch scored without types is all views.
    - The training hyperparameters (``n_epochs``, ``patience``, ``valid_fraction``,
      ``selection_metric``, ``max_train_seconds``, ``seed``, ``device``) of
      :class:`~sessionrec.models.neural.common.NeuralRecommender`.

    Presets of tuned values by dataset: :func:`presets`.

    Threads: a step's matrices are small, so on a CPU shared with other jobs pin torch to one
    thread (``OMP_NUM_THREADS=1``): on the 2-core benchmark machine, two OpenMP threads that
    must both be scheduled for every product made training 15 times slower.

    Fitted attributes: ``network_`` (:class:`GRU4RecNetwork`), and those of every neural
    model (``item_counts_``, the training history).
    """

    name = "gru4rec"
    artifact_version = 1

    loss: str = "cross-entropy"
    hidden_size: int = 100
    n_layers: int = 1
    constrained_embedding: bool = True
    embedding_size: int = 0
    batch_size: int = 64
    dropout_p_embed: float = 0.0
    dropout_p_hidden: float = 0.0
    learning_rate: float = 0.05
    momentum: float = 0.0
    n_sample: int = 2048
    sample_alpha: float = 0.5
    bpreg: float = 1.0
    elu_param: float = 0.5
    logq: float = 1.0
    event_types: bool | str = "auto"

    fine_tunable = NeuralRecommender.fine_tunable | {
        "loss",
        "batch_size",
        "dropout_p_embed",
        "dropout_p_hidden",
        "learning_rate",
        "momentum",
        "n_sample",
        "sample_alpha",
        "bpreg",
        "elu_param",
        "logq",
    }

    def _check_params(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_int("hidden_size", self.hidden_size)
        check_int("n_layers", self.n_layers)
        check_param(
            "constrained_embedding",
            self.constrained_embedding,
            isinstance(self.constrained_embedding, bool),
            "expected true or false",
        )
        check_int("embedding_size", self.embedding_size, minimum=0)
        check_param(
            "embedding_size",
            self.embedding_size,
            not (self.constrained_embedding and self.embedding_size),
            "must be 0 with constrained_embedding (the input embeddings are the output "
            "vectors, of size hidden_size)",
        )
        check_int("batch_size", self.batch_size)
        for name in ("dropout_p_embed", "dropout_p_hidden"):
            value = getattr(self, name)
            check_float(name, value, minimum=0.0)
            check_param(name, value, value < 1.0, "expected a probability in [0, 1)")
        check_float("learning_rate", self.learning_rate, minimum=0.0, strict_min=True)
        check_float("momentum", self.momentum, minimum=0.0)
        check_param("momentum", self.momentum, self.momentum < 1.0, "expected a number in [0, 1)")
        check_int("n_sample", self.n_sample, minimum=0)
        check_float("sample_alpha", self.sample_alpha, minimum=0.0)
        check_float("bpreg", self.bpreg, minimum=0.0)
        check_float("elu_param", self.elu_param, minimum=0.0)
        check_float("logq", self.logq, minimum=0.0)
        check_event_types(self.event_types)
        super()._check_params()

    # ------------------------------------------------------------------------------ network
    @property
    def input_mode(self) -> str:
        if self.constrained_embedding:
            return "shared"
        return "embedding" if self.embedding_size else "onehot"

    def _new_network(
        self, n_items: int, device: torch.device, event_types: bool = False
    ) -> GRU4RecNetwork:
        return GRU4RecNetwork(
            n_items,
            hidden_size=self.hidden_size,
            n_layers=self.n_layers,
            input_mode=self.input_mode,
            embedding_size=self.embedding_size,
            device=device,
            event_types=event_types,
        )

    # ---------------------------------------------------------------------------- training
    def _start_training(
        self,
        train: SessionData,
        device: torch.device,
        generator: torch.Generator,
        workers: Workers | None,
    ) -> Callable[[int], tuple[float, int]]:
        from sessionrec.models.neural.gru4rec_training import SessionParallelEpoch

        counts = self.item_counts_
        n_sample = self._n_sample(int((counts > 0).sum()))
        warm = self._init_from
        # A fine-tuned model keeps its source's inputs (the weights are built for them).
        source = None if warm is None else warm.source._named_weights()
        typed = network_uses_event_types(self.event_types, train, source, workers)
        network = self._new_network(train.n_items, device, typed)
        network.initialize(generator)  # the same weights on every rank: the same seed
        self.network_ = network
        # In-batch targets are drawn by the sessions trained on: when fine-tuning, the new
        # ones alone (item_counts_ also holds the source model's clicks, for the negatives).
        data_counts = counts if warm is None else counts - warm.counts
        epoch = SessionParallelEpoch(
            self, network, train, counts, n_sample, generator, device, workers, data_counts
        )
        return epoch.run

    @property
    def uses_event_types_(self) -> bool:
        """Whether the fitted network embeds the clicks' event types (``event_types``)."""
        return self.network_.type_embedding is not None

    def _n_sample(self, n_trained_items: int) -> int:
        """``n_sample``, clamped (with a warning) to the items there are to sample."""
        if self.n_sample <= n_trained_items:
            return self.n_sample
        message = (
            f"n_sample={self.n_sample} is more than the {n_trained_items} items with training "
            f"clicks; using n_sample={n_trained_items}"
        )
        warnings.warn(message, UserWarning, stacklevel=5)  # the caller of fit
        log.warning(message)
        return n_trained_items

    def _snapshot(self) -> list[torch.Tensor]:
        return self.network_.snapshot()

    def _restore(self, saved: list[torch.Tensor]) -> None:
        self.network_.restore(saved)

    def _end_training(self) -> None:
        self._scoring_bias = self.network_.output_bias(self.item_counts_)

    def _named_weights(self) -> dict[str, torch.Tensor]:
        return {**self.network_.tables, **self.network_.dense.tensors}

    # -------------------------------------------------------------------------- validation
    def _validator(self, valid: SessionData) -> tuple[Callable[[], float], int]:
        """HR@20 or MRR@20 of the validation sessions walked session-parallel (as the
        official evaluation does), and the number of next-click cases."""
        from sessionrec.models.neural.gru4rec_training import validation_plan

        plan = validation_plan(
            valid, self.item_counts_, VALID_BATCH_SIZE, types=self.uses_event_types_
        )
        return lambda: self._validation_score(plan), plan.n_rows

    def _validation_score(self, plan: SessionParallelPlan) -> float:
        """HR@20 or MRR@20 (percent) of every next-click case of the validation plan."""
        import torch

        from sessionrec.models.neural.gru4rec_training import session_parallel_ranks

        network = self.network_
        with torch.inference_mode():
            ranks = session_parallel_ranks(network, plan, network.output_bias(self.item_counts_))
        metric = hit_rate if self.selection_metric == "hr@20" else mrr
        return 100.0 * metric(ranks, 20)  # percent, as sessionrec.evaluation reports it

    # ----------------------------------------------------------------------------- scoring
    def score(self, batch: SessionBatch) -> np.ndarray:
        """Run each session's known clicks through the GRU and score every item."""
        import torch

        self._check_fitted()
        scores = np.full((len(batch), self.n_items), -np.inf, dtype=np.float32)
        rows, top = self._session_states(batch)
        if rows.size:
            with torch.inference_mode():
                scores[rows] = self.network_.score_all(top, self._scoring_bias).cpu().numpy()
        return scores

    # Serving: a few live sessions find their top k through the int8 output table
    # (QuantizedServing); evaluation batches take the dense product of score().
    def _serving_table(self) -> tuple[object, torch.Tensor, torch.Tensor]:
        network = self.network_  # replaced by every fit and load
        return network, network.item_weights.detach(), self._scoring_bias

    def _session_states(self, batch: SessionBatch) -> tuple[np.ndarray, torch.Tensor]:
        """The top layer's state after each session's known clicks: (rows, ``[m, d]``).

        ``rows`` are the batch rows with at least one known click, in the order of the
        states. The sessions advance together, longest first, so the sessions still running
        at step ``t`` are a prefix of the batch and no step computes padding.
        """
        import torch

        self._check_fitted()
        n = len(batch)
        known = self.item_counts_[batch.items] > 0 if batch.items.size else np.zeros(0, bool)
        items = batch.items[known].astype(np.int64)
        typed = self.uses_event_types_
        lengths = np.bincount(np.repeat(np.arange(n), batch.lengths)[known], minlength=n).astype(
            np.int64
        )
        rows = np.flatnonzero(lengths > 0)
        device = self.network_.item_weights.device
        if rows.size == 0:
            return rows, torch.zeros((0, self.hidden_size), device=device)
        order = rows[np.argsort(-lengths[rows], kind="stable")]
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        sorted_lengths = lengths[order]
        padded = np.zeros((order.size, int(sorted_lengths[0])), dtype=np.int64)
        owner = np.repeat(np.arange(order.size), sorted_lengths)
        position = np.arange(owner.size) - np.repeat(
            np.cumsum(sorted_lengths) - sorted_lengths, sorted_lengths
        )
        clicked = gather_ranges(starts[order], sorted_lengths)
        padded[owner, position] = items[clicked]
        click_types = None
        if typed:  # codes laid out as the clicks are
            codes = click_codes(batch.types, batch.event_types, batch.items.size)[known]
            padded_types = np.zeros_like(padded)
            padded_types[owner, position] = codes[clicked]
            click_types = torch.as_tensor(padded_types, device=device)
        active = (sorted_lengths[None, :] > np.arange(padded.shape[1])[:, None]).sum(axis=1)
        with torch.inference_mode():
            network = self.network_
            clicks = torch.as_tensor(padded, device=device)  # [m, longest]
            hidden = [
                torch.zeros((order.size, self.hidden_size), device=device)
                for _ in range(self.n_layers)
            ]
            for t, m in enumerate(active.tolist()):
                step_types = None if click_types is None else click_types[:m, t]
                first = network.embed(clicks[:m, t], step_types)
                states = network.layers(first, [h[:m] for h in hidden])
                for h, state in zip(hidden, states, strict=True):
                    h[:m] = state
        return order, hidden[-1]

    # ------------------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        network = self.network_
        state = self._history_state()
        for key, tensor in {**network.tables, **network.dense.tensors}.items():
            state[key] = tensor.detach().cpu().numpy()
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        require_torch(self.name)
        import torch

        from sessionrec.models.neural.devices import load_device

        # The type table is saved with the weights: its presence says whether it was used.
        typed = TYPE_EMBEDDING in state
        network = self._new_network(self.n_items, load_device(self.device), typed)
        tensors = {**network.tables, **network.dense.tensors}
        expected = {key: tuple(tensor.shape) for key, tensor in tensors.items()}
        check_state("GRU4Rec", state, expected, set(self._SAVED_KEYS), self.n_items)
        with torch.no_grad():
            for key, tensor in tensors.items():
                tensor.copy_(torch.from_numpy(state[key]))
        self.network_ = network
        self._set_history_state(state)
        self._scoring_bias = network.output_bias(self.item_counts_)

    # ------------------------------------------------------------------------ explanations
    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """Kind ``"embedding"``: session items by cosine similarity to the target's output vector.

        With ``constrained_embedding`` (shared tables) a session item's input embedding
        lives in the same space as the target's output vector and is compared directly.
        Otherwise the input table has another width (or holds gate rows) and was trained
        apart, so the session items' own output vectors stand in for it: item-to-item
        similarity in the space the scores are computed in. The GRU's state mixes all
        clicks, so this names the most similar items, not an exact share of the score.
        Items without training clicks (dropped from the input by :meth:`score`) are skipped.
        """
        import torch
        from torch.nn import functional

        known = distinct_recent_first(session)
        known = known[self.item_counts_[known] > 0]
        if known.size == 0:
            return [Reason("embedding") for _ in targets]
        # Shared tables: item_weights *is* the input embedding; otherwise the stand-in.
        vectors = self.network_.item_weights  # [n_items, d]
        with torch.inference_mode():
            device = vectors.device
            session_vectors = vectors.index_select(0, torch.as_tensor(known, device=device))
            target_vectors = vectors.index_select(0, torch.as_tensor(targets, device=device))
            cosine = (
                functional.normalize(target_vectors, dim=1)
                @ functional.normalize(session_vectors, dim=1).t()
            )
            similarity = cosine.double().cpu().numpy()  # [n_targets, q]
        # The ``top`` most similar whatever the sign of the cosine ("at least the most
        # similar item"), ties to the more recent click; the weight is the cosine itself.
        reasons = []
        names = self.vocab_.decode(known)
        for row in similarity:
            order = np.argsort(-row, kind="stable")[:top]
            reasons.append(
                Reason("embedding", tuple((names[i], float(row[i])) for i in order.tolist()))
            )
        return reasons
