"""The stages of ``sessionrec auto``, cheapest first: each adds its candidates to the run
while the budget lasts."""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any

import numpy as np

from sessionrec.auto.board import SHORT_PREFIXES, AutoRun, Candidate, jsonable
from sessionrec.data.sessions import SessionData
from sessionrec.models.base import Recommender
from sessionrec.models.ensemble import Ensemble
from sessionrec.models.registry import create_model, model_params
from sessionrec.models.repeat import RepeatAware
from sessionrec.tuning import SEARCH_SPACES

log = logging.getLogger("sessionrec.auto")

BASELINES = ("pop", "spop", "markov", "sr")
KNN_FAMILY = ("vsknn", "stan", "vstan", "vmisknn")
TUNE_SHARE = 0.6
"""Share of the budget left after the baselines that the kNN search may use."""
NEURAL = ("gru4rec", "sasrec")
NEURAL_SHARE = 0.5
"""Share of the budget left after the kNN search that the neural models may use; each fit
gets half of its part, the other half being kept for its refit on all the sessions."""
PROBE_FRACTION = 50
"""The epoch time of a neural model is estimated on this fraction (1/50) of the sessions."""
PROBE_SESSIONS = 1000
"""... and on at least this many sessions, so that fixed costs are not scaled up much."""
MIN_NEURAL_SECONDS = 30.0
"""A neural model is not started with less than this for its training."""
EXTRA_SHARE = 0.6
"""Share of the budget left after the neural stage that goes back to the kNN searches; the
rest is kept for the repeat layers and the ensemble."""
MIN_EXTRA_SECONDS = 10.0
"""A kNN search is not continued for less than this."""
REPEAT_BASES = 2
ENSEMBLE_MEMBERS = 3
MAX_ENSEMBLE_MEMBERS = 4
SINGLE_STAGES = ("baselines", "knn-optuna", "neural")
"""The stages whose candidates are single models (not layers or ensembles over others)."""


def fit_timed(name: str, params: dict[str, Any], train: SessionData) -> tuple[Recommender, float]:
    """``name`` fitted on ``train``, and the seconds it took."""
    started = time.perf_counter()
    model = create_model(name, params).fit(train)
    return model, time.perf_counter() - started


# ------------------------------------------------------------------------------- stages
def stage_baselines(run: AutoRun) -> None:
    for i, name in enumerate(BASELINES):
        if run.has(name):
            continue
        if i > 0 and run.left() <= 0:  # pop always runs: the floor of every run
            run.skip(name)
            continue
        model, seconds = fit_timed(name, model_params(name), run.fit_part)
        run.add(name, model, "baselines", seconds, name)


def stage_knn(run: AutoRun, trials: int | None) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{run.work_dir / 'optuna.db'}"
    todo = [name for name in KNN_FAMILY if not run.has(name)]
    stage_end = time.monotonic() + max(run.left(), 0.0) * TUNE_SHARE
    for i, name in enumerate(todo):
        share = (stage_end - time.monotonic()) / (len(todo) - i)
        if share <= 0 or run.left() <= 0:
            run.skip(name)
            continue
        _tune_one(run, optuna, storage, name, share, trials)


def stage_knn_more(run: AutoRun, trials: int | None) -> None:
    """The budget the neural models did not use (skipped, or done early) goes back to the
    session-kNN searches: each study continues where it stopped (or starts, for a model the
    first search had no time for), and a better setting replaces its candidate. A run
    capped by ``--trials`` has searched all it was asked to."""
    if trials is not None:
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{run.work_dir / 'optuna.db'}"
    stage_end = time.monotonic() + max(run.left(), 0.0) * EXTRA_SHARE
    for i, name in enumerate(KNN_FAMILY):  # those the first search skipped start here
        share = (stage_end - time.monotonic()) / (len(KNN_FAMILY) - i)
        if share >= MIN_EXTRA_SECONDS and run.left() > 0:
            _tune_one(run, optuna, storage, name, share, None)


def _tune_one(
    run: AutoRun, optuna: Any, storage: str, name: str, seconds: float, trials: int | None
) -> None:
    defaults = model_params(name)
    space = SEARCH_SPACES[name]
    study = optuna.create_study(
        study_name=f"auto-{name}",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=run.seed),
        load_if_exists=True,
    )
    done_before = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not study.trials and all(rng.contains(defaults[k]) for k, rng in space.items()):
        study.enqueue_trial({key: defaults[key] for key in space})
    kept: dict[int, tuple[Recommender, float]] = {}

    def objective(trial: Any) -> float:
        params = {**defaults, **{key: rng.suggest(trial, key) for key, rng in space.items()}}
        if "k" in params and "sample_size" in params:
            params["sample_size"] = max(params["sample_size"], params["k"])
        model, fit_seconds = fit_timed(name, params, run.fit_part)
        hr, mrr = run.score(model)
        trial.set_user_attr("params", jsonable(params))
        trial.set_user_attr("hr", hr)
        trial.set_user_attr("fit_seconds", fit_seconds)
        if not kept or mrr > next(iter(kept.values()))[1]:  # keep only the best model in memory
            kept.clear()
            kept[trial.number] = (model, mrr)
        return mrr

    left_trials = None if trials is None else max(trials - len(done_before), 0)
    if left_trials != 0:
        study.optimize(objective, n_trials=left_trials, timeout=max(min(seconds, run.left()), 1e-3))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in complete:
        row = {"model": name, "trial": t.number, "mrr": float(t.value), **t.user_attrs}
        if row not in run.trials:
            run.trials.append(row)
    if not complete:
        run.skip(name)
        run.write_board()
        return
    best = max(complete, key=lambda t: (t.value, -t.number))  # the first of equals
    current = next((c for c in run.candidates if c.label == name), None)
    if current is not None and current.params == best.user_attrs["params"]:
        return  # the longer search found nothing better
    if best.number in kept:
        model = kept[best.number][0]
        fit_seconds = float(best.user_attrs["fit_seconds"])
    else:  # found by an earlier, interrupted run: fit it again
        model, fit_seconds = fit_timed(name, best.user_attrs["params"], run.fit_part)
    if current is None:
        run.add(name, model, "knn-optuna", fit_seconds, name)
    else:
        run.replace(name, model, fit_seconds)


def stage_neural(run: AutoRun, names: tuple[str, ...]) -> None:
    """Each neural model trained (on the GPU when there is one) for at most its share of the
    budget, validated every epoch; the best epoch is kept and is what the refit trains."""
    todo = [name for name in names if not run.has(name)]
    stage_end = time.monotonic() + max(run.left(), 0.0) * NEURAL_SHARE
    for i, name in enumerate(todo):
        seconds = (stage_end - time.monotonic()) / (len(todo) - i) / 2
        if seconds < MIN_NEURAL_SECONDS or run.left() <= 0 or not _has_torch():
            run.skip(name)
            continue
        epoch = _epoch_estimate(name, run.fit_part)
        if epoch > seconds:  # its first epoch, which always runs, would pass the share
            log.info(
                "auto: %s skipped: one epoch takes about %.0fs, %.0fs left", name, epoch, seconds
            )
            run.skip(name)
            continue
        params = {**model_params(name), "max_train_seconds": seconds, "seed": run.seed}
        started = time.perf_counter()
        model = create_model(name, params).fit(run.fit_part, run.valid)
        run.add(name, model, "neural", time.perf_counter() - started, name)


def _epoch_estimate(name: str, train: SessionData) -> float:
    """Seconds of one epoch on ``train``: one epoch on a 1/:data:`PROBE_FRACTION` sample of
    its sessions, scaled up (fixed costs scale too, so it errs on the long side)."""
    n = min(max(train.n_sessions // PROBE_FRACTION, PROBE_SESSIONS), train.n_sessions)
    sample = train.subset(np.arange(n, dtype=np.int64))
    started = time.perf_counter()
    create_model(name, {**model_params(name), "n_epochs": 1}).fit(sample)
    return (time.perf_counter() - started) * train.n_sessions / n


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def stage_repeat(run: AutoRun) -> None:
    bases = [c for c in run.ranked() if c.stage != "repeat" and c.model != "ensemble"]
    for base in bases[:REPEAT_BASES]:
        label = f"repeat_{base.label}"
        if run.has(label):
            continue
        if run.left() <= 0:
            run.skip(label)
            continue
        started = time.perf_counter()
        layer = RepeatAware.wrap(run.models[base.label], run.valid)
        run.add(label, layer, "repeat", base.fit_seconds + time.perf_counter() - started, base.root)


def stage_ensemble(run: AutoRun) -> None:
    """An ensemble (weights per session-length group) of the best candidates on distinct
    bases, with the best single candidate at each short prefix length among its members, so
    that its short-session weights can always fall back on that candidate."""
    if run.has("ensemble"):
        return
    chosen = ensemble_members(run.ranked())
    if len(chosen) < 2 or run.left() <= 0:
        run.skip("ensemble")
        return
    started = time.perf_counter()
    members = {c.label: run.models[c.label] for c in chosen}
    model = Ensemble.from_fitted(members, run.valid, short_floor=True)
    seconds = sum(c.fit_seconds for c in chosen) + time.perf_counter() - started
    candidate = run.add("ensemble", model, "ensemble", seconds, "ensemble")
    candidate.members = [c.label for c in chosen]
    run.write_board()


def ensemble_members(ranked: list[Candidate]) -> list[Candidate]:
    """The best :data:`ENSEMBLE_MEMBERS` candidates on distinct bases, plus the best single
    candidate at each short prefix length when it is not among them; at most
    :data:`MAX_ENSEMBLE_MEMBERS` (the weight grid grows fast with members)."""
    pool = [c for c in ranked if c.model != "ensemble"]
    chosen: list[Candidate] = []
    for candidate in pool:
        if len(chosen) < ENSEMBLE_MEMBERS and all(candidate.root != c.root for c in chosen):
            chosen.append(candidate)
    needed = []
    for length in SHORT_PREFIXES:
        singles = [c for c in pool if c.stage in SINGLE_STAGES and str(length) in c.hr_short]
        if singles:
            needed.append(max(singles, key=lambda c: c.hr_short[str(length)]))
    for candidate in needed:
        if candidate not in chosen:
            chosen.append(candidate)
    while len(chosen) > MAX_ENSEMBLE_MEMBERS:  # drop the weakest one not needed
        chosen.remove(next(c for c in reversed(chosen) if c not in needed))
    return chosen
