"""STAMP: short-term attention/memory priority, an MLP model of the prefix and its last click.

Reference:
    Liu, Zeng, Mokhosi & Zhang (2018), "STAMP: Short-Term Attention/Memory Priority Model for
    Session-based Recommendation", KDD.

How it works. With the prefix's item embeddings ``x_1..x_t``, the session's general interest
``m_s`` is their mean and its current interest ``m_t = x_t`` the last click. An attention
``alpha_i = w_0^T sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a)`` (not normalised, eq. 7) gives
the attentive memory ``m_a = sum_i alpha_i x_i``. Two one-layer MLPs give
``h_s = tanh(W_s m_a + b_s)`` and ``h_t = tanh(W_t x_t + b_t)``, and item ``i`` scores the
trilinear product ``<h_s, h_t, x_i> = (h_s * h_t) . x_i`` with the input embeddings. Training is
a full softmax with cross-entropy over every item, Adam, on every prefix of every training
session (:mod:`~sessionrec.models.neural.prefix`).

Deviations from the paper and its TensorFlow code:

- The paper passes the trilinear score through a sigmoid before the softmax (eq. 9-10); here
  the softmax takes the trilinear scores themselves, as the authors' code does. The ranking
  is the same (the sigmoid is monotone); a softmax over values in (0, 1) could barely
  separate the target from the other items.
- Prefixes longer than ``max_len`` keep their most recent clicks (the paper has no limit).
- Validation-based epoch selection and early stopping are added (the paper reports the
  test set), and an optional step learning-rate decay and L2 (off by default).
- Sessions without known items get the popularity fallback; items without training clicks
  score ``-inf``.
- ``formulation="authors-code"`` builds the model of the authors' TensorFlow code instead of
  the paper's equations (the published figures come from that code): no bias in any layer,
  the session mean added to the attentive memory before its MLP
  (``h_s = tanh(W_s (m_a + m_s))``), and every input embedding clipped to an L2 norm of at
  most 1.5 as it is looked up (the output table, the same embeddings, is not clipped). The
  code's gradient clipping (global norm 110) is left out. The default is the paper's.
- Scoring runs a float64 copy of the trained (float32) weights, so that a session's scores
  do not depend on the batch it is scored in (float32 products round differently with the
  batch's shape).

Initialisation follows the paper: embeddings ``N(0, 0.002)`` (zero padding row), weights
``N(0, 0.05)``, biases zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionrec.models.neural.common import hyperparameters
from sessionrec.models.neural.event_types import check_event_types
from sessionrec.models.neural.prefix import FORMULATIONS, PrefixRecommender
from sessionrec.models.params import check_choice, check_int

if TYPE_CHECKING:
    import torch

# The authors' code clips each looked-up input embedding to this L2 norm (``max_norm``).
CODE_INPUT_MAX_NORM = 1.5


@hyperparameters
class STAMP(PrefixRecommender):
    """STAMP (Liu et al. 2018); see the module docstring.

    Own hyperparameters: ``embedding_size`` (the item embeddings and every hidden layer, as
    in the paper) and ``formulation`` (``"paper"`` or ``"authors-code"``, see the module
    docstring). The shared ones are described in
    :class:`~sessionrec.models.neural.prefix.PrefixRecommender`; defaults follow the paper:
    embeddings 100, Adam 0.005, batch 512.
    ``event_types`` (``"auto"``, ``True`` or ``False``): a learned embedding of each click's
    event type (view, cart, purchase) added to its item embedding
    (:mod:`~sessionrec.models.neural.event_types`); ``"auto"`` uses the types when the
    training data has events other than views, and on data without types the model is
    exactly the untyped one. A batch scored without types is all views.
    """

    name = "stamp"

    embedding_size: int = 100
    formulation: str = "paper"
    learning_rate: float = 0.005
    event_types: bool | str = "auto"

    def _check_params(self) -> None:
        check_int("embedding_size", self.embedding_size)
        check_choice("formulation", self.formulation, FORMULATIONS)
        check_event_types(self.event_types)
        super()._check_params()

    def _event_types_setting(self) -> bool | str:
        return self.event_types

    def _build_network(self, n_items: int) -> torch.nn.Module:
        import torch
        from torch import nn

        d = self.embedding_size
        bias = self.formulation == "paper"
        network = nn.ModuleDict(
            {
                "embedding": nn.Embedding(n_items + 1, d, padding_idx=0),
                "w0": nn.Linear(d, 1, bias=False),
                "w1": nn.Linear(d, d, bias=False),  # on every click
                "w2": nn.Linear(d, d, bias=False),  # on the last click
                "w3": nn.Linear(d, d, bias=bias),  # on the mean, with b_a (paper)
                "mlp_s": nn.Linear(d, d, bias=bias),  # W_s, b_s (paper)
                "mlp_t": nn.Linear(d, d, bias=bias),  # W_t, b_t (paper)
            }
        )
        with torch.no_grad():
            for key, parameter in network.named_parameters():
                if key.startswith("embedding"):
                    parameter.normal_(0.0, 0.002)
                    parameter[0].zero_()
                elif key.endswith("bias"):
                    parameter.zero_()
                else:
                    parameter.normal_(0.0, 0.05)
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

        embedded = self._embed(network, items, types)  # [B, L, d]; padding rows are zero
        if self.formulation == "authors-code":
            norms = torch.linalg.vector_norm(embedded, dim=2, keepdim=True)
            embedded = embedded * (CODE_INPUT_MAX_NORM / norms.clamp(min=CODE_INPUT_MAX_NORM))
        rows = torch.arange(items.shape[0], device=items.device)
        last = embedded[rows, lengths - 1]  # [B, d]: x_t = m_t
        mean = embedded.sum(dim=1) / lengths.unsqueeze(1).to(embedded.dtype)  # [B, d]: m_s
        hidden = net.w1(embedded) + (net.w2(last) + net.w3(mean)).unsqueeze(1)
        attention = net.w0(torch.sigmoid(hidden))  # [B, L, 1]
        attention = attention * (items > 0).unsqueeze(2)  # padding weighs 0
        memory = (attention * embedded).sum(dim=1)  # [B, d]: m_a
        if self.formulation == "authors-code":
            memory = memory + mean
        h_s = torch.tanh(net.mlp_s(memory))
        h_t = torch.tanh(net.mlp_t(last))
        return h_s * h_t  # [B, d]: scores are (h_s * h_t) . x_i
