"""SR-GNN: a gated graph neural network over the session graph, with a soft-attention readout.

Reference:
    Wu, Tang, Zhu, Wang, Xie & Tan (2019), "Session-based Recommendation with Graph Neural
    Networks", AAAI.

How it works. Each prefix becomes a directed graph: its distinct items are the nodes, and
every pair of consecutive clicks ``(v_j, v_j+1)`` an edge (counted once however often it
occurs). The graph's outgoing matrix ``A_out`` divides each node's out-edges by its
out-degree and the incoming matrix ``A_in`` each node's in-edges by its in-degree
(:func:`session_graphs`, the paper's Figure 2). Node vectors start as the item embeddings and
are updated ``n_steps`` times by a gated graph cell (eq. 1-5)::

    a   = [A_in (H W_in + b_in) + b_iah ; A_out (H W_out + b_out) + b_oah]
    z   = sigmoid(W_z a + U_z h)      r = sigmoid(W_r a + U_r h)
    h~  = tanh(W_o a + r * (U_o h))   h = (1 - z) h~ + z h

(biases on both gate products, as in the authors' PyTorch code). The readout (eq. 6-7) takes
the last click's node vector ``s_l`` and the soft attention
``s_g = sum_i alpha_i v_i`` with ``alpha_i = q^T sigmoid(W_1 v_n + W_2 v_i + c)`` over the
prefix's clicks, and ``s_h = W_3 [s_l ; s_g]``. Item ``i`` scores ``s_h . v_i`` with the item
embeddings; training is a full softmax with cross-entropy, Adam with L2 and a step decay, on
every prefix of every training session (:mod:`~sessionrec.models.neural.prefix`).

The batch's graphs are built together in tensor code, with no per-session Python loop: the
prefixes are sorted row-wise, the first occurrence of each item marks a node, scatters give
each click its node (the "alias") and set the edges of a ``[B, N, N]`` adjacency.

Deviations from the paper and the authors' code:

- Prefixes longer than ``max_len`` keep their most recent clicks (the paper has no limit).
- Validation-based epoch selection and early stopping are added (the authors' code picks
  the best test epoch); the last 10% of training sessions is the README's validation split.
- Sessions without known items get the popularity fallback; items without training clicks
  score ``-inf``.
- Scoring runs a float64 copy of the trained (float32) weights, so that a session's scores
  do not depend on the batch it is scored in (float32 products round differently with the
  batch's shape).
- Biases as in the paper's equations (6)-(7): the attention has one bias ``c`` and ``W_3``
  none; the authors' PyTorch code adds a second attention bias and one on ``W_3``.
- The padding row of the embedding table is zero (the authors' code has an item 0 with a
  trained embedding used by padding nodes; padding nodes never reach a real node's score).
- ``formulation="authors-code"`` builds the model of the authors' TensorFlow code instead
  (their first release; the default follows the paper's equations and their PyTorch
  code). It differs in four places. (1) Its session graph weights each edge by the
  degree of the node at its far end, not of the node being updated, and sends a node's
  successors through ``W_in`` and its predecessors through ``W_out``
  (:func:`session_graphs`). (2) The graph cell is TensorFlow's GRU cell: the reset gate
  acts on the node vector before its matrix, ``h~ = tanh(W_o a + U_o (r * h) + b_o)``,
  each gate has one bias, starting at 1, its matrices start Glorot-uniform, and there are
  no ``b_iah``/``b_oah``. (3) The last click enters the readout through the attention's
  matrix: ``s_h = W_3 [s_g ; W_1 v_n]`` (``W_1`` without ``c``, which the attention adds
  on its own). (4) ``c`` starts at zero.

Defaults are the paper's: hidden size 100, one propagation step, Adam 0.001 decayed by 0.1
every 3 epochs, L2 1e-5, batch 100, initialisation ``U(±1/sqrt(hidden_size))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionrec.models.neural.common import hyperparameters
from sessionrec.models.neural.prefix import FORMULATIONS, PrefixRecommender, embedding_weight
from sessionrec.models.params import check_choice, check_int

if TYPE_CHECKING:
    import torch


def session_graphs(
    items: torch.Tensor, dtype: torch.dtype | None = None, formulation: str = "paper"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The session graphs of a padded batch, built together.

    ``items``: ``[B, L]`` left-aligned prefixes (``item + 1``, 0 = padding). Returns

    - ``nodes`` ``[B, N]``: each graph's distinct items in ascending order, 0-padded
      (``N`` is the most distinct items of any row);
    - ``alias`` ``[B, L]``: the node of each click (0 at padding positions);
    - ``a_in`` and ``a_out`` ``[B, N, N]``: row ``j`` of ``a_in`` holds node ``j``'s
      in-neighbours weighted ``1 / in-degree(j)``, row ``j`` of ``a_out`` its out-neighbours
      weighted ``1 / out-degree(j)``; an edge repeated in the session counts once.

    ``dtype``: of the two matrices (default float32).

    ``formulation="authors-code"``: the matrices of the authors' TensorFlow code, which
    divide each edge by the degree of the node at its other end and swap the neighbours:
    row ``j`` of ``a_in`` holds node ``j``'s out-neighbours ``k`` weighted
    ``1 / in-degree(k)``, row ``j`` of ``a_out`` its in-neighbours ``k`` weighted
    ``1 / out-degree(k)``.
    """
    import torch

    batch, width = items.shape
    ordered, order = items.sort(dim=1)  # [B, L]: padding (0) first
    first = ordered != 0
    first[:, 1:] &= ordered[:, 1:] != ordered[:, :-1]  # first occurrence of an item
    node_of_sorted = first.cumsum(dim=1) - 1  # [B, L]: -1 before the first item
    n_nodes = max(int(first.sum(dim=1).max()), 1) if batch else 1
    alias = torch.empty_like(items).scatter_(1, order, node_of_sorted.clamp(min=0))
    alias = alias.masked_fill_(items == 0, 0)
    nodes = items.new_zeros((batch, n_nodes))
    row_of = torch.arange(batch, device=items.device).unsqueeze(1).expand(batch, width)
    nodes[row_of[first], node_of_sorted[first]] = ordered[first]
    # Edges between consecutive clicks; with left-aligned prefixes a click at j + 1 means
    # one at j.
    edge = items[:, 1:] != 0  # [B, L - 1]
    adjacency = items.new_zeros((batch, n_nodes, n_nodes), dtype=dtype or torch.float32)
    adjacency[row_of[:, 1:][edge], alias[:, :-1][edge], alias[:, 1:][edge]] = 1.0
    out_degree = adjacency.sum(dim=2).clamp(min=1.0)  # [B, N]
    in_degree = adjacency.sum(dim=1).clamp(min=1.0)  # [B, N]
    if formulation == "authors-code":
        a_in = adjacency / in_degree.unsqueeze(1)
        a_out = adjacency.transpose(1, 2) / out_degree.unsqueeze(1)
    else:
        a_out = adjacency / out_degree.unsqueeze(2)
        a_in = adjacency.transpose(1, 2) / in_degree.unsqueeze(2)
    return nodes, alias, a_in, a_out


@hyperparameters
class SRGNN(PrefixRecommender):
    """SR-GNN (Wu et al. 2019); see the module docstring.

    Own hyperparameters: ``hidden_size`` (item embeddings and node vectors), ``n_steps``
    (propagation steps of the gated graph cell) and ``formulation`` (``"paper"`` or
    ``"authors-code"``, see the module docstring). The shared ones are described in
    :class:`~sessionrec.models.neural.prefix.PrefixRecommender`.
    """

    name = "srgnn"

    hidden_size: int = 100
    n_steps: int = 1
    formulation: str = "paper"
    batch_size: int = 100
    lr_decay: float = 0.1
    lr_decay_every: int = 3
    l2: float = 1e-5

    def _check_params(self) -> None:
        check_int("hidden_size", self.hidden_size)
        check_int("n_steps", self.n_steps)
        check_choice("formulation", self.formulation, FORMULATIONS)
        super()._check_params()

    def _build_network(self, n_items: int) -> torch.nn.Module:
        import torch
        from torch import nn

        d = self.hidden_size
        code = self.formulation == "authors-code"
        if code:  # TensorFlow's GRU cell (module docstring)
            cell = {
                "gates": nn.Linear(3 * d, 2 * d),  # [a ; h] -> reset, update (one bias each)
                "candidate_input": nn.Linear(2 * d, d),  # W_o a + b_o
                "candidate_hidden": nn.Linear(d, d, bias=False),  # U_o (r * h)
            }
        else:
            cell = {
                "gate_input": nn.Linear(2 * d, 3 * d),  # W_r, W_z, W_o on a
                "gate_hidden": nn.Linear(d, 3 * d),  # U_r, U_z, U_o on h
            }
        network = nn.ModuleDict(
            {
                "embedding": nn.Embedding(n_items + 1, d, padding_idx=0),
                "edge_in": nn.Linear(d, d),  # W_in, b_in
                "edge_out": nn.Linear(d, d),  # W_out, b_out
                **cell,
                "w_last": nn.Linear(d, d, bias=not code),  # W_1 (with c in the paper's)
                "w_click": nn.Linear(d, d, bias=False),  # W_2
                "q": nn.Linear(d, 1, bias=False),
                "w_out": nn.Linear(2 * d, d, bias=False),  # W_3
            }
        )
        if code:
            network["attention_bias"] = nn.ParameterDict({"c": nn.Parameter(torch.zeros(d))})
        else:
            network["aggregate_bias"] = nn.ParameterDict(
                {
                    "incoming": nn.Parameter(torch.zeros(d)),  # b_iah
                    "outgoing": nn.Parameter(torch.zeros(d)),  # b_oah
                }
            )
        bound = 1.0 / d**0.5
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.uniform_(-bound, bound)
            embedding_weight(network)[0].zero_()
            if code:
                # TensorFlow's GRU cell: Glorot-uniform matrices over its stacked [a ; h]
                # input, gate biases 1, candidate bias 0; the attention bias starts at 0.
                net: Any = network  # a ModuleDict: its entries type as Tensor | Module
                gate_bound = (6.0 / (3 * d + 2 * d)) ** 0.5
                candidate_bound = (6.0 / (3 * d + d)) ** 0.5
                net.gates.weight.uniform_(-gate_bound, gate_bound)
                net.gates.bias.fill_(1.0)
                net.candidate_input.weight.uniform_(-candidate_bound, candidate_bound)
                net.candidate_hidden.weight.uniform_(-candidate_bound, candidate_bound)
                net.candidate_input.bias.zero_()
                net.attention_bias.c.zero_()
        return network

    def _session_vectors(
        self,
        network: torch.nn.Module,
        items: torch.Tensor,
        lengths: torch.Tensor,
        types: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # Never typed: a graph node is an item, which several clicks of different types
        # may share (see _event_types_setting).
        import torch

        net: Any = network  # a ModuleDict: its entries type as Tensor | Module

        table = net.embedding.weight
        nodes, alias, a_in, a_out = session_graphs(items, table.dtype, self.formulation)
        hidden = net.embedding(nodes)  # [B, N, d]
        code = self.formulation == "authors-code"
        for _ in range(self.n_steps):
            incoming = a_in @ net.edge_in(hidden)  # [B, N, d]
            outgoing = a_out @ net.edge_out(hidden)  # [B, N, d]
            if code:
                a = torch.cat([incoming, outgoing], dim=2)  # [B, N, 2d]
                gates = torch.sigmoid(net.gates(torch.cat([a, hidden], dim=2)))
                reset, update = gates.chunk(2, dim=2)
                candidate = torch.tanh(
                    net.candidate_input(a) + net.candidate_hidden(reset * hidden)
                )
            else:
                incoming = incoming + net.aggregate_bias.incoming
                outgoing = outgoing + net.aggregate_bias.outgoing
                gates_a = net.gate_input(torch.cat([incoming, outgoing], dim=2))  # [B, N, 3d]
                gates_h = net.gate_hidden(hidden)  # [B, N, 3d]
                a_r, a_z, a_o = gates_a.chunk(3, dim=2)
                h_r, h_z, h_o = gates_h.chunk(3, dim=2)
                reset = torch.sigmoid(a_r + h_r)
                update = torch.sigmoid(a_z + h_z)
                candidate = torch.tanh(a_o + reset * h_o)
            hidden = candidate + update * (hidden - candidate)
        d = hidden.shape[2]
        clicks = hidden.gather(1, alias.unsqueeze(2).expand(-1, -1, d))  # [B, L, d]
        rows = torch.arange(items.shape[0], device=items.device)
        last = clicks[rows, lengths - 1]  # [B, d]: s_l
        projected_last = net.w_last(last)  # W_1 s_l (+ c in the paper's formulation)
        scores = projected_last.unsqueeze(1) + net.w_click(clicks)
        if code:
            scores = scores + net.attention_bias.c
        attention = net.q(torch.sigmoid(scores))  # [B, L, 1]
        attention = attention * (items > 0).unsqueeze(2)  # padding weighs 0
        pooled = (attention * clicks).sum(dim=1)  # [B, d]: s_g
        readout_last = projected_last if code else last
        result: torch.Tensor = net.w_out(torch.cat([pooled, readout_last], dim=1))  # s_h
        return result
