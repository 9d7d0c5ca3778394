"""The models that stand on their own (built on no other model), by registry name.

Composite models (the repeat layer of :mod:`sessionrec.models.repeat`) build their members by
name from this table, and :mod:`sessionrec.models.registry` adds the composites to it: the
table lives apart from the registry so that a composite can create its members without
importing the registry that imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sessionrec._errors import ConfigError
from sessionrec.models.base import Recommender
from sessionrec.models.itemknn import ItemKNN
from sessionrec.models.knn import SKNN, STAN, VMISKNN, VSKNN, VSTAN
from sessionrec.models.neural.gru4rec import GRU4Rec
from sessionrec.models.neural.narm import NARM
from sessionrec.models.neural.sasrec import SASRec
from sessionrec.models.neural.srgnn import SRGNN
from sessionrec.models.neural.stamp import STAMP
from sessionrec.models.popular import Pop, SessionPop
from sessionrec.models.rules import Markov, SequentialRules

STANDALONE_MODELS: dict[str, type[Recommender]] = {
    "pop": Pop,
    "spop": SessionPop,
    "markov": Markov,
    "sr": SequentialRules,
    "itemknn": ItemKNN,
    "sknn": SKNN,
    "vsknn": VSKNN,
    "stan": STAN,
    "vstan": VSTAN,
    "vmisknn": VMISKNN,
    "gru4rec": GRU4Rec,  # needs the torch extra to fit or load; imports without it
    "narm": NARM,  # torch extra, like gru4rec
    "stamp": STAMP,  # torch extra
    "srgnn": SRGNN,  # torch extra
    "sasrec": SASRec,  # needs the torch extra to fit or load; imports without it
}


def create_from(
    models: Mapping[str, type[Recommender]],
    name: str,
    params: dict[str, Any] | None = None,
    role: str = "base model",
) -> Recommender:
    """A model of ``models`` by registry name (a composite's base or member); unknown names
    and hyperparameters are refused with the ``role`` named."""
    try:
        cls = models[name]
    except KeyError:
        raise ConfigError(
            f"unknown {role} {name!r}; available: {', '.join(sorted(models))}"
        ) from None
    try:
        return cls(**dict(params or {}))
    except TypeError as exc:
        raise ConfigError(f"{role} {name!r}: {exc}") from None


def create_standalone(name: str, params: dict[str, Any] | None = None) -> Recommender:
    """A standalone model by registry name (a layer's base)."""
    return create_from(STANDALONE_MODELS, name, params)
