"""The benchmark protocol's last step, shared by the neural benchmark scripts: refit.

Hyperparameters and the number of epochs are chosen on the validation split only (the
chronologically last 10% of ``train_sessions.txt``). The chosen model is then trained again,
from its seed, on the whole training file for the chosen number of epochs, with no
validation, and that model is tested. The GRU4Rec protocol does the same (tune on
``train_tr`` -> ``train_valid``, test the model trained on ``train_full``): the most recent
10% of the sessions, the ones nearest the test period, are otherwise never trained on. The
test file still chooses nothing.

``--refit`` adds the refit to a validation run (its selected epoch count);
``--refit-epochs N`` skips the validation run and refits for ``N`` epochs, the count an
earlier validation run chose (cite that run next to the figures). ``sessionrec train
--refit`` does the same for a model with a ``valid_fraction``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sessionrec.data.sessions import SessionData
from sessionrec.evaluation.protocol import evaluate
from sessionrec.models.base import Recommender
from sessionrec.models.neural.common import refit_params


def add_refit_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--refit",
        action="store_true",
        help="after selection on validation, train on the whole training file for the "
        "selected epochs and test that model too",
    )
    group.add_argument(
        "--refit-epochs",
        type=int,
        default=0,
        metavar="N",
        help="no validation run: train on the whole training file for N epochs (N chosen "
        "on validation by an earlier run) and test that model",
    )


def refit(
    create: Callable[[dict[str, Any]], Recommender],
    params: dict[str, Any],
    full: SessionData,
    test: SessionData,
    epochs: int,
    cutoffs: Sequence[int] = (20,),
) -> dict[str, Any]:
    """Train ``create(params)`` on ``full`` for ``epochs`` epochs and test it (benchmark
    protocol); the figures as a JSON-ready dict."""
    model = create(refit_params(params, epochs))
    started = time.perf_counter()
    model.fit(full)
    fit_seconds = time.perf_counter() - started
    result = evaluate(model, test, protocol="benchmark", cutoffs=tuple(cutoffs))
    metrics = result.metrics()
    seconds = np.asarray(getattr(model, "epoch_seconds_", []), dtype=np.float64)
    return {
        "params": model.get_params(),
        "epochs": int(epochs),
        "train_sessions": full.n_sessions,
        "seconds_per_epoch": [round(float(s), 1) for s in seconds],
        "fit_seconds": round(fit_seconds, 1),
        "test_cases": result.n_cases,
        **{key: round(float(metrics[key]), 2) for k in cutoffs for key in (f"hr@{k}", f"mrr@{k}")},
    }
