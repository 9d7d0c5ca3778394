"""NARM: a GRU encoder with a global (last state) and a local (attention) session summary.

Reference:
    Li, Ren, Chen, Ren, Lian & Ma (2017), "Neural Attentive Session-based Recommendation",
    CIKM.

How it works. The prefix's item embeddings (dropout ``dropout_embed``) run through one GRU
layer, giving states ``h_1..h_t``. The global encoder's summary is the last state,
``c_g = h_t``; the local encoder's is ``c_l = sum_j alpha_j h_j`` with
``alpha_j = v^T sigmoid(A_1 h_t + A_2 h_j)`` (the paper's eq. 7-8: the weights are not
normalised). The session representation ``c = [c_g; c_l]`` (dropout ``dropout_context``) is
decoded bilinearly: item ``i`` scores ``emb_i^T B c`` with the input embeddings ``emb``.
Training is a full softmax with cross-entropy over every item, Adam, on every prefix of every
training session (:mod:`~sessionrec.models.neural.prefix`).

Deviations from the paper and its Theano code:

- The GRU runs over the batch padded to its longest prefix; padding comes after the clicks,
  so the states of real clicks never see it, and it is masked out of the attention.
- Initialisation (not given in the paper): embeddings ``N(0, 0.01)`` with a zero padding
  row, every weight of the GRU and the projections ``U(±1/sqrt(hidden_size))``.
- Prefixes longer than ``max_len`` keep their most recent clicks (the paper has no limit).
- Validation-based epoch selection and early stopping are added (the paper reports the
  test set), and an optional step learning-rate decay and L2 (off by default).
- Sessions without known items get the popularity fallback; items without training clicks
  score ``-inf``.
- Scoring runs a float64 copy of the trained (float32) weights, so that a session's scores
  do not depend on the batch it is scored in (float32 products round differently with the
  batch's shape).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionrec.models.neural.common import hyperparameters
from sessionrec.models.neural.event_types import check_event_types
from sessionrec.models.neural.prefix import PrefixRecommender
from sessionrec.models.params import check_float, check_int, check_param

if TYPE_CHECKING:
    import torch


@hyperparameters
class NARM(PrefixRecommender):
    """NARM (Li et al. 2017); see the module docstring.

    Own hyperparameters: ``embedding_size`` (item embeddings, input and output),
    ``hidden_size`` (GRU states), ``dropout_embed`` and ``dropout_context`` (the paper's 0.25
    and 0.5). The shared ones (batch, Adam, decay, L2, ``max_len``, epochs, validation, seed,
    device) are described in :class:`~sessionrec.models.neural.prefix.PrefixRecommender`;
    defaults follow the paper: embeddings 50, hidden 100, Adam 0.001, batch 512.
    ``event_types`` (``"auto"``, ``True`` or ``False``): a learned embedding of each click's
    event type (view, cart, purchase) added to its item embedding
    (:mod:`~sessionrec.models.neural.event_types`); ``"auto"`` uses the types when the
    training data has events other than views, and on data without types the model is
    exactly the untyped one. A batch scored without types is all views.
    """

    name = "narm"

    embedding_size: int = 50
    hidden_size: int = 100
    dropout_embed: float = 0.25
    dropout_context: float = 0.5
    event_types: bool | str = "auto"

    fine_tunable = PrefixRecommender.fine_tunable | {"dropout_embed", "dropout_context"}

    def _check_params(self) -> None:
        check_int("embedding_size", self.embedding_size)
        check_int("hidden_size", self.hidden_size)
        for name in ("dropout_embed", "dropout_context"):
            value = getattr(self, name)
            check_float(name, value, minimum=0.0)
            check_param(name, value, value < 1.0, "expected a probability in [0, 1)")
        check_event_types(self.event_types)
        super()._check_params()

    def _event_types_setting(self) -> bool | str:
        return self.event_types

    def _build_network(self, n_items: int) -> torch.nn.Module:
        import torch
        from torch import nn

        e, h = self.embedding_size, self.hidden_size
        network = nn.ModuleDict(
            {
                "embedding": nn.Embedding(n_items + 1, e, padding_idx=0),
                "gru": nn.GRU(e, h, batch_first=True),
                "a1": nn.Linear(h, h, bias=False),  # A_1, on the last state
                "a2": nn.Linear(h, h, bias=False),  # A_2, on every state
                "v": nn.Linear(h, 1, bias=False),
                "b": nn.Linear(2 * h, e, bias=False),  # the bilinear decoder's B
            }
        )
        bound = 1.0 / h**0.5
        with torch.no_grad():
            for key, parameter in network.named_parameters():
                if key.startswith("embedding"):
                    parameter.normal_(0.0, 0.01)
                    parameter[0].zero_()
                else:
                    parameter.uniform_(-bound, bound)
        return network

    def _session_vectors(
        self,
        network: torch.nn.Module,
        items: torch.Tensor,
        lengths: torch.Tensor,
        types: torch.Tensor | None = None,
    ) -> torch.Tensor:
        import torch

        net: Any = network  # a ModuleDict: its entries type as Tensor | Module
        from torch.nn import functional

        training = network.training
        embedded = self._embed(network, items, types)  # [B, L, e]
        embedded = functional.dropout(embedded, self.dropout_embed, training)
        states, _ = net.gru(embedded)  # [B, L, h]; padding only after the clicks
        rows = torch.arange(items.shape[0], device=items.device)
        last = states[rows, lengths - 1]  # [B, h]: c_g, the global encoder
        attention = net.v(torch.sigmoid(net.a1(last)[:, None, :] + net.a2(states)))
        attention = attention * (items > 0).unsqueeze(2)  # [B, L, 1]: padding weighs 0
        local = (attention * states).sum(dim=1)  # [B, h]: c_l, the local encoder
        context = functional.dropout(
            torch.cat([last, local], dim=1), self.dropout_context, training
        )
        result: torch.Tensor = net.b(context)  # [B, e]
        return result
