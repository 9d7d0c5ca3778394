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

Every standalone model with hyperparameters has a search space (:mod:`sessionrec.search_spaces`);
:func:`tuning_plan` says how each model is tuned, what ``repeat`` and ``ensemble`` mean, and
refuses a model with nothing to search. A neural model's trial trains for at most
``trial_seconds``, validating every epoch on the same validation split, and the file it
writes trains the chosen setting for the epochs validation chose.

Optuna is an optional dependency: ``pip install 'sessionrec[tune]'``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError
from sessionrec.data.formats import read_sessions_txt
from sessionrec.data.prepare import REPORT, read_prepared_training
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import items_for, make_cases, prefix_batch, score_batch_size
from sessionrec.models.base import Recommender
from sessionrec.models.neural.common import SELECTION_METRICS, refit_params
from sessionrec.models.registry import MODELS, create_model, model_params
from sessionrec.models.standalone import STANDALONE_MODELS
from sessionrec.search_spaces import (
    COMPOSITE_TUNING,
    SEARCH_SPACES,
    Choice,
    FloatRange,
    IntRange,
    Space,
    type_weight_space,
)
from sessionrec.tuning_metrics import (
    VALID_CUT_SEED,
    default_metric,
    parse_metric,
    validation_metric,
)

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("sessionrec.tuning")

__all__ = [
    "COMPOSITE_TUNING",
    "DEFAULT_TRIALS",
    "DEFAULT_TRIAL_SECONDS",
    "SEARCH_SPACES",
    "Choice",
    "FloatRange",
    "IntRange",
    "Space",
    "TuningPlan",
    "parse_metric",
    "split_validation",
    "tunable_models",
    "tune",
    "tuning_plan",
    "validation_ranks",
]

DEFAULT_TRIALS = 50
"""Trials when neither ``trials`` nor ``time_budget`` is given."""
DEFAULT_TRIAL_SECONDS = 300.0
"""Training time limit of one neural-model trial (``--trial-seconds``)."""


# ---------------------------------------------------------------------------- evaluation
def split_validation(train: SessionData, valid_fraction: float) -> tuple[SessionData, SessionData]:
    """(first part, chronologically last ``valid_fraction`` of the sessions): the one
    validation split of the product, :func:`~sessionrec.data.split.last_fraction_split`, with
    an error that names the command-line option (``--valid-fraction``)."""
    try:
        return last_fraction_split(train, valid_fraction)
    except (ConfigError, DataError) as exc:
        raise ConfigError(
            f"--valid-fraction {valid_fraction!r} must leave both parts non-empty "
            f"({train.n_sessions} training sessions): {exc}"
        ) from None


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
        batch = prefix_batch(
            items,
            valid.times,
            cases.starts[lo:hi],
            cases.lengths[lo:hi],
            valid.types,
            valid.event_types,
        )
        ranks[lo:hi] = model.target_ranks(batch, targets[lo:hi])
    return ranks


# -------------------------------------------------------------------------------- tuning
def _load_train(folder_or_train: str | Path | SessionData) -> SessionData:
    """Training sessions only, never the test file: a prepared folder's (``sessionrec
    prepare``: with event types) or a benchmark folder's ``train_sessions.txt``."""
    if isinstance(folder_or_train, SessionData):
        return folder_or_train
    path = Path(folder_or_train)
    if (path / REPORT).is_file():
        return read_prepared_training(path)
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


@dataclass(frozen=True)
class TuningPlan:
    """What one model's search samples and how a trial's draw becomes its hyperparameters.

    ``space``: the ranges searched; ``baseline``: the hyperparameters of the defaults run;
    ``nested``: the hyperparameter the draws go into (``base_params`` of the repeat layer),
    or None when they are the model's own; ``neural``: trials are time-limited and keep the
    epoch validation chose.
    """

    model: str
    space: dict[str, Space]
    baseline: dict[str, Any]
    nested: str | None = None
    neural: bool = False

    def params(self, drawn: Mapping[str, Any]) -> dict[str, Any]:
        """The complete hyperparameters of a trial that drew ``drawn``."""
        params = dict(self.baseline)
        target = params
        if self.nested is not None:
            target = params[self.nested] = dict(params[self.nested])
        target.update(drawn)
        if "k" in target and "sample_size" in target:
            target["sample_size"] = max(target["sample_size"], target["k"])
        return params

    def defaults_in_space(self) -> dict[str, Any] | None:
        """The baseline's values of the searched hyperparameters when the space holds them."""
        values = self.baseline if self.nested is None else self.baseline[self.nested]
        if all(rng.contains(values[key]) for key, rng in self.space.items()):
            return {key: values[key] for key in self.space}
        return None


def tuning_plan(
    model_name: str,
    search_space: Mapping[str, Space] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    trial_seconds: float = DEFAULT_TRIAL_SECONDS,
    metric: str = "mrr@20",
    event_types: Sequence[str] = (),
) -> TuningPlan:
    """How ``model_name`` is tuned, or a :class:`ConfigError` saying why it cannot be.

    A model without hyperparameters (``pop``, ``spop``, ``markov``) is refused: there is
    nothing to search. ``repeat`` searches its base's space, every trial fitting the whole
    layer (its base twice: see :mod:`sessionrec.models.repeat`), so the base's parameters
    are chosen for the layer they serve; a neural base is refused (tune it alone and pass
    its parameters as ``base_params``). ``ensemble`` is refused: it learns its member
    weights on validation itself, and its members are tuned one by one.

    On data whose ``event_types`` include carts or purchases, the space (when not given)
    also holds the model's event-type hyperparameters (:func:`type_weight_space`); the
    rule models (``markov``) have nothing else to search.
    """
    defaults = model_params(model_name)
    fixed = dict(fixed_params or {})
    unknown = sorted(set(fixed) - set(defaults))
    if unknown:
        raise ConfigError(f"model {model_name!r} has no hyperparameter {', '.join(unknown)}")
    if not defaults:
        raise ConfigError(
            f"model {model_name!r} has no hyperparameter to tune: train or evaluate it as it is"
        )
    if model_name == "ensemble":
        raise ConfigError(
            "the ensemble is not tuned as a whole: it learns its member weights on validation "
            "itself; tune each member (sessionrec tune --model NAME) and pass their parameters "
            "with --param member_params='{\"LABEL\": {...}}'"
        )
    if model_name == "repeat":
        return _repeat_plan(defaults, fixed, search_space, event_types)
    space = dict(search_space if search_space is not None else SEARCH_SPACES.get(model_name, {}))
    if search_space is None:
        objective = fixed.get("objective", defaults.get("objective", "click"))
        space.update(type_weight_space(model_name, event_types, objective))
    if not space and "type_weight_cart" in defaults:
        raise ConfigError(
            f"model {model_name!r} has no hyperparameter to tune on data without carts or "
            "purchases (its type weights need event types): train or evaluate it as it is"
        )
    if not space:
        raise ConfigError(f"no search space for model {model_name!r}")
    _check_space(model_name, space, defaults)
    baseline = {**defaults, **fixed}
    neural = "max_train_seconds" in defaults
    if neural:
        if not (isinstance(trial_seconds, (int, float)) and trial_seconds > 0):
            raise ConfigError(
                f"--trial-seconds must be a positive number of seconds, got {trial_seconds!r}"
            )
        # The trial's time limit, and epochs selected on the tuning metric when it can be.
        limits: dict[str, Any] = {"max_train_seconds": float(trial_seconds)}
        if metric in SELECTION_METRICS:
            limits["selection_metric"] = metric
        baseline = {**defaults, **limits, **fixed}
    for key in fixed:
        space.pop(key, None)
    return TuningPlan(model_name, space, baseline, neural=neural)


def _repeat_plan(
    defaults: dict[str, Any],
    fixed: dict[str, Any],
    search_space: Mapping[str, Space] | None,
    event_types: Sequence[str] = (),
) -> TuningPlan:
    base = fixed.get("base", defaults["base"])
    if base not in STANDALONE_MODELS:
        raise ConfigError(
            f"unknown base model {base!r} of the repeat layer; available: "
            f"{', '.join(sorted(STANDALONE_MODELS))}"
        )
    base_defaults = model_params(base)
    if "max_train_seconds" in base_defaults:
        raise ConfigError(
            f"tuning the repeat layer over a neural base ({base}) is not offered: tune the base "
            f"alone (sessionrec tune --model {base}) and pass its parameters with "
            "--param base_params=JSON"
        )
    space = dict(search_space if search_space is not None else SEARCH_SPACES.get(base, {}))
    base_fixed = dict(fixed.get("base_params") or {})
    if search_space is None:
        objective = base_fixed.get("objective", base_defaults.get("objective", "click"))
        space.update(type_weight_space(base, event_types, objective))
    if not space:
        raise ConfigError(
            f"the repeat layer's base {base!r} has no hyperparameter to tune: train or "
            "evaluate the layer as it is"
        )
    _check_space(base, space, base_defaults)
    unknown = sorted(set(base_fixed) - set(base_defaults))
    if unknown:
        raise ConfigError(f"base model {base!r} has no hyperparameter {', '.join(unknown)}")
    for key in base_fixed:
        space.pop(key, None)
    baseline = {**defaults, **fixed, "base": base, "base_params": {**base_defaults, **base_fixed}}
    return TuningPlan("repeat", space, baseline, nested="base_params")


def _check_space(model_name: str, space: Mapping[str, Space], defaults: Mapping[str, Any]) -> None:
    unknown = sorted(set(space) - set(defaults))
    if unknown:
        raise ConfigError(
            f"search space names no hyperparameter of {model_name!r}: {', '.join(unknown)}"
        )


def tunable_models() -> list[str]:
    """The registered models ``tune`` searches, in the registry's order."""
    return [name for name in MODELS if name in SEARCH_SPACES or name == "repeat"]


def tune(
    folder_or_train: str | Path | SessionData,
    model_name: str,
    trials: int | None = None,
    time_budget: float | None = None,
    valid_fraction: float = 0.1,
    metric: str | None = None,
    seed: int = 0,
    output: str | Path | None = None,
    search_space: Mapping[str, Space] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    trial_seconds: float = DEFAULT_TRIAL_SECONDS,
) -> dict[str, Any]:
    """Search ``model_name``'s hyperparameters on the validation split; return the best.

    Errors name the command-line options (``--trials``, ``--time-budget``, ...) that the
    arguments stand for: they reach ``sessionrec tune`` users as they are.

    Args:
        folder_or_train: a benchmark folder (only its ``train_sessions.txt`` is read), a
            prepared folder (``sessionrec prepare``; only its training sessions, with their
            event types), a sessions-txt file, or :class:`SessionData` of training sessions.
        model_name: a registered model with an entry in :data:`SEARCH_SPACES`, or
            ``repeat`` (see :func:`tuning_plan`), or any model when ``search_space`` is given.
        trials: number of trials; ``time_budget``: seconds after which no new trial starts.
            Either or both; neither means :data:`DEFAULT_TRIALS` trials.
        valid_fraction: share of the (chronologically last) training sessions to validate on.
        metric: ``mrr@K``, ``hr@K`` or ``ndcg@K`` on the validation cases, or the OTTO
            protocol's ``orders@K``, ``carts@K`` or ``otto@K`` on the validation sessions
            (:mod:`sessionrec.tuning_metrics`), maximised. None: ``carts@20`` /
            ``orders@20`` for a ``cart`` / ``purchase`` objective, else ``mrr@20``.
        seed: seed of Optuna's TPE sampler.
        output: JSON file to write the result to (atomically), or None.
        search_space: replaces the model's entry of :data:`SEARCH_SPACES`.
        fixed_params: hyperparameters held fixed (not searched), e.g. ``{"k": 100}``.
        trial_seconds: neural models: each trial trains for at most this long
            (``max_train_seconds``), validating every epoch on the validation split and
            keeping the best epoch.

    Returns:
        ``{"model", "params", "metric", "value", "trials", "default_value",
        "valid_fraction", "seed"}``; ``params`` are complete (defaults filled in) and
        ``value`` is in percent like every reported metric; with an OTTO metric also
        ``valid_cut_seed``. For a neural model also
        ``best_epoch`` and ``trial_seconds``, and ``params`` train that many epochs on all
        the sessions (no validation split, no time limit: what ``train --refit`` does), so
        ``train --params-file`` trains the chosen setting directly.
    """
    optuna_ = _import_optuna()
    if metric is None:
        metric = default_metric(fixed_params or {})
    measure = validation_metric(metric)
    score_ranks, cutoff = (None, measure.cutoff) if measure.otto else parse_metric(metric)
    if trials is not None and (isinstance(trials, bool) or trials < 1):
        raise ConfigError(f"--trials must be a positive integer, got {trials!r}")
    if time_budget is not None and not time_budget > 0:
        raise ConfigError(
            f"--time-budget must be a positive number of seconds, got {time_budget!r}"
        )
    if trials is None and time_budget is None:
        trials = DEFAULT_TRIALS

    fit_part, valid = split_validation(_load_train(folder_or_train), valid_fraction)
    measure.check_data(valid)
    plan = tuning_plan(
        model_name, search_space, fixed_params, trial_seconds, metric, fit_part.event_types
    )
    log.info(
        "tuning %s on %d sessions, validating %s on %d sessions (%s)",
        model_name,
        fit_part.n_sessions,
        metric,
        valid.n_sessions,
        f"{valid_fraction:.0%}",
    )

    def validate(params: dict[str, Any], label: str) -> tuple[float, int | None]:
        """The metric of ``params`` on validation, and the epoch a neural model kept."""
        started = time.perf_counter()
        model = create_model(model_name, params)
        # A neural model selects its epoch on the tuning's validation split; the others
        # never see it (the repeat layer would learn its mixture on it).
        model.fit(fit_part, valid if plan.neural else None)
        if score_ranks is None:
            value = measure.otto_value(model, valid)
        else:
            value = 100.0 * score_ranks(validation_ranks(model, valid), cutoff)
        history = model.training_history() if plan.neural else None
        best_epoch = int(history.best_epoch) if history is not None else None
        elapsed = time.perf_counter() - started
        log.info("%s: %s=%.3f in %.1fs with %s", label, metric, value, elapsed, params)
        return value, best_epoch

    def objective(trial: optuna.Trial) -> float:
        params = plan.params({key: rng.suggest(trial, key) for key, rng in plan.space.items()})
        trial.set_user_attr("params", params)
        value, best_epoch = validate(params, f"trial {trial.number}")
        trial.set_user_attr("best_epoch", best_epoch)
        return value

    optuna_.logging.set_verbosity(optuna_.logging.WARNING)
    sampler = optuna_.samplers.TPESampler(seed=seed)
    study = optuna_.create_study(direction="maximize", sampler=sampler)
    # The defaults run first, as trial 0 when the space admits them, else on their own.
    in_space = plan.defaults_in_space()
    if in_space is not None:
        study.enqueue_trial(in_space)
    study.optimize(objective, n_trials=trials, timeout=time_budget)
    done = [t for t in study.trials if t.state == optuna_.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError("no tuning trial completed: raise --trials or --time-budget")
    candidates = [
        (float(t.value), t.user_attrs["params"], t.user_attrs["best_epoch"])
        for t in done
        if t.value is not None
    ]
    if in_space is not None and done[0].number == 0:
        default_value: float = candidates[0][0]
    else:
        default_value, epoch = validate(plan.baseline, "defaults")
        candidates.insert(0, (default_value, plan.baseline, epoch))
    best_value, best_params, best_epoch = max(candidates, key=lambda c: c[0])  # first of equals
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
    if measure.otto:  # the validation sessions' cut points, for the record
        result["valid_cut_seed"] = VALID_CUT_SEED
    if plan.neural:
        result["params"] = refit_params(best_params, best_epoch)
        result["best_epoch"] = best_epoch
        result["trial_seconds"] = float(trial_seconds)
    if output is not None:
        _write_json_atomic(Path(output), result)
    return result
