"""Ranking losses over sampled columns, each tied to the final activation it was designed for.

Every loss here takes the *sampled score matrix* of a mini-batch::

    scores [n, n + S]    row b: one training example (a session position)
                         column c < n: the target of row c (so column b is row b's positive,
                                       the other rows' targets are its in-batch negatives)
                         column n + j: the j-th of S extra negatives shared by the batch

and returns the *sum* over rows (callers divide by their batch size). Only these columns are
ever scored in training, never the whole catalogue (Hidasi & Karatzoglou 2018, section 3.1).

- ``cross-entropy``: softmax over the row, negative log-likelihood of the diagonal. With
  ``logq > 0`` the logits are corrected by ``logq * log Q(column)``, the log probability that
  the sampling process put that item in the row (logQ correction of sampled softmax; Bengio &
  Senécal 2008, Yi et al. 2019, used by GRU4Rec's cross-entropy presets, Hidasi & Czapp 2023).
- ``bpr-max``: Hidasi & Karatzoglou 2018, eq. 5 with the score regularisation of eq. 6::

      L_b = -log( sum_j s_j * sigmoid(r_b - r_j) ) + bpreg * sum_j s_j * r_j ** 2

  where ``j`` runs over the row's negatives (every column but the diagonal) and ``s`` is the
  softmax of the negatives' scores. The scores first go through ELU(``elu_param``) (linear when
  ``elu_param = 0``), the final activation GRU4Rec pairs with BPR-max.

Inference ranks by the raw scores: softmax and ELU are strictly increasing, so the ranking is
the same and no ties are introduced by ELU's saturation.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from sessionrec._errors import ConfigError
from sessionrec.models.neural.common import LOSSES

_EPS = 1e-24  # keeps log() finite when every negative outranks the target by a wide margin


def cross_entropy(
    scores: torch.Tensor, log_q: torch.Tensor | None = None, logq: float = 0.0
) -> torch.Tensor:
    """Sampled softmax cross-entropy of the diagonal, summed over rows.

    ``scores``: ``[n, n + S]`` (layout in the module docstring). ``log_q``: ``[n + S]``, the log
    (unnormalised) sampling probability of every column's item; used when ``logq > 0``.
    """
    n = scores.shape[0]
    if logq > 0.0 and log_q is not None:
        scores = scores - logq * log_q  # [n, n + S]; broadcasts over rows
    targets = torch.arange(n, device=scores.device)
    return F.cross_entropy(scores, targets, reduction="sum")


def bpr_max(scores: torch.Tensor, bpreg: float, elu_param: float) -> torch.Tensor:
    """BPR-max with score regularisation over ELU-activated scores, summed over rows."""
    if elu_param > 0.0:
        scores = F.elu(scores, alpha=elu_param)  # [n, n + S]
    target = scores.diagonal().unsqueeze(1)  # [n, 1]
    negatives = scores.clone()
    negatives.diagonal().fill_(float("-inf"))  # the row's own target is not a negative
    weights = torch.softmax(negatives, dim=1)  # [n, n + S], exactly 0 on the diagonal
    ranking = -torch.log((weights * torch.sigmoid(target - scores)).sum(dim=1) + _EPS)  # [n]
    regulariser = (weights * scores.square()).sum(dim=1)  # [n]
    return (ranking + bpreg * regulariser).sum()


class SampledLoss:
    """A configured loss: ``loss(scores, log_q)`` -> scalar sum over rows."""

    def __init__(
        self, name: str, *, bpreg: float = 1.0, elu_param: float = 0.5, logq: float = 0.0
    ) -> None:
        if name not in LOSSES:
            raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
        self.name = name
        self.bpreg = float(bpreg)
        self.elu_param = float(elu_param)
        self.logq = float(logq)

    @property
    def uses_log_q(self) -> bool:
        """Whether the loss reads the columns' log sampling probabilities."""
        return self.name == "cross-entropy" and self.logq > 0.0

    def __call__(self, scores: torch.Tensor, log_q: torch.Tensor | None = None) -> torch.Tensor:
        if self.name == "cross-entropy":
            return cross_entropy(scores, log_q, self.logq)
        return bpr_max(scores, self.bpreg, self.elu_param)

    def __repr__(self) -> str:
        if self.name == "cross-entropy":
            return f"SampledLoss('cross-entropy', logq={self.logq})"
        return f"SampledLoss('bpr-max', bpreg={self.bpreg}, elu_param={self.elu_param})"


def masked_sampled_softmax(
    scores: torch.Tensor,
    column_items: torch.Tensor,
    log_q: torch.Tensor | None = None,
    logq: float = 0.0,
) -> torch.Tensor:
    """Sampled softmax cross-entropy of the diagonal that never counts a positive as negative.

    Same layout as the module docstring (``scores [n, n + S]``, column ``b < n`` is row
    ``b``'s target); ``column_items [n + S]`` names the item of every column. A column other
    than the row's own diagonal that holds the row's target item (a repeated in-batch
    target, or a shared negative that happens to be the target) is masked out: it is the
    positive, and scoring it as a negative would push the target down against itself (the
    "accidental hit" removal of Yi et al. 2019, used by TRON, Wilm et al. 2023). With
    ``logq > 0`` every logit is first corrected by ``logq * log_q[column]`` (log of the
    column's sampling probability, logQ correction). Returns the sum over rows.
    """
    n = scores.shape[0]
    targets = column_items[:n]  # [n]
    if logq > 0.0 and log_q is not None:
        scores = scores - logq * log_q  # [n, n + S]; broadcasts over rows
    hit = column_items.unsqueeze(0) == targets.unsqueeze(1)  # [n, n + S]
    hit[:, :n].fill_diagonal_(False)  # the diagonal is the positive itself
    scores = scores.masked_fill(hit, float("-inf"))
    rows = torch.arange(n, device=scores.device)
    return F.cross_entropy(scores, rows, reduction="sum")
