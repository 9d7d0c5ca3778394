"""Fine-tuning a trained neural model on newer sessions, new items included.

A shop adds products every day and a full retrain is slow, so
:meth:`~sessionrec.models.neural.common.NeuralRecommender.fine_tune` starts a new model from
a trained one's weights and trains it on the newest sessions only. This module holds what
that needs besides the training skeleton:

- :func:`fine_tune_params`: the new model's hyperparameters, refusing any change to the
  architecture (the weights would not fit it);
- :class:`WarmStart`: what a fine-tune hands to the training skeleton (the source model,
  its training clicks per item on the new vocabulary, the epochs to run);
- :func:`copy_weights`: the source's weights into a freshly initialised network of the
  extended vocabulary. Every tensor keeps its shape except the item tables, which gained
  rows at the end for the new items; those rows keep the fresh initialisation;

Importing this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._errors import ConfigError, ModelError
from sessionrec.models.params import check_int

if TYPE_CHECKING:
    import torch

    from sessionrec.models.neural.common import NeuralRecommender


def fine_tune_params(model: NeuralRecommender, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a model fine-tuned from ``model`` with ``changes``.

    Only the training hyperparameters (``type(model).fine_tunable``) may change; any other
    must keep ``model``'s value, since the weights are built for it. ``n_epochs=0`` (no
    training: the vocabulary and counts grow, the new items' rows stay as initialised)
    keeps ``model``'s ``n_epochs``, a hyperparameter that must be positive.
    """
    params = model.get_params()
    unknown = sorted(set(changes) - set(params))
    if unknown:
        raise ConfigError(f"{model.name} has no hyperparameter(s) {unknown}")
    changed = sorted(
        key
        for key, value in changes.items()
        if key not in type(model).fine_tunable and value != params[key]
    )
    if changed:
        differences = ", ".join(f"{k}={changes[k]!r} (the model's: {params[k]!r})" for k in changed)
        raise ConfigError(
            f"fine-tuning keeps the architecture of the {model.name} model it starts from: "
            f"{differences}; only these may change: {', '.join(sorted(type(model).fine_tunable))}"
            " (train a new model from scratch to change the others)"
        )
    epochs = changes.get("n_epochs", model.n_epochs)
    check_int("n_epochs", epochs, minimum=0)
    new = {**params, **changes}
    if epochs == 0:
        new["n_epochs"] = model.n_epochs
    return new


@dataclass(frozen=True)
class WarmStart:
    """What :meth:`NeuralRecommender.fine_tune` hands to the training skeleton.

    ``source``: the trained model (read only: it may be serving). ``counts``: its training
    clicks per item on the extended vocabulary (zero for the new items), added to the new
    training data's. ``n_epochs``: the epochs to train (0: none).
    """

    source: NeuralRecommender
    counts: np.ndarray
    n_epochs: int


def copy_weights(
    model: str,
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    n_new_items: int,
) -> None:
    """Copy ``source``'s weights into ``target``'s tensors (same names), in place.

    A tensor of the same shape is copied whole; an item table (a tensor whose first
    dimension grew by ``n_new_items``) gets the source's rows first, the rows after them
    (the new items') keep their values. Anything else means the two were not built with
    the same architecture.
    """
    import torch

    if set(source) != set(target):
        raise ModelError(
            f"{model}: cannot start from the trained weights: their tensors "
            f"{sorted(set(source) ^ set(target))} do not match"
        )
    with torch.no_grad():
        for name, tensor in target.items():
            old = source[name]
            if old.shape == tensor.shape:
                tensor.copy_(old)
            elif (
                old.shape[1:] == tensor.shape[1:] and tensor.shape[0] == old.shape[0] + n_new_items
            ):
                tensor[: old.shape[0]].copy_(old)
            else:
                raise ModelError(
                    f"{model}: cannot start from the trained weights: {name!r} has shape "
                    f"{tuple(old.shape)}, the network of the extended vocabulary "
                    f"{tuple(tensor.shape)}"
                )
