"""Hyperparameter search with Optuna, selecting on a validation split of the training data.

The split follows the benchmark rules of ``shared/data/README.md``: the chronologically last
``valid_fraction`` of the training sessions is the validation set, the models are fitted on
the first part, and every validation session gives the cases ``s[:i] -> s[i]`` (the
benchmark protocol) ranked against the whole vocabulary with pessimistic ties. The test file
of a benchmark folder is never opened.

The model's default hyperparameters are always evaluated first (as trial 0, or on their own
when the search space does not contain them), so the parameters written are at least as good
as the defaults on validation. The best parameters go to a JSON
file that ``sessionrec train/evaluate --params-file`` read::

    {"model": "vstan", "params": {...}, "metric": "mrr@20", "value": 18.9, "trials": 60,
     "default_value": 18.1, "valid_fraction": 0.1, "seed": 0}

Optuna is an optional dependency: ``pip install 'sessionrec[tune]'``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError
from sessionrec.data.formats import read_sessions_txt
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation import metrics
from sessionrec.evaluation.protocol import items_for, make_cases, prefix_batch, score_batch_size
from sessionrec.models.base import Recommender
from sessionrec.models.registry import create_model, model_params

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("sessionrec.tuning")

DEFAULT_TRIALS = 50
"""Trials when neither ``trials`` nor ``time_budget`` is given."""


# ------------------------------------------------------------------------- search spaces
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

SEARCH_SPACES: dict[str, dict[str, Space]] = {
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
"""Search space per model: hyperparameter -> range. ``sample_size`` is raised to ``k`` when a
trial draws it smaller (a model needs at least ``k`` candidates). The ranges cover the grids
session-rec tunes these models on (``conf/save/diginetica/.../opt``), widened: ``k`` and
``sample_size`` log-uniform over 50..2,000 and 200..10,000; decay constants (clicks)
log-uniform over 0.05..50; the neighbour-recency constant λ_snh over 100..10^7 training
sessions (about 0.1 to 10,000 days on Diginetica)."""


# ---------------------------------------------------------------------------- evaluation
def split_validation(train: SessionData, valid_fraction: float) -> tuple[SessionData, SessionData]:
    """(first part, chronologically last ``valid_fraction`` of the sessions): the one
    validation split of the product, :func:`~sessionrec.data.split.last_fraction_split`, with
    an error that names the tuning option."""
    try:
        return last_fraction_split(train, valid_fraction)
    except (ConfigError, DataError) as exc:
        raise ConfigError(
            f"valid_fraction={valid_fraction!r} must leave both parts non-empty "
            f"({train.n_sessions} training sessions): {exc}"
        ) from None


def parse_metric(metric: str) -> tuple[Callable[[np.ndarray, int], float], int]:
    """``"mrr@20"`` -> (metric function of ranks, cutoff)."""
    functions = {"mrr": metrics.mrr, "hr": metrics.hit_rate, "ndcg": metrics.ndcg}
    name, sep, cutoff = metric.partition("@")
    if not sep or name not in functions or not cutoff.isdigit() or int(cutoff) < 1:
        raise ConfigError(f"metric must look like mrr@20, hr@20 or ndcg@20, got {metric!r}")
    return functions[name], int(cutoff)


def validation_ranks(
    model: Recommender, valid: SessionData, batch_size: int | None = None
) -> np.ndarray:
    """Pessimistic target ranks of every ``s[:i] -> s[i]`` case of ``valid``.

    The cases, batches and ranks of :func:`sessionrec.evaluation.protocol.evaluate`, through
    :meth:`Recommender.target_ranks`: the session-kNN family ranks there without dense score
    rows, and every model ranks exactly as the evaluation does.
    """
    cases = make_cases(valid, "next")
    items = items_for(model, valid)
    targets = items[cases.starts + cases.lengths]
    if batch_size is None:
        batch_size = score_batch_size(model.n_items)
    ranks = np.empty(len(cases), dtype=np.float64)
    for lo in range(0, len(cases), batch_size):
        hi = min(lo + batch_size, len(cases))
        batch = prefix_batch(items, valid.times, cases.starts[lo:hi], cases.lengths[lo:hi])
        ranks[lo:hi] = model.target_ranks(batch, targets[lo:hi])
    return ranks


# -------------------------------------------------------------------------------- tuning
def _load_train(folder_or_train: str | Path | SessionData) -> SessionData:
    """Training sessions only: from a folder's ``train_sessions.txt``, never its test file."""
    if isinstance(folder_or_train, SessionData):
        return folder_or_train
    path = Path(folder_or_train)
    train_file = path / "train_sessions.txt" if path.is_dir() else path
    if not train_file.is_file():
        raise DataError(f"{path}: expected a benchmark folder with train_sessions.txt")
    return read_sessions_txt(train_file)


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "tuning needs Optuna, an optional dependency: pip install 'sessionrec[tune]'"
        ) from None
    return optuna


def _write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def tune(
    folder_or_train: str | Path | SessionData,
    model_name: str,
    trials: int | None = None,
    time_budget: float | None = None,
    valid_fraction: float = 0.1,
    metric: str = "mrr@20",
    seed: int = 0,
    output: str | Path | None = None,
    search_space: Mapping[str, Space] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Search ``model_name``'s hyperparameters on the validation split; return the best.

    Args:
        folder_or_train: a benchmark folder (only its ``train_sessions.txt`` is read), a
            sessions-txt file, or :class:`SessionData` of training sessions.
        model_name: a registered model with an entry in :data:`SEARCH_SPACES` (or pass
            ``search_space``).
        trials: number of trials; ``time_budget``: seconds after which no new trial starts.
            Either or both; neither means :data:`DEFAULT_TRIALS` trials.
        valid_fraction: share of the (chronologically last) training sessions to validate on.
        metric: ``mrr@K``, ``hr@K`` or ``ndcg@K`` on the validation cases, maximised.
        seed: seed of Optuna's TPE sampler.
        output: JSON file to write the result to (atomically), or None.
        search_space: replaces the model's entry of :data:`SEARCH_SPACES`.
        fixed_params: hyperparameters held fixed (not searched), e.g. ``{"k": 100}``.

    Returns:
        ``{"model", "params", "metric", "value", "trials", "default_value",
        "valid_fraction", "seed"}``; ``params`` are complete (defaults filled in) and
        ``value`` is in percent like every reported metric.
    """
    optuna_ = _import_optuna()
    score_ranks, cutoff = parse_metric(metric)
    defaults = model_params(model_name)
    space = dict(search_space if search_space is not None else SEARCH_SPACES.get(model_name, {}))
    if not space:
        raise ConfigError(f"no search space for model {model_name!r}; pass search_space")
    fixed = dict(fixed_params or {})
    unknown = sorted((set(space) | set(fixed)) - set(defaults))
    if unknown:
        raise ConfigError(f"model {model_name!r} has no hyperparameter {', '.join(unknown)}")
    for key in fixed:
        space.pop(key, None)
    if trials is not None and (isinstance(trials, bool) or trials < 1):
        raise ConfigError(f"trials must be a positive integer, got {trials!r}")
    if time_budget is not None and not time_budget > 0:
        raise ConfigError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    if trials is None and time_budget is None:
        trials = DEFAULT_TRIALS

    fit_part, valid = split_validation(_load_train(folder_or_train), valid_fraction)
    log.info(
        "tuning %s on %d sessions, validating %s on %d sessions (%s)",
        model_name,
        fit_part.n_sessions,
        metric,
        valid.n_sessions,
        f"{valid_fraction:.0%}",
    )

    def validate(params: dict[str, Any], label: str) -> float:
        started = time.perf_counter()
        model = create_model(model_name, params).fit(fit_part)
        value = 100.0 * score_ranks(validation_ranks(model, valid), cutoff)
        elapsed = time.perf_counter() - started
        log.info("%s: %s=%.3f in %.1fs with %s", label, metric, value, elapsed, params)
        return value

    def objective(trial: optuna.Trial) -> float:
        params = {**defaults, **fixed}
        params.update({key: rng.suggest(trial, key) for key, rng in space.items()})
        if "k" in params and "sample_size" in params:
            params["sample_size"] = max(params["sample_size"], params["k"])
        trial.set_user_attr("params", params)
        return validate(params, f"trial {trial.number}")

    optuna_.logging.set_verbosity(optuna_.logging.WARNING)
    sampler = optuna_.samplers.TPESampler(seed=seed)
    study = optuna_.create_study(direction="maximize", sampler=sampler)
    baseline = {**defaults, **fixed}
    # The defaults run first, as trial 0 when the space admits them, else on their own.
    in_space = all(rng.contains(baseline[key]) for key, rng in space.items())
    if in_space:
        study.enqueue_trial({key: baseline[key] for key in space})
    study.optimize(objective, n_trials=trials, timeout=time_budget)
    done = [t for t in study.trials if t.state == optuna_.trial.TrialState.COMPLETE]
    candidates = [(float(t.value), t.user_attrs["params"]) for t in done if t.value is not None]
    if in_space and done and done[0].number == 0:
        default_value: float | None = candidates[0][0]
    else:
        default_value = validate(baseline, "defaults")
        candidates.insert(0, (default_value, baseline))
    if not done:
        raise ConfigError("no tuning trial completed: raise trials or time_budget")
    best_value, best_params = max(candidates, key=lambda c: c[0])  # the first of equals
    result: dict[str, Any] = {
        "model": model_name,
        "params": best_params,
        "metric": metric,
        "value": best_value,
        "trials": len(done),
        "default_value": default_value,
        "valid_fraction": valid_fraction,
        "seed": seed,
    }
    if output is not None:
        _write_json_atomic(Path(output), result)
    return result
