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
from collections.abc import Callable
from typing import TYPE_CHECKING

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
    check_event_types,
    click_codes,
    network_uses_event_types,
)
from sessionrec.models.params import check_choice, check_float, check_int, check_param

if TYPE_CHECKING:
    import torch

    from sessionrec.data.sessions import SessionData
    from sessionrec.models.neural.distributed import Workers

log = logging.getLogger("sessionrec.models")

SASREC_LOSSES: tuple[str, ...] = ("ce", "sampled")
SCORE_BUDGET_BYTES = 128 * 2**20
"""Memory for one validation batch of dense scores (as in :mod:`sessionrec.evaluation`)."""


# ------------------------------------------------------------------------------- network
def weight_shapes(
    n_items: int,
    hidden_size: int,
    n_blocks: int,
    max_len: int,
    ffn_size: int,
    event_types: bool = False,
) -> dict[str, tuple[int, ...]]:
    """Every weight tensor of the network by name (the saved state's keys); with
    ``event_types`` the type embedding too (last, so the others draw the same values)."""
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
    if event_types:
        shapes[TYPE_EMBEDDING] = (N_EVENT_TYPES, d)
    return shapes


def init_weights(weights: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    """Every matrix (embeddings and linear layers) N(0, 0.02), biases 0, layer-norm gains 1;
    the type embedding 0 (an untrained type changes nothing).

    The small linear weights matter: each block then starts close to the identity, so the
    output at a click begins as (the normalised embedding of) that click and scores the
    clicked item and the items whose embeddings are near it highest, the repeat and
    item-to-item signal that dominates e-commerce sessions. Xavier-initialised blocks add
    outputs far larger than that signal and bury it, so the model has to learn it back:
    on rsc15-100k with RecBole's settings (``benchmarks/recbole_side_by_side.py``), two
    epochs gave 11.45 / 2.89 HR@20 / MRR@20 with Xavier-uniform linear layers against
    35.66 / 16.62 with this initialisation.
    """
    import torch

    with torch.no_grad():
        for name, tensor in weights.items():
            if name == TYPE_EMBEDDING:
                tensor.zero_()
            elif tensor.dim() == 2:
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
    types: torch.Tensor | None = None,
) -> torch.Tensor:
    """The network's output at every position: ``items [B, T]`` int64 -> ``[B, T, d]``;
    ``types [B, T]`` (canonical event type codes) add the type embedding to each click's.

    Causal: position ``t`` attends to positions ``0..t`` only, so sessions shorter than
    ``T`` may be padded at the end with any item without changing their real positions.
    """
    from torch.nn import functional as F

    batch, length = items.shape
    d = weights["item_embedding"].shape[1]
    p = dropout if training else 0.0
    x = weights["item_embedding"][items] + weights["position_embedding"][:length]  # [B, T, d]
    if types is not None:
        x = x + weights[TYPE_EMBEDDING][types]
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


# ----------------------------------------------------------------------------- estimator
@hyperparameters
class SASRec(NeuralRecommender):
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
    - ``learning_rate``: Adam step size.
    - ``event_types``: ``"auto"`` (default), ``True`` or ``False``: whether a learned
      embedding of each click's event type (view, cart, purchase) is added to its item and
      position embeddings (:mod:`~sessionrec.models.neural.event_types`). ``"auto"`` uses
      the types when the training data has events other than views; on data without types
      the model is exactly the untyped one. A batch scored without types is all views.
    - The training hyperparameters (``n_epochs``, ``patience``, ``valid_fraction``,
      ``selection_metric``, ``max_train_seconds``, ``seed``, ``device``) of
      :class:`~sessionrec.models.neural.common.NeuralRecommender`.

    Fitted attributes: ``weights_`` (tensors by name), the truncation counts
    ``truncated_sessions_``, ``truncated_clicks_`` and those of every neural model
    (``item_counts_``, the training history).
    """

    name = "sasrec"
    artifact_version = 2  # 2: layer-normed embeddings, post-norm blocks, ffn_size
    oldest_artifact_version = 2

    hidden_size: int = 64
    n_heads: int = 1
    n_blocks: int = 2
    ffn_size: int | None = None
    max_len: int = 50
    dropout: float = 0.2
    loss: str = "ce"
    n_negatives: int = 1024
    sample_alpha: float = 0.0
    logq: float = 1.0
    batch_size: int = 1024
    learning_rate: float = 0.001
    patience: int = 2
    selection_metric: str = "mrr@20"
    event_types: bool | str = "auto"

    fine_tunable = NeuralRecommender.fine_tunable | {
        "dropout",
        "loss",
        "n_negatives",
        "sample_alpha",
        "logq",
        "batch_size",
        "learning_rate",
    }

    def _check_params(self) -> None:
        check_int("hidden_size", self.hidden_size)
        check_int("n_heads", self.n_heads)
        check_param(
            "hidden_size",
            self.hidden_size,
            self.hidden_size % self.n_heads == 0,
            f"must be a multiple of n_heads={self.n_heads}",
        )
        check_int("n_blocks", self.n_blocks)
        if self.ffn_size is not None:
            check_int("ffn_size", self.ffn_size)
        check_int("max_len", self.max_len)
        check_float("dropout", self.dropout, minimum=0.0)
        check_param("dropout", self.dropout, self.dropout < 1.0, "expected a probability in [0, 1)")
        check_choice("loss", self.loss, SASREC_LOSSES)
        check_int("n_negatives", self.n_negatives, minimum=0)
        check_float("sample_alpha", self.sample_alpha, minimum=0.0)
        check_float("logq", self.logq, minimum=0.0)
        check_int("batch_size", self.batch_size)
        check_float("learning_rate", self.learning_rate, minimum=0.0, strict_min=True)
        check_event_types(self.event_types)
        super()._check_params()

    @property
    def _ffn_width(self) -> int:
        return self.hidden_size if self.ffn_size is None else self.ffn_size

    def outputs(
        self, items: torch.Tensor, types: torch.Tensor | None = None, *, training: bool = False
    ) -> torch.Tensor:
        """The network's output at every position of ``items [B, T]``: ``[B, T, d]``
        (:func:`encode` with this model's weights; dropout only in training). ``types``
        (``[B, T]``): the clicks' canonical event type codes, for a model that uses them."""
        return encode(
            self.weights_,
            items,
            n_blocks=self.n_blocks,
            n_heads=self.n_heads,
            dropout=self.dropout,
            training=training,
            types=types,
        )

    @property
    def uses_event_types_(self) -> bool:
        """Whether the fitted network embeds the clicks' event types (``event_types``)."""
        return TYPE_EMBEDDING in self.weights_

    # ---------------------------------------------------------------------------- training
    def _start_training(
        self,
        train: SessionData,
        device: torch.device,
        generator: torch.Generator,
        workers: Workers | None,
    ) -> Callable[[int], tuple[float, int]]:
        import torch

        from sessionrec.models.neural.sasrec_training import SASRecEpoch

        warm = self._init_from
        # A fine-tuned model keeps its source's inputs (the weights are built for them).
        source = None if warm is None else warm.source._named_weights()
        typed = network_uses_event_types(self.event_types, train, source, workers)
        shapes = weight_shapes(
            train.n_items, self.hidden_size, self.n_blocks, self.max_len, self._ffn_width, typed
        )
        weights = {name: torch.zeros(shape, device=device) for name, shape in shapes.items()}
        init_weights(weights, generator)
        # Parameters of one module, so that DistributedDataParallel can hold them.
        self.weights_: dict[str, torch.Tensor] = {
            name: torch.nn.Parameter(t) for name, t in weights.items()
        }
        self._prepare_scoring()
        epoch = SASRecEpoch(self, train, self.item_counts_, generator, device, workers)
        self.truncated_sessions_ = epoch.truncated_sessions
        self.truncated_clicks_ = epoch.truncated_clicks
        if workers is not None:  # every rank's
            self.truncated_sessions_ = workers.total_cases(epoch.truncated_sessions)
            self.truncated_clicks_ = workers.total_cases(epoch.truncated_clicks)
        return epoch.run

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.weights_.items()}

    def _restore(self, saved: dict[str, torch.Tensor]) -> None:
        import torch

        with torch.no_grad():
            for k, v in self.weights_.items():
                v.copy_(saved[k])

    def _end_training(self) -> None:
        for tensor in self.weights_.values():
            tensor.requires_grad_(False)

    def _named_weights(self) -> dict[str, torch.Tensor]:
        return dict(self.weights_)

    def _validation_scores(self, batch: SessionBatch) -> torch.Tensor:
        return self._scores(batch)

    def _validation_chunk(self) -> int:
        """As many cases as :data:`SCORE_BUDGET_BYTES` of dense scores hold (1 to 4096)."""
        return max(1, min(4096, SCORE_BUDGET_BYTES // (4 * max(self.n_items, 1))))

    # ----------------------------------------------------------------------------- scoring
    def _known_windows(
        self, batch: SessionBatch, with_types: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per session, its last ``max_len`` known clicks: (padded ``[n, T]``, lengths ``[n]``,
        and with ``with_types`` their canonical event type codes laid out the same, else None).

        Known: items with training clicks. Rows are padded at the end with item 0, which the
        causal mask keeps out of every real position. A batch without types is all views.
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
        padded_types = None
        if with_types:
            codes = click_codes(batch.types, batch.event_types, batch.items.size)[known]
            padded_types = np.zeros_like(padded)
            padded_types[owner[keep], (position - shift[owner])[keep]] = codes[keep]
        cut = int((shift > 0).sum())
        if cut:
            log.debug("sasrec: %d session(s) longer than max_len=%d cut", cut, self.max_len)
        return padded, kept, padded_types

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
        import torch

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
        import torch

        weights = self.weights_
        device = weights["item_embedding"].device
        padded, lengths, types = self._known_windows(batch, self.uses_event_types_)
        rows = np.flatnonzero(lengths > 0)
        if rows.size == 0:
            return rows, torch.zeros((0, self.hidden_size), device=device)
        width = int(lengths[rows].max())
        padded = padded[rows, :width]
        with torch.inference_mode():
            click_types = (
                None if types is None else torch.as_tensor(types[rows, :width], device=device)
            )
            hidden = self.outputs(torch.as_tensor(padded, device=device), click_types)
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
    _COUNTERS = ("truncated_sessions", "truncated_clicks")

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {key: t.detach().cpu().numpy() for key, t in self.weights_.items()}
        state.update(self._history_state())
        for key in self._COUNTERS:
            state[key] = np.array([getattr(self, key + "_")], dtype=np.int64)
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        require_torch(self.name)
        import torch

        from sessionrec.models.neural.devices import load_device

        device = load_device(self.device)
        # The type table is saved with the weights: its presence says whether it was used.
        typed = TYPE_EMBEDDING in state
        shapes = weight_shapes(
            self.n_items, self.hidden_size, self.n_blocks, self.max_len, self._ffn_width, typed
        )
        check_state("SASRec", state, shapes, {*self._SAVED_KEYS, *self._COUNTERS}, self.n_items)
        self.weights_ = {
            key: torch.as_tensor(state[key], dtype=torch.float32, device=device).clone()
            for key in shapes
        }
        self._set_history_state(state)
        for key in self._COUNTERS:
            setattr(self, key + "_", int(state[key].reshape(-1)[0]))
        self._prepare_scoring()
