"""SASRec: causal self-attention over the clicks of a session, trained on every position.

References:
    Kang & McAuley (2018), "Self-attentive sequential recommendation", ICDM: the model
    (item + learned positional embeddings, stacked causal self-attention blocks with a
    point-wise feed-forward network, residual connections, layer norm and dropout, item
    embeddings shared between input and output), trained on every position of a sequence.
    Klenitskiy & Vasilev (2023), "Turning dross into gold loss: is BERT4Rec really better
    than SASRec?", RecSys: SASRec trained with full softmax cross-entropy instead of binary
    cross-entropy with one negative.
    Wilm, Normann, Baumeister & Kobiolka (2023), "Scaling session-based transformer
    recommendations using optimized negative sampling and loss functions" (TRON), RecSys:
    sampled softmax over in-batch negatives plus negatives shared by the batch, drawn
    uniformly or by popularity, with logQ correction, so that training cost does not grow
    with the catalogue.

How it works. A session's clicks (internal indices; items without training clicks dropped,
at most the ``max_len`` most recent kept) are embedded, a learned embedding of their position
(0 = the first kept click) is added and the sum layer-normed, and ``n_blocks`` transformer
blocks run over them with a causal mask: the output at position ``t`` depends on clicks
``0..t`` only. The output at position ``t`` scores every item by a dot product with the item's
embedding (the same table as the input). :meth:`SASRec.score` reads the output of the last
click; training reads every position at once: the output at ``t`` is trained to predict click
``t + 1``. Sessions of equal length are batched together, so a mini-batch has no padding.

Losses (``loss``):

- ``"ce"``: softmax over the whole catalogue (items without training clicks excluded),
  cross-entropy of the next click. Cost grows with the number of items.
- ``"sampled"`` (TRON): each position's target is scored against the other positions'
  targets in the mini-batch plus ``n_negatives`` items shared by the mini-batch, drawn with
  probability proportional to ``popularity ** sample_alpha`` (0: uniform over the items with
  training clicks). A column holding the row's own target is masked out. With ``logq > 0``
  the logits are corrected by ``logq * log Q``, ``Q`` the expected number of times the
  sampling process puts the item in the row: ``P * target_share`` for an in-batch column
  (``P`` positions in the batch, ``target_share`` the item's share of training targets) and
  ``S * p_alpha`` for a shared negative (``S = n_negatives``). Cost grows with the batch,
  not with the catalogue.

Deviations from the paper and its reference code (kang205/SASRec):

- Loss: full or sampled softmax (above) instead of binary cross-entropy with one random
  negative per position (the issue asks for these losses; both papers above report that
  they are more accurate).
- Post-norm blocks over layer-normed embeddings, as in RecBole's SASRec and BERT:
  ``x = LN(item + position)``, then per block ``x = LN(x + Dropout(Attn(x)))`` and
  ``x = LN(x + Dropout(FFN(x)))``. The reference code normalises only the attention's
  queries and adds the residual to the normalised queries, and multiplies the item
  embeddings by ``sqrt(hidden_size)`` instead of normalising them. Every matrix is
  initialised N(0, 0.02), biases zero (:func:`init_weights` says why this matters). On
  rsc15-100k (2 epochs, dropout 0.5) post-norm reached 36.26 / 16.46 HR@20 / MRR@20
  against 29.94 / 13.03 for pre-norm blocks over the same normalised embeddings, and after
  10 epochs (dropout 0.2) 67.93 / 35.74 against 67.88 / 35.57. The feed-forward inner width
  is ``ffn_size`` (the paper: ``hidden_size``; RecBole's 256 with GELU gave the same
  accuracy there).
- Positions count from the first kept click, not from the end of a left-padded window: the
  same position means the same thing in training (every prefix of a session in one pass)
  and in scoring (a prefix on its own).
- Sessions are not padded to ``max_len``: a training batch holds sessions of one length.
  A training session with more than ``max_len + 1`` clicks is cut to its last
  ``max_len + 1`` (``max_len`` input positions); how many were cut, and how many clicks
  that dropped, is logged and kept in ``truncated_sessions_``/``truncated_clicks_``.
  Scoring keeps the ``max_len`` most recent known clicks of a longer session.
- Items without training clicks are dropped from a session's input and score ``-inf``.
  A session with no known click (empty, or only unknown items) is answered by popularity
  (training clicks per item), as the neighbourhood models do; :meth:`SASRec.fallback_mask`
  tells which sessions of a batch were.
- Adam with the paper's betas (0.9, 0.98), no weight decay; epochs selected on a
  validation split (``fit(train, valid)`` or ``valid_fraction``) by HR@20 or MRR@20 with
  full ranking through :mod:`sessionrec.evaluation`, with early stopping after
  ``patience`` epochs without improvement; the reference code trains a fixed number.
- A few live sessions (a service request) find their top k through an int8 copy of the
  item embeddings (:mod:`~sessionrec.models.neural.quantized_serving`), with the same
  answers as the dense product.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from sessionrec._errors import DataError
from sessionrec._progress import progress
from sessionrec.data.sessions import SessionData, gather_ranges
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
from sessionrec.models.params import check_choice, check_float, check_int, check_param

if TYPE_CHECKING:
    import torch
    from torch.nn import functional as F

    from sessionrec.models.neural import distributed
    from sessionrec.models.neural.losses import masked_sampled_softmax
    from sessionrec.models.neural.sampling import SampleStore, sampling_weights
    from sessionrec.models.neural.trainer import (
        LossTracker,
        load_device,
        resolve_device,
        seeded,
        train_epochs,
    )

log = logging.getLogger("sessionrec.models")

SASREC_LOSSES: tuple[str, ...] = ("ce", "sampled")
SCORE_BUDGET_BYTES = 128 * 2**20
"""Memory for one validation batch of dense scores (as in :mod:`sessionrec.evaluation`)."""


def _bind_torch(model: str) -> None:
    """Import torch and the training helpers on first use (``import sessionrec`` stays light)."""
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
        masked_sampled_softmax=losses.masked_sampled_softmax,
        SampleStore=sampling.SampleStore,
        sampling_weights=sampling.sampling_weights,
        LossTracker=trainer.LossTracker,
        load_device=trainer.load_device,
        resolve_device=trainer.resolve_device,
        seeded=trainer.seeded,
        train_epochs=trainer.train_epochs,
    )


# ------------------------------------------------------------------------------- network
def weight_shapes(
    n_items: int, hidden_size: int, n_blocks: int, max_len: int, ffn_size: int
) -> dict[str, tuple[int, ...]]:
    """Every weight tensor of the network by name (the saved state's keys)."""
    d = hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "item_embedding": (n_items, d),
        "position_embedding": (max_len, d),
        "embedding_ln.weight": (d,),
        "embedding_ln.bias": (d,),
    }
    for b in range(n_blocks):
        shapes.update(
            {
                f"block{b}.ln1.weight": (d,),
                f"block{b}.ln1.bias": (d,),
                f"block{b}.attn.in_weight": (3 * d, d),
                f"block{b}.attn.in_bias": (3 * d,),
                f"block{b}.attn.out_weight": (d, d),
                f"block{b}.attn.out_bias": (d,),
                f"block{b}.ln2.weight": (d,),
                f"block{b}.ln2.bias": (d,),
                f"block{b}.ffn.w1": (ffn_size, d),
                f"block{b}.ffn.b1": (ffn_size,),
                f"block{b}.ffn.w2": (d, ffn_size),
                f"block{b}.ffn.b2": (d,),
            }
        )
    return shapes


def init_weights(weights: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    """Every matrix (embeddings and linear layers) N(0, 0.02), biases 0, layer-norm gains 1.

    The small linear weights matter: each block then starts close to the identity, so the
    output at a click begins as (the normalised embedding of) that click and scores the
    clicked item and the items whose embeddings are near it highest, the repeat and
    item-to-item signal that dominates e-commerce sessions. Xavier-initialised blocks add
    outputs far larger than that signal and bury it, so the model has to learn it back:
    on rsc15-100k with RecBole's settings (``benchmarks/recbole_side_by_side.py``), two
    epochs gave 11.45 / 2.89 HR@20 / MRR@20 with Xavier-uniform linear layers against
    35.66 / 16.62 with this initialisation.
    """
    with torch.no_grad():
        for name, tensor in weights.items():
            if tensor.dim() == 2:
                values = torch.randn(tensor.shape, generator=generator, device=tensor.device)
                tensor.copy_(values.mul_(0.02))
            elif name.endswith(("ln.weight", "ln1.weight", "ln2.weight")):
                tensor.fill_(1.0)
            else:
                tensor.zero_()


def encode(
    weights: dict[str, torch.Tensor],
    items: torch.Tensor,
    *,
    n_blocks: int,
    n_heads: int,
    dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """The network's output at every position: ``items [B, T]`` int64 -> ``[B, T, d]``.

    Causal: position ``t`` attends to positions ``0..t`` only, so sessions shorter than
    ``T`` may be padded at the end with any item without changing their real positions.
    """
    batch, length = items.shape
    d = weights["item_embedding"].shape[1]
    p = dropout if training else 0.0
    x = weights["item_embedding"][items] + weights["position_embedding"][:length]  # [B, T, d]
    # Normalised, the embeddings enter the blocks at the scale of the blocks' outputs
    # instead of 0.02 (the init's), so no block swamps the clicked item's identity.
    x = F.layer_norm(x, (d,), weights["embedding_ln.weight"], weights["embedding_ln.bias"])
    x = F.dropout(x, p, training=training)
    head = d // n_heads
    for b in range(n_blocks):
        w = f"block{b}."
        qkv = F.linear(x, weights[w + "attn.in_weight"], weights[w + "attn.in_bias"])  # [B,T,3d]
        q, k, v = qkv.view(batch, length, 3, n_heads, head).permute(2, 0, 3, 1, 4)  # [B,H,T,h]
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        attended = attended.transpose(1, 2).reshape(batch, length, d)  # [B, T, d]
        out = F.linear(attended, weights[w + "attn.out_weight"], weights[w + "attn.out_bias"])
        x = x + F.dropout(out, p, training=training)
        x = F.layer_norm(x, (d,), weights[w + "ln1.weight"], weights[w + "ln1.bias"])
        h = F.relu(F.linear(x, weights[w + "ffn.w1"], weights[w + "ffn.b1"]))
        h = F.linear(
            F.dropout(h, p, training=training), weights[w + "ffn.w2"], weights[w + "ffn.b2"]
        )
        x = x + F.dropout(h, p, training=training)
        x = F.layer_norm(x, (d,), weights[w + "ln2.weight"], weights[w + "ln2.bias"])
    return x


# --------------------------------------------------------------------------------- model
class SASRec(QuantizedServing):
    """SASRec (Kang & McAuley 2018) with full or TRON-style sampled softmax; see the module.

    Hyperparameters:

    - ``hidden_size``, ``n_heads``, ``n_blocks``: embedding width (a multiple of ``n_heads``),
      attention heads, transformer blocks. ``ffn_size``: width of the point-wise
      feed-forward network's inner layer (``None``: ``hidden_size``, as in the paper).
    - ``max_len``: most recent clicks of a session the model reads (longer ones are cut).
    - ``dropout``: on the embeddings, attention weights, block outputs and inside the FFN.
    - ``loss``: ``"ce"`` (full softmax) or ``"sampled"`` (in-batch targets plus
      ``n_negatives`` shared negatives drawn by ``popularity ** sample_alpha``, logQ
      correction weighted by ``logq``; 0 turns it off).
    - ``batch_size``: training positions per mini-batch (sessions of one length are grouped,
      ``batch_size // length`` of them, at least one).
    - ``learning_rate``: Adam step size. ``n_epochs``: the most epochs.
    - ``patience``, ``valid_fraction``, ``selection_metric``: with a validation split (passed
      to ``fit`` or the chronologically last ``valid_fraction`` of the training sessions),
      keep the epoch with the best HR@20 or MRR@20 and stop after ``patience`` epochs
      without improvement (0: never stop early).
    - ``max_train_seconds``: a time budget in seconds for the epochs, validation included
      (None: none): no epoch starts that would pass it; see
      :func:`~sessionrec.models.neural.trainer.train_epochs`.
    - ``seed``, ``device``: reproducibility; ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Fitted attributes: ``weights_`` (tensors by name), ``item_counts_``, the training history
    (``epoch_losses_``, ``epoch_seconds_``, ``epoch_examples_``, ``epoch_valid_``,
    ``best_epoch_``) and the truncation counts ``truncated_sessions_``, ``truncated_clicks_``.
    """

    name = "sasrec"
    artifact_version = 2  # 2: layer-normed embeddings, post-norm blocks, ffn_size
    oldest_artifact_version = 2
    trains_distributed = True

    weights_: dict[str, torch.Tensor]
    item_counts_: np.ndarray
    _fallback: torch.Tensor  # scoring caches of _prepare_scoring
    _unseen: torch.Tensor
    _serving_bias: torch.Tensor
    epoch_losses_: np.ndarray
    epoch_seconds_: np.ndarray
    epoch_examples_: np.ndarray
    epoch_valid_: np.ndarray
    best_epoch_: int
    truncated_sessions_: int
    truncated_clicks_: int

    _HISTORY: ClassVar[tuple[str, ...]] = (
        "epoch_losses",
        "epoch_seconds",
        "epoch_examples",
        "epoch_valid",
    )
    _COUNTERS: ClassVar[tuple[str, ...]] = ("best_epoch", "truncated_sessions", "truncated_clicks")

    def __init__(
        self,
        *,
        hidden_size: int = 64,
        n_heads: int = 1,
        n_blocks: int = 2,
        ffn_size: int | None = None,
        max_len: int = 50,
        dropout: float = 0.2,
        loss: str = "ce",
        n_negatives: int = 1024,
        sample_alpha: float = 0.0,
        logq: float = 1.0,
        batch_size: int = 1024,
        learning_rate: float = 0.001,
        n_epochs: int = 10,
        patience: int = 2,
        valid_fraction: float = 0.0,
        selection_metric: str = "mrr@20",
        max_train_seconds: float | None = None,
        seed: int = 42,
        device: str = "auto",
    ) -> None:
        check_int("hidden_size", hidden_size)
        check_int("n_heads", n_heads)
        check_param(
            "hidden_size",
            hidden_size,
            hidden_size % n_heads == 0,
            f"must be a multiple of n_heads={n_heads}",
        )
        check_int("n_blocks", n_blocks)
        if ffn_size is not None:
            check_int("ffn_size", ffn_size)
        check_int("max_len", max_len)
        check_float("dropout", dropout, minimum=0.0)
        check_param("dropout", dropout, dropout < 1.0, "expected a probability in [0, 1)")
        check_choice("loss", loss, SASREC_LOSSES)
        check_int("n_negatives", n_negatives, minimum=0)
        check_float("sample_alpha", sample_alpha, minimum=0.0)
        check_float("logq", logq, minimum=0.0)
        check_int("batch_size", batch_size)
        check_float("learning_rate", learning_rate, minimum=0.0, strict_min=True)
        check_training_params(
            n_epochs=n_epochs,
            patience=patience,
            valid_fraction=valid_fraction,
            selection_metric=selection_metric,
            seed=seed,
            device=device,
            max_train_seconds=max_train_seconds,
        )
        self.hidden_size = hidden_size
        self.n_heads = n_heads
        self.n_blocks = n_blocks
        self.ffn_size = ffn_size
        self.max_len = max_len
        self.dropout = dropout
        self.loss = loss
        self.n_negatives = n_negatives
        self.sample_alpha = sample_alpha
        self.logq = logq
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.selection_metric = selection_metric
        self.max_train_seconds = max_train_seconds
        self.seed = seed
        self.device = device

    @property
    def _ffn_width(self) -> int:
        return self.hidden_size if self.ffn_size is None else self.ffn_size

    # ---------------------------------------------------------------------------- training
    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        _bind_torch(self.name)
        fit_or_forget(self, ("weights_", "item_counts_"), lambda: self._train(train, valid))

    def _train(self, train: SessionData, valid: SessionData | None) -> None:
        if valid is None and self.valid_fraction > 0:
            train, valid = last_fraction_split(train, self.valid_fraction)
        if not (train.lengths >= 2).any():
            raise DataError("SASRec needs training sessions with at least two clicks")
        counts = train.item_counts().astype(np.int64)  # of the whole training data
        workers = distributed.current()
        if workers is not None:  # this rank's sessions (distributed: see that module)
            train = workers.shard(train)
            valid = workers.shard(valid) if valid is not None else None
        device = resolve_device(self.device)
        shapes = weight_shapes(
            train.n_items, self.hidden_size, self.n_blocks, self.max_len, self._ffn_width
        )
        with seeded(self.seed, device) as generator:
            weights = {name: torch.zeros(shape, device=device) for name, shape in shapes.items()}
            init_weights(weights, generator)
            # Parameters of one module, so that DistributedDataParallel can hold them.
            weights = {name: torch.nn.Parameter(t) for name, t in weights.items()}
            self.weights_ = weights
            self.item_counts_ = counts
            self._prepare_scoring()
            epoch = _Epoch(self, train, counts, generator, device, workers)
            self.truncated_sessions_ = epoch.truncated_sessions
            self.truncated_clicks_ = epoch.truncated_clicks
            if workers is not None:  # every rank's
                self.truncated_sessions_ = workers.total_cases(epoch.truncated_sessions)
                self.truncated_clicks_ = workers.total_cases(epoch.truncated_clicks)
            validate = None
            if valid is not None:
                cases = ValidationCases(valid)
                validate = distributed.validation(
                    workers, lambda: self._validation_score(cases), cases.n
                )

            def snapshot() -> dict[str, torch.Tensor]:
                return {k: v.detach().clone() for k, v in weights.items()}

            def restore(saved: dict[str, torch.Tensor]) -> None:
                with torch.no_grad():
                    for k, v in weights.items():
                        v.copy_(saved[k])

            reports, best = train_epochs(
                model=self.name,
                n_epochs=self.n_epochs,
                run_epoch=epoch.run if workers is None else workers.reduce_epoch(epoch.run),
                validate=validate,
                patience=self.patience,
                snapshot=snapshot,
                restore=restore,
                max_seconds=self.max_train_seconds,
                agree=None if workers is None else workers.any,
            )
        for tensor in weights.values():
            tensor.requires_grad_(False)
        record_history(self, reports, best)

    def _validation_score(self, cases: ValidationCases) -> float:
        """HR@20 or MRR@20 (percent) of the validation cases, ranked like the evaluation."""
        batch_size = max(1, min(4096, SCORE_BUDGET_BYTES // (4 * max(self.n_items, 1))))
        return cases.metric(self._scores, self.selection_metric, batch_size)

    # ----------------------------------------------------------------------------- scoring
    def _known_windows(self, batch: SessionBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per session, its last ``max_len`` known clicks: (padded ``[n, T]``, lengths ``[n]``).

        Known: items with training clicks. Rows are padded at the end with item 0, which the
        causal mask keeps out of every real position.
        """
        n = len(batch)
        items = np.asarray(batch.items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise DataError(f"session items must be internal indices in [0, {self.n_items})")
        known = self.item_counts_[items] > 0 if items.size else np.zeros(0, dtype=bool)
        owner = np.repeat(np.arange(n, dtype=np.int64), batch.lengths)[known]
        items = items[known]
        lengths = np.bincount(owner, minlength=n).astype(np.int64)
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        position = np.arange(items.size, dtype=np.int64) - starts[owner]
        kept = np.minimum(lengths, self.max_len)
        shift = lengths - kept  # clicks cut from the front of each session
        keep = position >= shift[owner]
        width = int(kept.max()) if n else 0
        padded = np.zeros((n, max(width, 1)), dtype=np.int64)
        padded[owner[keep], (position - shift[owner])[keep]] = items[keep]
        cut = int((shift > 0).sum())
        if cut:
            log.debug("sasrec: %d session(s) longer than max_len=%d cut", cut, self.max_len)
        return padded, kept

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        """True for every session answered by the popularity fallback (no known click)."""
        self._check_fitted()
        return self._known_windows(batch)[1] == 0

    def _prepare_scoring(self) -> None:
        """Caches what the training counts decide (:func:`count_scoring`), once per fit or
        load instead of per call."""
        device = self.weights_["item_embedding"].device
        self._fallback, self._unseen, self._serving_bias = count_scoring(self.item_counts_, device)

    def score(self, batch: SessionBatch) -> np.ndarray:
        """The last known click's output against every item; popularity for empty sessions.

        Items without training clicks score ``-inf``.
        """
        return self._scores(batch).cpu().numpy()

    def _scores(self, batch: SessionBatch) -> torch.Tensor:
        """:meth:`score` as a float32 tensor on the model's device."""
        self._check_fitted()
        n = len(batch)
        popularity = self._fallback
        rows, top = self._session_states(batch)
        if rows.size == 0:
            return popularity.repeat(n, 1)
        device = top.device
        with torch.inference_mode():
            result = top @ self.weights_["item_embedding"].t()  # [m, n_items]
            result.index_fill_(1, self._unseen, -math.inf)
            if rows.size == n:
                return result
            scores = popularity.repeat(n, 1)  # the sessions without a known click keep these
            return scores.index_copy_(0, torch.as_tensor(rows, device=device), result)

    def _session_states(self, batch: SessionBatch) -> tuple[np.ndarray, torch.Tensor]:
        """The rows with a known click and the last known click's output ``[m, d]``."""
        weights = self.weights_
        device = weights["item_embedding"].device
        padded, lengths = self._known_windows(batch)
        rows = np.flatnonzero(lengths > 0)
        if rows.size == 0:
            return rows, torch.zeros((0, self.hidden_size), device=device)
        padded = padded[rows, : int(lengths[rows].max())]
        with torch.inference_mode():
            hidden = encode(
                weights,
                torch.as_tensor(padded, device=device),
                n_blocks=self.n_blocks,
                n_heads=self.n_heads,
            )  # [m, T, d]
            last = torch.as_tensor(lengths[rows] - 1, device=device)
            return rows, hidden[torch.arange(rows.size, device=device), last]

    # Serving: a few live sessions find their top k through an int8 copy of the item
    # embeddings (QuantizedServing); evaluation batches take the dense product of _scores.
    def _serving_table(self) -> tuple[object, torch.Tensor, torch.Tensor]:
        weights = self.weights_  # a new dict for every fit and load
        return weights, weights["item_embedding"].detach(), self._serving_bias

    def _fallback_scores(self) -> np.ndarray:
        return self._fallback.cpu().numpy()

    # ------------------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {key: t.detach().cpu().numpy() for key, t in self.weights_.items()}
        state["item_counts"] = self.item_counts_
        for key in self._HISTORY:
            state[key] = getattr(self, key + "_")
        for key in self._COUNTERS:
            state[key] = np.array([getattr(self, key + "_")], dtype=np.int64)
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        _bind_torch(self.name)
        device = load_device(self.device)
        shapes = weight_shapes(
            self.n_items, self.hidden_size, self.n_blocks, self.max_len, self._ffn_width
        )
        other = {"item_counts", *self._HISTORY, *self._COUNTERS}
        check_state("SASRec", state, shapes, other, self.n_items)
        weights = {
            key: torch.as_tensor(state[key], dtype=torch.float32, device=device).clone()
            for key in shapes
        }
        counts = state["item_counts"]
        self.weights_ = weights
        self.item_counts_ = counts.astype(np.int64)
        for key in self._HISTORY:
            setattr(self, key + "_", np.asarray(state[key]))
        for key in self._COUNTERS:
            setattr(self, key + "_", int(state[key].reshape(-1)[0]))
        self._prepare_scoring()


class _Epoch:
    """One training epoch of SASRec; built once per fit, run per epoch.

    Every training session with a next click gives one window: its last ``max_len + 1``
    clicks at most, whose first ``L`` are the inputs and last ``L`` the targets. Windows of
    equal ``L`` are batched together (no padding); batch order is shuffled every epoch.
    """

    def __init__(
        self,
        model: SASRec,
        train: SessionData,
        counts: np.ndarray,
        generator: torch.Generator,
        device: torch.device,
        workers: distributed.Workers | None = None,
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
        self.step: torch.nn.Module = distributed.LossModule(module, self._batch_loss)
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

    def _batch_loss(self, _module: torch.nn.Module, clicks: torch.Tensor) -> torch.Tensor:
        """The summed loss of a batch of windows ``clicks [B, L + 1]`` (item indices)."""
        model = self.model
        weights = model.weights_  # the same tensors as the module's parameters
        table = weights["item_embedding"]
        inputs, targets = clicks[:, :-1], clicks[:, 1:].reshape(-1)  # [B, L], [P]
        hidden = encode(
            weights,
            inputs,
            n_blocks=model.n_blocks,
            n_heads=model.n_heads,
            dropout=model.dropout,
            training=True,
        ).reshape(-1, table.shape[1])  # [P, d]
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
            loss = self.step(self.items[clicks])
            self.optimizer.zero_grad(set_to_none=True)
            (loss / n).backward()
            self.optimizer.step()
            tracker.add(loss.detach(), n)
        return tracker.mean(), tracker.n_examples
