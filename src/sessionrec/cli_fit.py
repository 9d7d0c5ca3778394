"""How a command turns its arguments into a fitted model: hyperparameters from
``--params-file`` and ``--param``, the training sessions (typed with ``--objective``), a fit
(``--refit``), a fine-tune (``--init-from``), and the ``torchrun`` world size."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from sessionrec._errors import ConfigError
from sessionrec.models.registry import load_model

log = logging.getLogger("sessionrec")


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Hyperparameters from ``--params-file`` (JSON) overridden by ``--param key=value``."""
    from sessionrec.models.registry import parse_params

    params: dict[str, Any] = {}
    if getattr(args, "params_file", None):
        path = Path(args.params_file)
        try:
            loaded = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read parameters: {exc}") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("params"), dict):
            loaded = loaded["params"]  # the file `sessionrec tune` writes
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a JSON object of hyperparameters")
        params.update(loaded)
    params.update(parse_params(args.model, args.param))
    if getattr(args, "objective", None):
        params["objective"] = args.objective
    return params


def typed_train(args: argparse.Namespace, train: Any) -> Any:
    """With ``--objective``: the training sessions with their event types when the folder is
    a prepared dataset folder (Parquet), else ``train`` as read (a cart or purchase
    objective then refuses it at fit)."""
    from sessionrec.evaluation.otto import typed_folder_parts

    if not getattr(args, "objective", None):
        return train
    typed = typed_folder_parts(args.benchmark)
    return train if typed is None else typed[0]


def fit_model(args: argparse.Namespace, train: Any) -> tuple[Any, float]:
    from sessionrec.models.registry import create_model

    model = create_model(args.model, params_from_args(args))
    refit = getattr(args, "refit", False)
    if refit and not model.get_params().get("valid_fraction"):
        raise ConfigError(
            "--refit trains again for the epochs a validation split chose: it needs a neural "
            "model and --param valid_fraction=F (e.g. 0.1)"
        )
    log.info("fitting %r on %s", model, train)
    started = time.perf_counter()
    model.fit(train)
    if refit:
        from sessionrec.models.neural.common import refit_params

        # Every model with a valid_fraction (the neural ones) records the epoch it chose.
        history = model.training_history()
        if history is None:
            raise ConfigError(f"--refit needs a model trained in epochs; {args.model} is not")
        epochs = history.best_epoch
        log.info("validation chose %d epoch(s): training again on all the sessions", epochs)
        model = create_model(args.model, refit_params(model.get_params(), epochs))
        model.fit(train)
    return model, time.perf_counter() - started


def launched_world_size() -> int:
    """How many processes ``torchrun`` started for this command (1 without torchrun)."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE must be an integer, got {text!r}") from None


def fine_tune_model(args: argparse.Namespace, train: Any) -> tuple[Any, float]:
    """``train --init-from``: the folder's model fine-tuned on ``train`` (docs/fine-tuning.md)."""
    from sessionrec.models.neural.common import NeuralRecommender

    if args.refit:
        raise ConfigError("--refit trains a new model again: it does not go with --init-from")
    changes, source = params_from_args(args), load_model(args.init_from)
    if source.name != args.model:
        message = f"--init-from {args.init_from} holds a {source.name!r} model, not {args.model!r}"
        raise ConfigError(message)
    if not isinstance(source, NeuralRecommender):
        raise ConfigError(f"{args.model!r} cannot be fine-tuned: only the neural models can")
    started = time.perf_counter()
    model = source.fine_tune(train, **changes)
    return model, time.perf_counter() - started
