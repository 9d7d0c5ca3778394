"""``sessionrec.auto.auto``: the run from the training sessions to the saved model folder."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sessionrec._errors import ConfigError, DataError
from sessionrec._progress import progress
from sessionrec.auto.board import CUTOFF, AutoRun, Candidate, write_leaderboard_html
from sessionrec.auto.stages import (
    NEURAL,
    SINGLE_STAGES,
    stage_baselines,
    stage_ensemble,
    stage_knn,
    stage_knn_more,
    stage_neural,
    stage_repeat,
)
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import make_cases
from sessionrec.models.base import Recommender
from sessionrec.models.ensemble import Ensemble
from sessionrec.models.neural.common import refit_params
from sessionrec.models.registry import create_model
from sessionrec.models.repeat import RepeatAware

log = logging.getLogger("sessionrec.auto")

MIN_VALID_CASES = 20
"""Fewer validation cases than this cannot tell candidates apart: the split is refused."""
MIN_FIT_SESSIONS = 10


def parse_budget(text: str) -> float:
    """``"60m"``, ``"90s"``, ``"1.5h"`` or a plain number of seconds -> seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    scale = units.get(value[-1:])
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise ConfigError(f"budget must look like 60m, 90s or 1.5h, got {text!r}") from None
    if not seconds > 0:
        raise ConfigError(f"budget must be positive, got {text!r}")
    return seconds


def check_split(train: SessionData, valid_fraction: float) -> tuple[SessionData, SessionData]:
    """The validation split, refused (with the counts) when too small to choose on."""
    try:
        fit_part, valid = last_fraction_split(train, valid_fraction)
    except (ConfigError, DataError) as exc:
        raise ConfigError(
            f"auto: {train.n_sessions} training sessions are too few for a validation split: {exc}"
        ) from None
    n_cases = len(make_cases(valid, "next"))
    if n_cases < MIN_VALID_CASES or fit_part.n_sessions < MIN_FIT_SESSIONS:
        raise ConfigError(
            f"auto: the validation split is too small: {fit_part.n_sessions} sessions to fit on "
            f"(at least {MIN_FIT_SESSIONS}), {valid.n_sessions} validation sessions with "
            f"{n_cases} cases (at least {MIN_VALID_CASES}); give more training sessions"
        )
    return fit_part, valid


# -------------------------------------------------------------------------------- refit
def refit(model: Recommender, train: SessionData) -> Recommender:
    """``model`` fitted on ``train`` as its own ``fit(train)`` would: learned mixtures and
    ensemble weights are kept, the models under them are fitted again."""
    if isinstance(model, RepeatAware):
        model.base_ = refit(model.base_, train)
        model.data_fingerprint_ = model.base_.data_fingerprint_
        return model
    if isinstance(model, Ensemble):
        weighted = model.weighted_labels()
        for label in weighted:  # a member without weight is never scored
            model.members_[label] = refit(model.members_[label], train)
        first = model.members_[weighted[0]]  # refitted: its fingerprint is the training data's
        model.data_fingerprint_ = str(getattr(first, "data_fingerprint_", "") or "")
        return model
    params = model.get_params()
    history = model.training_history()
    if history is not None:  # the epochs validation chose, with no time limit
        params = refit_params(params, history.best_epoch)
    return create_model(model.name, params).fit(train)


# ------------------------------------------------------------------------------- choice
def short_floor(ranked: list[Candidate]) -> dict[str, float]:
    """The best single candidate's validation HR@20 at each short prefix length."""
    out: dict[str, float] = {}
    for c in ranked:
        if c.stage in SINGLE_STAGES:
            for length, hr in c.hr_short.items():
                out[length] = max(out.get(length, hr), hr)
    return out


def choose(ranked: list[Candidate]) -> tuple[Candidate, bool]:
    """The best candidate by validation MRR@20 among those whose HR@20 at every short prefix
    length is at least the best single candidate's there, and whether one qualified (if none
    did: the best by MRR@20)."""
    floor = short_floor(ranked)
    for c in ranked:
        if all(c.hr_short.get(length, 0.0) >= hr - 1e-9 for length, hr in floor.items()):
            return c, True
    return ranked[0], False


# ---------------------------------------------------------------------------------- run
def auto(
    train: SessionData,
    output: str | Path,
    budget: float,
    work_dir: str | Path | None = None,
    seed: int = 0,
    valid_fraction: float = 0.1,
    trials: int | None = None,
    neural: tuple[str, ...] = NEURAL,
) -> dict[str, Any]:
    """Choose a model on validation within ``budget`` seconds, refit it on ``train`` and save
    it to ``output``; returns the summary written to the leaderboard."""
    if not budget > 0:
        raise ConfigError(f"budget must be positive, got {budget!r}")
    output = Path(output)
    work = Path(work_dir) if work_dir is not None else output.parent / f"{output.name}.auto"
    work.mkdir(parents=True, exist_ok=True)
    fit_part, valid = check_split(train, valid_fraction)
    arguments = {
        "budget": budget,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "trials": trials,
        "neural": list(neural),
        "n_train_sessions": train.n_sessions,
    }
    run = AutoRun(fit_part, valid, work, budget, arguments)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("baselines", lambda: stage_baselines(run)),
        ("knn", lambda: stage_knn(run, trials)),
        ("neural", lambda: stage_neural(run, neural)),
        ("knn-more", lambda: stage_knn_more(run, trials)),
        ("repeat", lambda: stage_repeat(run)),
        ("ensemble", lambda: stage_ensemble(run)),
    ]
    if not run.finished:
        for _name, stage in progress(stages, desc="auto", unit="stage"):
            stage()
    best, short_ok = choose(run.ranked())
    single = next(c for c in run.ranked() if c.stage in SINGLE_STAGES)
    warnings = []
    if len(run.candidates) == 1:
        warnings.append(
            f"the budget of {budget:.0f}s was too small for any candidate beyond the "
            f"popularity baseline; saved {best.label}"
        )
    if not short_ok:
        warnings.append(
            f"no candidate reached the best single candidate's validation HR@{CUTOFF} at "
            f"every short prefix length; saved the best by MRR@{CUTOFF}, {best.label}"
        )
    for text in warnings:
        log.warning("auto: %s", text)
    warning = "; ".join(warnings) or None
    started = time.perf_counter()
    final = refit(run.models[best.label], train)
    refit_seconds = time.perf_counter() - started
    validation = {f"valid_hr@{CUTOFF}": best.hr, f"valid_mrr@{CUTOFF}": best.mrr}
    final.save(output, metrics={**validation, "auto_choice": best.label})
    summary = {
        "output": str(output),
        "chosen": best.label,
        **validation,
        "refit_seconds": refit_seconds,
        "n_candidates": len(run.candidates),
        "valid_hr@20_by_prefix": best.hr_short,
        "best_single": single.label,
        "best_single_valid_hr@20_by_prefix": single.hr_short,
        "best_single_by_prefix": short_floor(run.ranked()),
        "warning": warning,
        "work_dir": str(work),
    }
    run.write_board({"summary": summary})
    write_leaderboard_html(run.ranked(), summary, work / "leaderboard.html")
    return summary
