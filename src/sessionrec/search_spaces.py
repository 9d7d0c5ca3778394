"""The search spaces of ``sessionrec tune``: per model, hyperparameter -> range.

Kept apart from :mod:`sessionrec.tuning` (which runs the search) so that the ranges, the
part one reads and edits, stand on their own; Optuna is needed only to sample them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class IntRange:
    """Integers in ``[low, high]``, sampled on a log scale when ``log``."""

    low: int
    high: int
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return int(trial.suggest_int(name, self.low, self.high, log=self.log))

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high


@dataclass(frozen=True)
class FloatRange:
    """Reals in ``[low, high]``, sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return float(trial.suggest_float(name, self.low, self.high, log=self.log))

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of a few values (strings, numbers or booleans)."""

    values: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)


Space = IntRange | FloatRange | Choice

_NEIGHBOURS: dict[str, Space] = {
    "k": IntRange(50, 2000, log=True),
    "sample_size": IntRange(200, 10000, log=True),
    "last_n_clicks": Choice((0, 1, 2, 3, 5, 10)),
}
_DECAY = FloatRange(0.05, 50.0, log=True)  # λ of exp(-x / λ), in clicks
_POSITION_WEIGHTS = Choice(("same", "linear", "div", "quadratic", "log"))
_MATCH_DECAYS = Choice(("same", "linear", "div", "quadratic", "log"))

_KNN_SPACES: dict[str, dict[str, Space]] = {
    "sknn": {**_NEIGHBOURS, "similarity": Choice(("cosine", "jaccard", "vec"))},
    "vsknn": {
        **_NEIGHBOURS,
        "weighting": _POSITION_WEIGHTS,
        "similarity": Choice(("vec", "cosine")),
        "weighting_score": _MATCH_DECAYS,
        "idf_weighting": Choice((0.0, 1.0, 2.0, 5.0, 10.0)),
    },
    "stan": {
        **_NEIGHBOURS,
        "lambda_spw": _DECAY,
        "lambda_snh": FloatRange(100.0, 1e7, log=True),  # in training sessions
        "lambda_inh": _DECAY,
    },
    "vstan": {
        **_NEIGHBOURS,
        "similarity": Choice(("cosine", "vec")),
        "lambda_spw": _DECAY,
        "lambda_snh": FloatRange(100.0, 1e7, log=True),
        "lambda_inh": _DECAY,
        "lambda_ipw": _DECAY,
        "lambda_idf": Choice((0.0, 1.0, 2.0, 5.0, 10.0)),
    },
    "vmisknn": {
        **_NEIGHBOURS,
        "weighting": _POSITION_WEIGHTS,
        "weighting_score": _MATCH_DECAYS,
        "idf": Choice((True, False)),
    },
}
_ITEM_SPACES: dict[str, dict[str, Space]] = {
    "sr": {
        "steps": IntRange(1, 20),
        "weighting": Choice(("div", "same", "linear", "quadratic", "log")),
        "pruning": Choice((0, 5, 10, 20, 50)),
    },
    "itemknn": {
        "n_neighbors": IntRange(20, 1000, log=True),
        "alpha": FloatRange(0.0, 1.0),
        "lambda_": FloatRange(0.0, 100.0),
        "counting": Choice(("clicks", "sessions")),
    },
}
_LEARNING_RATE = FloatRange(1e-4, 2e-2, log=True)  # Adam's; GRU4Rec's Adagrad has its own
_L2 = Choice((0.0, 1e-6, 1e-5, 1e-4))
_NEURAL_SPACES: dict[str, dict[str, Space]] = {
    "gru4rec": {
        "loss": Choice(("cross-entropy", "bpr-max")),
        "hidden_size": Choice((64, 100, 128, 256)),
        "batch_size": Choice((32, 64, 128, 256)),
        "dropout_p_embed": FloatRange(0.0, 0.5),
        "dropout_p_hidden": FloatRange(0.0, 0.7),
        "learning_rate": FloatRange(0.01, 0.25, log=True),
        "momentum": FloatRange(0.0, 0.9),
        "n_sample": Choice((0, 512, 2048)),
        "sample_alpha": FloatRange(0.0, 1.0),
    },
    "narm": {
        "embedding_size": Choice((50, 100, 200)),
        "hidden_size": Choice((50, 100, 200)),
        "dropout_embed": FloatRange(0.0, 0.5),
        "dropout_context": FloatRange(0.0, 0.7),
        "batch_size": Choice((128, 256, 512)),
        "learning_rate": _LEARNING_RATE,
        "l2": _L2,
    },
    "stamp": {
        "embedding_size": Choice((50, 100, 200)),
        "batch_size": Choice((128, 256, 512)),
        "learning_rate": _LEARNING_RATE,
        "l2": _L2,
    },
    "srgnn": {
        "hidden_size": Choice((50, 100, 200)),
        "n_steps": IntRange(1, 3),
        "batch_size": Choice((50, 100, 200)),
        "learning_rate": _LEARNING_RATE,
        "lr_decay": FloatRange(0.1, 1.0),
        "l2": _L2,
    },
    "sasrec": {
        "hidden_size": Choice((32, 64, 128)),  # multiples of every n_heads choice
        "n_heads": Choice((1, 2)),
        "n_blocks": IntRange(1, 3),
        "dropout": FloatRange(0.0, 0.5),
        "batch_size": Choice((256, 512, 1024)),
        "learning_rate": _LEARNING_RATE,
    },
}
SEARCH_SPACES: dict[str, dict[str, Space]] = {**_KNN_SPACES, **_ITEM_SPACES, **_NEURAL_SPACES}
"""Search space per model: hyperparameter -> range. Every standalone model with
hyperparameters has one (``pop``, ``spop`` and ``markov`` have none to search);
:data:`COMPOSITE_TUNING` says what tuning ``repeat`` and ``ensemble`` means.

Session kNN: ``sample_size`` is raised to ``k`` when a trial draws it smaller (a model needs
at least ``k`` candidates). The ranges cover the grids session-rec tunes these models on
(``conf/save/diginetica/.../opt``), widened: ``k`` and ``sample_size`` log-uniform over
50..2,000 and 200..10,000; decay constants (clicks) log-uniform over 0.05..50; the
neighbour-recency constant λ_snh over 100..10^7 training sessions (about 0.1 to 10,000 days
on Diginetica).

The neural models search their network sizes, regularisation and optimiser; every range
holds the model's default, so the defaults are trial 0. Each trial trains for at most
``trial_seconds`` (``--trial-seconds``) and keeps the epoch validation chose."""

COMPOSITE_TUNING: dict[str, str] = {
    "repeat": "searches the space of its base (--param base=NAME, default vstan; a session-kNN "
    "model, sr or itemknn), each trial fitting the whole layer over the base",
    "ensemble": "is not tuned as a whole: it learns its member weights on validation itself",
}
"""What tuning a composite model means (shown by ``sessionrec tune --help``)."""

TYPE_WEIGHTS: dict[str, Choice] = {
    "type_weight_cart": Choice((1.0, 2.0, 4.0, 8.0)),
    "type_weight_purchase": Choice((0.5, 1.0, 2.0, 4.0)),
}
"""The weights of carted and purchased items (session kNN: the session's own, in its
similarity; rules: a rule's source click), searched only on data with event types
(:func:`type_weight_space`): on views-only data they change nothing. Each range holds the
default 1.0."""

OBJECTIVE_SHARES_SPACE: dict[str, Choice] = {
    "share_view": Choice((0.0, 0.05, 0.1, 0.2, 0.5)),
    "share_other": Choice((0.0, 0.25, 0.5, 0.75, 1.0)),
}
"""The session-kNN ``cart``/``purchase`` objectives' shares of a neighbour's viewed item and
of its item of the other type (:func:`sessionrec.models.knn_objective.objective_shares`),
searched for those objectives only. Each range holds the default (0.1, 0.5)."""

RULE_MODELS = ("markov", "sr")
"""The rule models, whose rules weigh their source click's type."""


def type_weight_space(
    model_name: str, event_types: Sequence[str], objective: object = "click"
) -> dict[str, Space]:
    """The event-type hyperparameters of ``model_name`` that ``sessionrec tune`` adds to its
    space when the data's ``event_types`` include carts or purchases (else nothing):
    :data:`TYPE_WEIGHTS` for the session-kNN and rule models, and for a session-kNN model
    with a ``cart``/``purchase`` objective also :data:`OBJECTIVE_SHARES_SPACE`."""
    if not {"cart", "purchase"} & set(event_types):
        return {}
    if model_name in _KNN_SPACES:
        shares = OBJECTIVE_SHARES_SPACE if objective in ("cart", "purchase") else {}
        return {**TYPE_WEIGHTS, **shares}
    if model_name in RULE_MODELS:
        return dict(TYPE_WEIGHTS)
    return {}
