"""Session-based k-nearest neighbours: ``sknn``, ``vsknn``, ``stan``, ``vstan``, ``vmisknn``.

All five recommend the items of the training sessions most similar to the current one. They
share one index and one Numba pipeline (:mod:`sessionrec.models.knn_kernels`) and differ
in how they weight things:

=========  ===================  ============================  ================================
model      session item weight  similarity                    item score of neighbour ``n``
=========  ===================  ============================  ================================
sknn       1                    cosine (or jaccard, dot)      sim(s, n)
vsknn      decay by position    dot product / distinct items  sim · decay(match) · (1 + λ·idf)
stan       exp(-d / λ1)         cosine · exp(-age(n) / λ2)    sim · exp(-|p(i,n) - p*| / λ3)
vstan      exp(-d / λ_spw)      cosine · exp(-age(n) / λ_snh) stan · exp(-d* / λ_ipw) · (1+λ·idf)
vmisknn    position / length    dot product                   sim · linear(match) · idf
=========  ===================  ============================  ================================

Definitions shared by every model (and every docstring below):

- ``d``: clicks between an item's last click in the current session and the session's last
  click (0 for the last click); a repeated item keeps the weight of its last click.
- **candidates**: the ``sample_size`` most recent training sessions that share at least one
  item with the current session ("recent" sampling of session-rec). **Neighbours**: the ``k``
  candidates with the highest positive similarity; ties go to the more recent session.
- **recency** of a training session: its order by last click time when the training data has
  timestamps, otherwise its position in the data (sessions are stored chronologically). The
  **age** of a training session is the number of training sessions more recent than it.
- **match** of a neighbour: the most recent click of the current session whose item the
  neighbour contains; ``step`` is its position counted back from the last click (1 = last),
  ``d* = step - 1``. ``p(i, n)`` is the position (1-based, last click) of item ``i`` in
  neighbour ``n``, and ``p*`` the last position in ``n`` of an item it shares with the session.
- **idf** of an item: ``log(N / N_i)``, with ``N`` training sessions of which ``N_i``
  contain the item.

Every item of a neighbour (the session's own items included) gets a score; all other items
score ``-inf`` ("no evidence"). A session for which no item gets a score (it is empty, made
only of unknown items, or shares nothing usable with the training data) falls back to global
popularity (training clicks per item), for every item; :meth:`SessionKNN.fallback_mask` tells
which sessions of a batch did, so a service can label those lists "popular" rather than
"personalised".

Scoring touches only the session's candidates: each item's posting list (the training sessions
containing it) is read from its most recent end, and lists are truncated at fit time to their
``sample_size`` most recent sessions, which loses nothing (the ``m`` most recent sessions of a
union of lists are among the ``m`` most recent of each list). :meth:`SessionKNN.top_k` selects
the best items straight from the sparse scores, and :meth:`SessionKNN.target_ranks` ranks
evaluation targets without dense rows; both agree exactly with :meth:`SessionKNN.score`.

Deviations shared by all five models, relative to the papers and the session-rec reference
implementations (rn5l/session-rec, ``algorithms/knn``):

- Time-aware parts (STAN's λ2, VSTAN's λ_snh) measure a neighbour's age in training sessions
  rather than seconds or days: the benchmark files have no timestamps, and an ordinal age
  works the same with and without them. ``SessionBatch.times`` is therefore never needed and
  is ignored; the current session counts as younger than every training session.
- Only "recent" candidate sampling (session-rec's default); no "random" sampling, which would
  make recommendations non-deterministic.
- The session's own items are always eligible (session-rec's ``remind=True``); callers that do
  not want them pass ``exclude_seen=True`` to ``recommend``.
- Neighbour ties are broken by recency (session-rec: by the order of a Python ``set``).
- ``session-rec``'s ``extend`` (adding test sessions to the index while evaluating), dwelling
  times, ``last_n_days`` and the final division by the maximum score (``normalize``, rank
  invariant) are not provided.
"""

from __future__ import annotations

import numpy as np

from sessionrec.models import knn_kernels as kernels
from sessionrec.models.knn_index import Scoring
from sessionrec.models.knn_objective import check_type_params
from sessionrec.models.params import check_choice, check_float, check_int, check_param
from sessionrec.models.session_knn import SessionKNN

POSITION_WEIGHTS: dict[str, int] = {
    "same": kernels.W_SAME,
    "linear": kernels.W_LINEAR,
    "div": kernels.W_DIV,
    "quadratic": kernels.W_QUADRATIC,
    "log": kernels.W_LOG,
}
"""Session item weights by ``d`` (clicks back from the last click, ``L`` clicks in all):
``same`` 1, ``linear`` max(0, 1 - 0.1 d), ``div`` (L - d) / L, ``quadratic`` ((L - d) / L)²,
``log`` 1 / log10(d + 1.7). Names and shapes of session-rec's ``weighting``, except that
``linear`` counts back from the last click as the V-SKNN paper describes (session-rec counts
from the first click, a bug for sessions longer than ten clicks)."""

MATCH_DECAYS: dict[str, int] = {
    "same": kernels.D_SAME,
    "linear": kernels.D_LINEAR,
    "div": kernels.D_DIV,
    "quadratic": kernels.D_QUADRATIC,
    "log": kernels.D_LOG,
}
"""Neighbour decays by the ``step`` of its match (1 = last click): ``same`` 1, ``linear``
max(0, 1 - 0.1 step), ``div`` 1 / step, ``quadratic`` 1 / step², ``log`` 1 / log10(step + 1.7):
session-rec's ``weighting_score`` functions, clipped at 0 (session-rec's and Serenade's
linear decay turns negative after ten clicks)."""

SIMILARITIES: dict[str, int] = {
    "vec": kernels.SIM_VEC,
    "cosine": kernels.SIM_COSINE,
    "jaccard": kernels.SIM_JACCARD,
}
"""``vec``: dot product of the weighted session with the neighbour's item set, divided by the
number of distinct session items; ``cosine``: the dot product divided by the norms of both
vectors (weighted session, binary neighbour); ``jaccard``: shared / (union of item sets), on
unweighted items."""


def check_sampling(k: object, sample_size: object) -> None:
    """``k >= 1`` neighbours among ``sample_size >= k`` candidate sessions."""
    check_int("k", k, minimum=1)
    check_int("sample_size", sample_size, minimum=1)
    check_param(
        "sample_size",
        sample_size,
        sample_size >= k,  # type: ignore[operator]
        f"expected at least k={k} candidate sessions to choose {k} neighbours from",
    )


def check_decay(name: str, value: object) -> None:
    """A decay constant λ of ``exp(-x / λ)``: a finite number > 0 (large = no decay)."""
    check_float(name, value, minimum=0.0, strict_min=True)


class SKNN(SessionKNN):
    """Session-based kNN (``sknn``): Jannach & Ludewig (2017), "When recurrent neural networks
    meet the neighborhood for session-based recommendation", RecSys, section 2 ("SKNN").

    Sessions are binary item vectors; ``score(i) = Σ_{n ∈ N(s)} sim(s, n) · 1[i ∈ n]`` over the
    ``k`` nearest of the ``sample_size`` most recent candidate sessions (module docstring).

    Parameters:
        k: neighbours.
        sample_size: candidate sessions (the most recent sharing an item); at least ``k``.
        similarity: ``cosine`` (default), ``jaccard`` or ``vec`` (see :data:`SIMILARITIES`).
        last_n_clicks: use only the session's last clicks (0 = all; session-rec's
            ``last_n_clicks``).
        objective, type_weight_cart, type_weight_purchase: event types (every model of this
            module; :mod:`sessionrec.models.knn_objective`): ``objective`` ``click``
            (default: the next item), ``cart`` or ``purchase`` (items carted / bought later in
            the session; needs training data with such events); the type weights (> 0,
            default 1) multiply the current session's weight of an item carted / purchased.
        share_view, share_other: a ``cart``/``purchase`` objective's weight of a
            neighbour's item that was only viewed / reached the other type there (defaults
            0.1 / 0.5; :func:`~sessionrec.models.knn_objective.objective_shares`).

    Deviations: those of the module docstring; defaults ``k=100``, ``sample_size=500`` (the
    neighbourhood of this project's V-SKNN yardstick) instead of session-rec's required ``k``
    and ``sample_size=1000``; cosine by default (the paper's choice; session-rec's ``sknn``
    defaults to Jaccard).
    """

    name = "sknn"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        similarity: str = "cosine",
        last_n_clicks: int = 0,
        objective: str = "click",
        type_weight_cart: float = 1.0,
        type_weight_purchase: float = 1.0,
        share_view: float = 0.1,
        share_other: float = 0.5,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("similarity", similarity, SIMILARITIES)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        check_type_params(
            objective, type_weight_cart, type_weight_purchase, share_view, share_other
        )
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.last_n_clicks = last_n_clicks
        self.objective = objective
        self.type_weight_cart = type_weight_cart
        self.type_weight_purchase = type_weight_purchase
        self.share_view = share_view
        self.share_other = share_other

    def _scoring(self) -> Scoring:
        return Scoring(weighting=kernels.W_SAME, similarity=SIMILARITIES[self.similarity])


class VSKNN(SessionKNN):
    """Vector multiplication session-based kNN (``vsknn``, V-SKNN): Jannach & Ludewig (2017),
    "When recurrent neural networks meet the neighborhood for session-based recommendation",
    RecSys, section 2 ("V-SKNN"); options of Ludewig & Jannach (2018), "Evaluation of
    session-based recommendation algorithms", UMUAI 28(4-5).

    The current session is a real-valued vector: the last click weighs 1 and earlier items
    decay with their distance ``d`` to it (``weighting``). With ``similarity="vec"`` the
    similarity is the dot product with the neighbour's (binary) item set divided by the number
    of distinct session items. ``score(i) = Σ_n sim(s, n) · decay(step_n) · (1 + λ_idf ·
    idf(i)) · 1[i ∈ n]`` with ``decay = weighting_score`` of the neighbour's match.

    Parameters:
        k, sample_size, last_n_clicks, objective, type weights: as for :class:`SKNN`.
        weighting: session item weights by position (:data:`POSITION_WEIGHTS`).
        similarity: ``vec`` (default) or ``cosine``.
        weighting_score: neighbour decay by its match (:data:`MATCH_DECAYS`); ``same`` = none.
        idf_weighting: λ_idf >= 0 (0 = no IDF).

    Defaults: the paper's V-SKNN as configured for this project's yardstick (HR@20 / MRR@20
    49.08 / 17.42 on Diginetica, 63.81 / 25.70 on YooChoose 1/64): 100 neighbours among the
    500 most recent candidates, linear decay ``max(0, 1 - 0.1 d)``, dot product / distinct
    items, no score decay, no IDF. Deviations: those of the module docstring; ``linear``
    counts ``d`` back from the last click (session-rec's ``linear`` counts from the first
    click and weighs every item after the tenth 0); IDF uses sessions containing the item
    (session-rec: its clicks).
    """

    name = "vsknn"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        weighting: str = "linear",
        similarity: str = "vec",
        weighting_score: str = "same",
        idf_weighting: float = 0.0,
        last_n_clicks: int = 0,
        objective: str = "click",
        type_weight_cart: float = 1.0,
        type_weight_purchase: float = 1.0,
        share_view: float = 0.1,
        share_other: float = 0.5,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("weighting", weighting, POSITION_WEIGHTS)
        check_choice("similarity", similarity, ("vec", "cosine"))
        check_choice("weighting_score", weighting_score, MATCH_DECAYS)
        check_float("idf_weighting", idf_weighting, minimum=0.0)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        check_type_params(
            objective, type_weight_cart, type_weight_purchase, share_view, share_other
        )
        self.k = k
        self.sample_size = sample_size
        self.weighting = weighting
        self.similarity = similarity
        self.weighting_score = weighting_score
        self.idf_weighting = idf_weighting
        self.last_n_clicks = last_n_clicks
        self.objective = objective
        self.type_weight_cart = type_weight_cart
        self.type_weight_purchase = type_weight_purchase
        self.share_view = share_view
        self.share_other = share_other

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=POSITION_WEIGHTS[self.weighting],
            similarity=SIMILARITIES[self.similarity],
            match_decay=MATCH_DECAYS[self.weighting_score],
            idf="add" if self.idf_weighting > 0 else "none",
            idf_lambda=float(self.idf_weighting),
        )


class STAN(SessionKNN):
    """Sequence and time aware neighbourhood (``stan``): Garg, Gupta, Dasgupta, Padmanabhan &
    Bhatia (2019), "Sequence and time aware neighborhood for session-based recommendations:
    STAN", SIGIR.

    Three decays on top of SKNN:

    1. item ``i`` of the current session weighs ``w1 = exp(-d / λ1)`` (``lambda_spw``);
    2. the similarity of neighbour ``n`` (cosine of the weighted session with the binary
       neighbour) is multiplied by ``w2 = exp(-age(n) / λ2)`` (``lambda_snh``), and the
       ``k`` neighbours are chosen by that product;
    3. item ``i`` of neighbour ``n`` scores ``sim(s, n) · exp(-|p(i, n) - p*| / λ3)``
       (``lambda_inh``): items close to where the neighbour met the session count more.

    Parameters:
        k, sample_size, last_n_clicks, objective, type weights: as for :class:`SKNN`.
        lambda_spw, lambda_snh, lambda_inh: λ1, λ2, λ3, each > 0; a huge value switches the
            decay off.

    Defaults: λ1 = 1.02 and λ3 = 2.05 as in session-rec's STAN, ``sample_size=5000`` (its
    default), ``k=100``. Deviations: those of the module docstring; λ2 counts training
    sessions, not days, so session-rec's default of 5 days has no portable equivalent (it is
    about 6,000 Diginetica sessions, and costs 7 points of HR@20 there): the default
    ``lambda_snh=100000`` lies between the values tuned on Diginetica and YooChoose 1/64;
    the similarity's norm of the session is the
    weighted norm rather than ``sqrt(l(s))`` (a per-session constant: same neighbours, same
    ranking); ``p*`` is the last position in ``n`` of any item shared with the session, as in
    session-rec and RecPack.
    """

    name = "stan"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 5000,
        lambda_spw: float = 1.02,
        lambda_snh: float = 100_000.0,
        lambda_inh: float = 2.05,
        last_n_clicks: int = 0,
        objective: str = "click",
        type_weight_cart: float = 1.0,
        type_weight_purchase: float = 1.0,
        share_view: float = 0.1,
        share_other: float = 0.5,
    ) -> None:
        check_sampling(k, sample_size)
        check_decay("lambda_spw", lambda_spw)
        check_decay("lambda_snh", lambda_snh)
        check_decay("lambda_inh", lambda_inh)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        check_type_params(
            objective, type_weight_cart, type_weight_purchase, share_view, share_other
        )
        self.k = k
        self.sample_size = sample_size
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.last_n_clicks = last_n_clicks
        self.objective = objective
        self.type_weight_cart = type_weight_cart
        self.type_weight_purchase = type_weight_purchase
        self.share_view = share_view
        self.share_other = share_other

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=kernels.W_EXP,
            weighting_lambda=float(self.lambda_spw),
            similarity=kernels.SIM_COSINE,
            recency_lambda=float(self.lambda_snh),
            position_lambda=float(self.lambda_inh),
        )


class VSTAN(SessionKNN):
    """STAN with V-SKNN's extras (``vstan``): Ludewig, Latifi, Mauro & Jannach (2021),
    "Empirical analysis of session-based recommendation algorithms", UMUAI 31(1), section 3
    ("VSTAN").

    STAN's three decays (λ_spw, λ_snh, λ_inh, see :class:`STAN`) plus, per neighbour, the
    V-SKNN decay by its match ``exp(-d* / λ_ipw)`` and, per item, IDF weighting
    ``(1 + λ_idf · idf(i))``.

    Parameters:
        k, sample_size, last_n_clicks, objective, type weights: as for :class:`SKNN`.
        similarity: ``cosine`` (default) or ``vec``.
        lambda_spw, lambda_snh, lambda_inh, lambda_ipw: decay constants, each > 0.
        lambda_idf: IDF weight >= 0 (0 = none).

    Defaults: session-rec's VSTAN (``sample_size=5000``, λ_spw 1.02, λ_inh 2.05, λ_ipw
    1.02, λ_idf 5), ``k=500`` and λ_snh in sessions as for :class:`STAN`. Deviations: those
    of :class:`STAN` and the module docstring; IDF uses sessions containing the item
    (session-rec: its clicks).
    """

    name = "vstan"

    def __init__(
        self,
        k: int = 500,
        sample_size: int = 5000,
        similarity: str = "cosine",
        lambda_spw: float = 1.02,
        lambda_snh: float = 100_000.0,
        lambda_inh: float = 2.05,
        lambda_ipw: float = 1.02,
        lambda_idf: float = 5.0,
        last_n_clicks: int = 0,
        objective: str = "click",
        type_weight_cart: float = 1.0,
        type_weight_purchase: float = 1.0,
        share_view: float = 0.1,
        share_other: float = 0.5,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("similarity", similarity, ("cosine", "vec"))
        for name, value in (
            ("lambda_spw", lambda_spw),
            ("lambda_snh", lambda_snh),
            ("lambda_inh", lambda_inh),
            ("lambda_ipw", lambda_ipw),
        ):
            check_decay(name, value)
        check_float("lambda_idf", lambda_idf, minimum=0.0)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        check_type_params(
            objective, type_weight_cart, type_weight_purchase, share_view, share_other
        )
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.lambda_ipw = lambda_ipw
        self.lambda_idf = lambda_idf
        self.last_n_clicks = last_n_clicks
        self.objective = objective
        self.type_weight_cart = type_weight_cart
        self.type_weight_purchase = type_weight_purchase
        self.share_view = share_view
        self.share_other = share_other

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=kernels.W_EXP,
            weighting_lambda=float(self.lambda_spw),
            similarity=SIMILARITIES[self.similarity],
            recency_lambda=float(self.lambda_snh),
            match_decay=kernels.D_EXP,
            match_lambda=float(self.lambda_ipw),
            position_lambda=float(self.lambda_inh),
            idf="add" if self.lambda_idf > 0 else "none",
            idf_lambda=float(self.lambda_idf),
        )


class VMISKNN(SessionKNN):
    """Vector-multiplication indexed session kNN (``vmisknn``, VMIS-kNN): Kersbergen,
    Sprangers & Schelter (2022), "Serenade - Low-latency session-based recommendation in
    e-commerce at scale", SIGMOD.

    The index keeps, per item, only the ``sample_size`` (the paper's ``m``) most recent
    sessions containing it, built once at fit time; scoring reads only that index. The
    session's items weigh their position over the session length (``div``: the last click
    1); the similarity is the plain dot product; the ``k`` most similar of the ``m`` most
    recent candidates are the neighbours, ties to the more recent; item ``i`` scores
    ``Σ_n sim(s, n) · linear(step_n) · idf(i)``.

    Parameters:
        k: neighbours; sample_size: ``m``; last_n_clicks: as for :class:`SKNN` (Serenade's
            ``max_items_in_session``); objective, type weights: as for :class:`SKNN`.
        weighting: session item weights (:data:`POSITION_WEIGHTS`), default ``div``.
        weighting_score: neighbour decay by its match (:data:`MATCH_DECAYS`), default
            ``linear``.
        idf: multiply by the item's IDF (default on, as in the paper).

    Defaults: Serenade's configuration (``k=500``, ``m=500``, every click of the session).
    Deviations: those of the module docstring; the similarity is ``Σ p / L`` over the shared
    items divided by the number ``q`` of distinct session items, Serenade's ``Σ p / q`` (a
    per-session factor ``L`` apart: same neighbours, same ranking);
    the linear decay is clipped at 0 instead of turning negative; IDF is
    ``log(N / N_i)`` over sessions (Serenade divides the number of (session, item) pairs);
    Serenade's serving code drops the session's last item from the list, which we leave to
    the caller (``exclude``), as 9-15 % of benchmark next clicks repeat the last item.
    """

    name = "vmisknn"

    def __init__(
        self,
        k: int = 500,
        sample_size: int = 500,
        weighting: str = "div",
        weighting_score: str = "linear",
        idf: bool = True,
        last_n_clicks: int = 0,
        objective: str = "click",
        type_weight_cart: float = 1.0,
        type_weight_purchase: float = 1.0,
        share_view: float = 0.1,
        share_other: float = 0.5,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("weighting", weighting, POSITION_WEIGHTS)
        check_choice("weighting_score", weighting_score, MATCH_DECAYS)
        check_param("idf", idf, isinstance(idf, (bool, np.bool_)), "expected true or false")
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        check_type_params(
            objective, type_weight_cart, type_weight_purchase, share_view, share_other
        )
        self.k = k
        self.sample_size = sample_size
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.idf = idf
        self.last_n_clicks = last_n_clicks
        self.objective = objective
        self.type_weight_cart = type_weight_cart
        self.type_weight_purchase = type_weight_purchase
        self.share_view = share_view
        self.share_other = share_other

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=POSITION_WEIGHTS[self.weighting],
            similarity=kernels.SIM_VEC,
            match_decay=MATCH_DECAYS[self.weighting_score],
            idf="mul" if self.idf else "none",
        )
