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
is session-parallel (:func:`~sessionrec.models.neural.trainer.session_parallel_plan`): the
hidden state of a slot is carried over from step to step and reset when its session ends,
gradients flow through the current step only (the hidden state from the previous step is
a constant), and each step scores its targets against the batch's other targets plus
``n_sample`` items drawn by popularity^``sample_alpha``
(:class:`~sessionrec.models.neural.sampling.SampleStore`). The loss is cross-entropy over
a softmax (with logQ correction weighted by ``logq``) or BPR-max over ELU
(:mod:`~sessionrec.models.neural.losses`), optimised by Adagrad with momentum with
row-sparse item tables (:class:`~sessionrec.models.neural.trainer.AdagradM`).

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

import logging
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sessionrec._errors import DataError
from sessionrec._progress import progress
from sessionrec.data.sessions import SessionData, gather_ranges
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.metrics import hit_rate, mrr
from sessionrec.models.base import Reason, SessionBatch, distinct_recent_first
from sessionrec.models.neural import (
    LOSSES,
    check_state,
    check_training_params,
    fit_or_forget,
    record_history,
    require_torch,
)
from sessionrec.models.neural.quantized_serving import QuantizedServing
from sessionrec.models.params import check_choice, check_float, check_int, check_param

if TYPE_CHECKING:
    import torch
    from torch.nn import functional as F

    from sessionrec.models.neural import distributed
    from sessionrec.models.neural.losses import SampledLoss
    from sessionrec.models.neural.sampling import SampleStore
    from sessionrec.models.neural.trainer import (
        AdagradM,
        FlatParameters,
        LossTracker,
        SessionParallelPlan,
        load_device,
        pessimistic_ranks,
        resolve_device,
        seeded,
        session_parallel_plan,
        train_epochs,
    )


def _bind_torch(model: str) -> None:
    """Import torch and the training helpers on first use, into this module's namespace.

    Importing torch costs seconds and hundreds of MB; ``import sessionrec`` (every CLI call,
    every service worker) must not pay that for a model it may never use. Fitting or
    loading a GRU4Rec calls this first; everything else runs after one of those.
    """
    require_torch(model)
    if "torch" in globals():
        return
    import torch as torch_module
    from torch.nn import functional

    from sessionrec.models.neural import distributed, losses, sampling, trainer

    globals().update(
        torch=torch_module,
        distributed=distributed,
        F=functional,
        SampledLoss=losses.SampledLoss,
        SampleStore=sampling.SampleStore,
        **{
            name: getattr(trainer, name)
            for name in (
                "AdagradM",
                "FlatParameters",
                "LossTracker",
                "SessionParallelPlan",
                "pessimistic_ranks",
                "load_device",
                "resolve_device",
                "seeded",
                "session_parallel_plan",
                "train_epochs",
            )
        },
    )


log = logging.getLogger("sessionrec.models")

VALID_BATCH_SIZE = 512
"""Sessions scored in parallel when validating (the official evaluation's batch size)."""

PRESETS: dict[str, dict[str, Any]] = {
    # The official code's tuned parameter files (paramfiles/*.py of the official PyTorch
    # repository, from Hidasi & Czapp 2023), written with this class's names. The
    # rsc15-100k / YooChoose sample and Diginetica are the shared datasets; see BENCHMARKS.md.
    "rsc15-100": {  # paramfiles/rsc15_xe_shared_100_best.py: YooChoose, 100 units
        "loss": "cross-entropy",
        "constrained_embedding": True,
        "hidden_size": 100,
        "n_layers": 1,
        "batch_size": 32,
        "dropout_p_embed": 0.0,
        "dropout_p_hidden": 0.4,
        "learning_rate": 0.2,
        "momentum": 0.2,
        "n_sample": 2048,
        "sample_alpha": 0.5,
        "logq": 1.0,
        "n_epochs": 10,
    },
    "yoochoose": {  # paramfiles/yoochoose_xe_shared_best.py: YooChoose, unrestricted size
        "loss": "cross-entropy",
        "constrained_embedding": True,
        "hidden_size": 480,
        "n_layers": 1,
        "batch_size": 48,
        "dropout_p_embed": 0.0,
        "dropout_p_hidden": 0.2,
        "learning_rate": 0.07,
        "momentum": 0.0,
        "n_sample": 2048,
        "sample_alpha": 0.2,
        "logq": 1.0,
        "n_epochs": 10,
    },
    "diginetica": {  # paramfiles/diginetica_bprmax_shared_best.py
        "loss": "bpr-max",
        "constrained_embedding": True,
        "hidden_size": 512,
        "n_layers": 1,
        "batch_size": 128,
        "dropout_p_embed": 0.5,
        "dropout_p_hidden": 0.3,
        "learning_rate": 0.05,
        "momentum": 0.15,
        "n_sample": 2048,
        "sample_alpha": 0.3,
        "bpreg": 0.9,
        "elu_param": 1.0,
        "n_epochs": 10,
    },
}
"""Hyperparameter presets by dataset (``GRU4Rec(**PRESETS["diginetica"])``); the same are in
``presets/*.json`` beside this module for ``sessionrec ... --params-file``. The first three
are the official code's tuned files; the ``benchmark-*`` ones were chosen on this project's
validation splits of the two benchmark folders."""

# Chosen here on the validation split of the benchmark protocol (the last 10% of
# train_sessions.txt, MRR@20), every candidate listed in BENCHMARKS.md: written as the changes
# to an official file. n_epochs is the count validation chose, which the refit on the whole
# training file runs.
PRESETS["benchmark-diginetica"] = {  # diginetica/srgnn
    **PRESETS["diginetica"],
    "learning_rate": 0.03,
    "n_epochs": 9,
}
PRESETS["benchmark-yoochoose-1_64"] = {  # yoochoose/srgnn-1_64
    **PRESETS["rsc15-100"],
    "dropout_p_embed": 0.25,
    "n_sample": 4096,
    "n_epochs": 23,
}


def gru_cell(
    input_gates: torch.Tensor, hidden: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """One GRU step with the ``torch.nn.GRUCell`` equations, gates in (reset, update, new) order.

    ``input_gates``: ``[n, 3d]``, the input's contribution ``x @ W_ih + b_ih``.
    ``hidden``: ``[n, d]``. ``w_hh``: ``[d, 3d]``. ``b_hh``: ``[3d]``. Returns ``[n, d]``.
    """
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
    ) -> None:
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
        self.dense = FlatParameters(shapes, device)
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

    def embed(self, items: torch.Tensor) -> torch.Tensor:
        """The first layer's input for clicked ``items`` ``[n]`` (no gradient tracking)."""
        table = self.item_weights if self.inputs is None else self.inputs
        return table.index_select(0, items)  # [n, d], [n, embedding_size] or [n, 3d]

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
        onehot = self.input_mode == "onehot"
        x = first
        if training and dropout_embed > 0.0 and not onehot:
            x = F.dropout(x, dropout_embed)
        states = []
        for layer, (w_ih, b_ih, w_hh, b_hh) in enumerate(self._layers):
            gates = x + b_ih if w_ih is None else torch.addmm(b_ih, x, w_ih)  # [n, 3d]
            x = gru_cell(gates, hidden[layer], w_hh, b_hh)
            p = dropout_embed if (layer == 0 and onehot) else dropout_hidden
            if training and p > 0.0:
                x = F.dropout(x, p)
            states.append(x)
        return states

    def output_bias(self, counts: np.ndarray) -> torch.Tensor:
        """Output biases with ``-inf`` for items without training clicks (``[n_items]``)."""
        unseen = torch.as_tensor(counts <= 0, device=self.item_bias.device)
        return self.item_bias[:, 0].masked_fill(unseen, -math.inf)

    def score_all(self, top: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Scores of every item ``[n, n_items]`` from the top layer's state ``[n, d]``."""
        return torch.addmm(bias, top, self.item_weights.t())

    def snapshot(self) -> list[torch.Tensor]:
        return [t.clone() for t in (*self.tables.values(), self.dense.flat)]

    def restore(self, saved: list[torch.Tensor]) -> None:
        with torch.no_grad():
            targets = (*self.tables.values(), self.dense.flat)
            for target, source in zip(targets, saved, strict=True):
                target.copy_(source)


class GRU4Rec(QuantizedServing):
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
    - ``n_epochs``: training epochs (the most, with early stopping).
    - ``patience``, ``valid_fraction``, ``selection_metric``: with a validation split, either
      passed to ``fit`` or the chronologically last ``valid_fraction`` of the training
      sessions, keep the epoch with the best HR@20 or MRR@20 (full ranking, pessimistic ties)
      and stop after ``patience`` epochs without improvement (0: never stop early).
    - ``max_train_seconds``: a time budget in seconds for the epochs, validation included
      (None: none): no epoch starts that would pass it; see
      :func:`~sessionrec.models.neural.trainer.train_epochs`.
    - ``seed``, ``device``: reproducibility, and ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Threads: torch uses every core by default. A step's matrices are small, so on a CPU shared
    with other jobs pin torch to one thread (``OMP_NUM_THREADS=1``): on the 2-core benchmark
    machine, two OpenMP threads that must both be scheduled for every product made training
    15 times slower.

    Fitted attributes: the network, ``item_counts_`` and the training history
    (``epoch_losses_``, ``epoch_seconds_``, ``epoch_examples_``, ``epoch_valid_`` and
    ``best_epoch_``).
    """

    name = "gru4rec"
    artifact_version = 1
    trains_distributed = True

    network_: GRU4RecNetwork
    item_counts_: np.ndarray
    _scoring_bias: torch.Tensor  # output biases, -inf for items without training clicks
    epoch_losses_: np.ndarray
    epoch_seconds_: np.ndarray
    epoch_examples_: np.ndarray
    epoch_valid_: np.ndarray
    best_epoch_: int

    _HISTORY: ClassVar[tuple[str, ...]] = (
        "epoch_losses",
        "epoch_seconds",
        "epoch_examples",
        "epoch_valid",
    )

    def __init__(
        self,
        *,
        loss: str = "cross-entropy",
        hidden_size: int = 100,
        n_layers: int = 1,
        constrained_embedding: bool = True,
        embedding_size: int = 0,
        batch_size: int = 64,
        dropout_p_embed: float = 0.0,
        dropout_p_hidden: float = 0.0,
        learning_rate: float = 0.05,
        momentum: float = 0.0,
        n_sample: int = 2048,
        sample_alpha: float = 0.5,
        bpreg: float = 1.0,
        elu_param: float = 0.5,
        logq: float = 1.0,
        n_epochs: int = 10,
        patience: int = 3,
        valid_fraction: float = 0.0,
        selection_metric: str = "hr@20",
        max_train_seconds: float | None = None,
        seed: int = 42,
        device: str = "auto",
    ) -> None:
        check_choice("loss", loss, LOSSES)
        check_int("hidden_size", hidden_size)
        check_int("n_layers", n_layers)
        check_param(
            "constrained_embedding",
            constrained_embedding,
            isinstance(constrained_embedding, bool),
            "expected true or false",
        )
        check_int("embedding_size", embedding_size, minimum=0)
        check_param(
            "embedding_size",
            embedding_size,
            not (constrained_embedding and embedding_size),
            "must be 0 with constrained_embedding (the input embeddings are the output "
            "vectors, of size hidden_size)",
        )
        check_int("batch_size", batch_size)
        for name, value in (
            ("dropout_p_embed", dropout_p_embed),
            ("dropout_p_hidden", dropout_p_hidden),
        ):
            check_float(name, value, minimum=0.0)
            check_param(name, value, value < 1.0, "expected a probability in [0, 1)")
        check_float("learning_rate", learning_rate, minimum=0.0, strict_min=True)
        check_float("momentum", momentum, minimum=0.0)
        check_param("momentum", momentum, momentum < 1.0, "expected a number in [0, 1)")
        check_int("n_sample", n_sample, minimum=0)
        check_float("sample_alpha", sample_alpha, minimum=0.0)
        check_float("bpreg", bpreg, minimum=0.0)
        check_float("elu_param", elu_param, minimum=0.0)
        check_float("logq", logq, minimum=0.0)
        check_training_params(
            n_epochs=n_epochs,
            patience=patience,
            valid_fraction=valid_fraction,
            selection_metric=selection_metric,
            seed=seed,
            device=device,
            max_train_seconds=max_train_seconds,
        )
        self.loss = loss
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.constrained_embedding = constrained_embedding
        self.embedding_size = embedding_size
        self.batch_size = batch_size
        self.dropout_p_embed = dropout_p_embed
        self.dropout_p_hidden = dropout_p_hidden
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.n_sample = n_sample
        self.sample_alpha = sample_alpha
        self.bpreg = bpreg
        self.elu_param = elu_param
        self.logq = logq
        self.n_epochs = n_epochs
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.selection_metric = selection_metric
        self.max_train_seconds = max_train_seconds
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------------------ network
    @property
    def input_mode(self) -> str:
        if self.constrained_embedding:
            return "shared"
        return "embedding" if self.embedding_size else "onehot"

    def _new_network(self, n_items: int, device: torch.device) -> GRU4RecNetwork:
        return GRU4RecNetwork(
            n_items,
            hidden_size=self.hidden_size,
            n_layers=self.n_layers,
            input_mode=self.input_mode,
            embedding_size=self.embedding_size,
            device=device,
        )

    # ---------------------------------------------------------------------------- training
    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        _bind_torch(self.name)
        fit_or_forget(self, ("network_", "item_counts_"), lambda: self._train(train, valid))

    def _train(self, train: SessionData, valid: SessionData | None) -> None:
        if valid is None and self.valid_fraction > 0:
            train, valid = last_fraction_split(train, self.valid_fraction)
        if not (train.lengths >= 2).any():
            raise DataError("GRU4Rec needs training sessions with at least two clicks")
        counts = train.item_counts()  # of the whole training data
        n_sample = self._n_sample(int((counts > 0).sum()))
        workers = distributed.current()
        if workers is not None:  # this rank's sessions (distributed: see that module)
            train = workers.shard(train)
            valid = workers.shard(valid) if valid is not None else None
        device = resolve_device(self.device)
        with seeded(self.seed, device) as generator:
            network = self._new_network(train.n_items, device)
            network.initialize(generator)  # the same weights on every rank: the same seed
            self.network_ = network
            self.item_counts_ = counts
            epoch = _Epoch(self, network, train, counts, n_sample, generator, device, workers)
            validate = None
            if valid is not None:
                valid_plan = self._validation_plan(valid, counts)
                validate = distributed.validation(
                    workers, lambda: self._validation_score(valid_plan), valid_plan.n_rows
                )
            reports, best = train_epochs(
                model=self.name,
                n_epochs=self.n_epochs,
                run_epoch=epoch.run if workers is None else workers.reduce_epoch(epoch.run),
                validate=validate,
                patience=self.patience,
                snapshot=network.snapshot,
                restore=network.restore,
                max_seconds=self.max_train_seconds,
                agree=None if workers is None else workers.any,
            )
        record_history(self, reports, best)
        self._scoring_bias = network.output_bias(counts)

    def _n_sample(self, n_trained_items: int) -> int:
        """``n_sample``, clamped (with a warning) to the items there are to sample."""
        if self.n_sample <= n_trained_items:
            return self.n_sample
        message = (
            f"n_sample={self.n_sample} is more than the {n_trained_items} items with training "
            f"clicks; using n_sample={n_trained_items}"
        )
        warnings.warn(message, UserWarning, stacklevel=4)
        log.warning(message)
        return n_trained_items

    # -------------------------------------------------------------------------- validation
    def _validation_plan(self, valid: SessionData, counts: np.ndarray) -> SessionParallelPlan:
        """Session-parallel plan of the validation clicks on items the model was trained on."""
        known = counts[valid.items] > 0
        kept = np.bincount(valid.session_index()[known], minlength=valid.n_sessions)
        offsets = np.zeros(valid.n_sessions + 1, dtype=np.int64)
        np.cumsum(kept, out=offsets[1:])
        return session_parallel_plan(offsets, valid.items[known], VALID_BATCH_SIZE, min_rows=1)

    def _validation_score(self, plan: SessionParallelPlan) -> float:
        """HR@20 or MRR@20 (percent) of every next-click case of the validation plan."""
        with torch.inference_mode():
            ranks = self._validation_ranks(plan, self.network_.output_bias(self.item_counts_))
        metric = hit_rate if self.selection_metric == "hr@20" else mrr
        return 100.0 * metric(ranks, 20)  # percent, as sessionrec.evaluation reports it

    def _validation_ranks(self, plan: SessionParallelPlan, bias: torch.Tensor) -> np.ndarray:
        network = self.network_
        device = network.item_weights.device
        inputs = torch.as_tensor(plan.inputs, device=device)
        targets = torch.as_tensor(plan.targets, device=device)
        not_start = torch.as_tensor(~plan.starts, dtype=torch.float32, device=device)[:, None]
        hidden = [
            torch.zeros((int(plan.step_offsets[1]), self.hidden_size), device=device)
            for _ in range(self.n_layers)
        ]
        ranks = []
        for t in range(plan.n_steps):
            rows = plan.step(t)
            if t in plan.keep:
                keep = torch.as_tensor(plan.keep[t], device=device)
                hidden = [h.index_select(0, keep) for h in hidden]
            hidden = [h * not_start[rows] for h in hidden]
            hidden = network.layers(network.embed(inputs[rows]), hidden)
            scores = network.score_all(hidden[-1], bias)  # [n, n_items]
            ranks.append(pessimistic_ranks(scores, targets[rows]))
        return torch.cat(ranks).cpu().numpy()

    # ----------------------------------------------------------------------------- scoring
    def score(self, batch: SessionBatch) -> np.ndarray:
        """Run each session's known clicks through the GRU and score every item."""
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
        self._check_fitted()
        n = len(batch)
        known = self.item_counts_[batch.items] > 0 if batch.items.size else np.zeros(0, bool)
        items = batch.items[known].astype(np.int64)
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
        padded[owner, position] = items[gather_ranges(starts[order], sorted_lengths)]
        active = (sorted_lengths[None, :] > np.arange(padded.shape[1])[:, None]).sum(axis=1)
        with torch.inference_mode():
            network = self.network_
            clicks = torch.as_tensor(padded, device=device)  # [m, longest]
            hidden = [
                torch.zeros((order.size, self.hidden_size), device=device)
                for _ in range(self.n_layers)
            ]
            for t, m in enumerate(active.tolist()):
                states = network.layers(network.embed(clicks[:m, t]), [h[:m] for h in hidden])
                for h, state in zip(hidden, states, strict=True):
                    h[:m] = state
        return order, hidden[-1]

    # ------------------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        network = self.network_
        state = {
            "item_counts": self.item_counts_,
            "best_epoch": np.array([self.best_epoch_], dtype=np.int64),
        }
        for key, tensor in {**network.tables, **network.dense.tensors}.items():
            state[key] = tensor.detach().cpu().numpy()
        for key in self._HISTORY:
            state[key] = getattr(self, key + "_")
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        _bind_torch(self.name)
        device = load_device(self.device)
        network = self._new_network(self.n_items, device)
        tensors = {**network.tables, **network.dense.tensors}
        expected = {key: tuple(tensor.shape) for key, tensor in tensors.items()}
        other = {"item_counts", "best_epoch", *self._HISTORY}
        check_state("GRU4Rec", state, expected, other, self.n_items)
        counts = state["item_counts"]
        with torch.no_grad():
            for key, tensor in tensors.items():
                tensor.copy_(torch.from_numpy(state[key]))
        self.network_ = network
        self.item_counts_ = counts.astype(np.int64)
        self._scoring_bias = network.output_bias(self.item_counts_)
        self.best_epoch_ = int(state["best_epoch"].reshape(-1)[0])
        for key in self._HISTORY:
            setattr(self, key + "_", np.asarray(state[key]))

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
            cosine = F.normalize(target_vectors, dim=1) @ F.normalize(session_vectors, dim=1).t()
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


class _Epoch:
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
        workers: distributed.Workers | None = None,
    ) -> None:
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
        plan = session_parallel_plan(
            train.offsets, train.items, slots, min_rows=1 if n_sample else 2
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
        self.targets = torch.as_tensor(plan.targets, device=device)
        self.not_start = torch.as_tensor(~plan.starts, dtype=torch.float32, device=device)[:, None]
        self.has_start = np.add.reduceat(plan.starts, plan.step_offsets[:-1]) > 0
        self.has_start[0] = False  # the first step starts from zero states anyway
        self.keep = {t: torch.as_tensor(rows, device=device) for t, rows in plan.keep.items()}
        with np.errstate(divide="ignore"):
            log_counts = np.log(counts.astype(np.float64)).astype(np.float32)
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
        (one collective for all of it: :meth:`distributed.Workers.exchange`). AdagradM sums
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
