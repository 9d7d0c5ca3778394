"""``sessionrec auto``: choose and train a model within a wall-clock budget.

Selection uses the one validation split of the product only
(:func:`sessionrec.data.split.last_fraction_split`: the chronologically last 10% of the
training sessions); the test file is never opened. Every candidate is fitted on the first
part and ranked on the validation cases (MRR@20 chooses, HR@20 is reported). The stages, in
order of cost, each started only while the budget lasts:

1. baselines and rules (``pop``, ``spop``, ``markov``, ``sr``); ``pop`` always runs, so a
   budget too small for anything else still ends with a servable folder;
2. Optuna TPE on the session-kNN family (``vsknn``, ``stan``, ``vstan``, ``vmisknn``), each
   with an equal share of the budget left for this stage; the best trial is the candidate;
3. the neural models (``gru4rec``, ``sasrec``; on the GPU when there is one), each trained
   for at most its share of half the budget left, half of it kept for its refit; the epoch
   is chosen on validation; with too little time left (under :data:`MIN_NEURAL_SECONDS`
   per fit) they are skipped;
4. the repeat layer (:meth:`RepeatAware.wrap`) over the two best candidates;
5. an ensemble (:meth:`Ensemble.from_fitted`) of the best candidates of distinct bases.

The chosen model is the best on validation (ties: the earlier, cheaper one), so it is never
worse there than any single candidate tried. It is then refitted on all the training
sessions the way its own ``fit(train)`` does: a plain model from scratch (a neural one for
the epochs validation chose, without time limit), the repeat layer
keeps its mixture learned on validation and refits its base, the ensemble keeps its weights
and refits its members of positive weight. Deterministic for a seed when the number of
trials is fixed (``trials``); a time budget alone stops the search where the clock says.

Resumable: the work folder holds the Optuna studies (SQLite), the leaderboard (appended as
candidates finish) and the fitted candidates; a second run with the same arguments reuses
finished stages. The model folder is written atomically, so an interrupted run leaves the
old folder or none.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError
from sessionrec._progress import progress
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation import metrics
from sessionrec.evaluation.protocol import make_cases
from sessionrec.models.base import Recommender
from sessionrec.models.ensemble import Ensemble
from sessionrec.models.neural.common import refit_params
from sessionrec.models.registry import create_model, load_model, model_params
from sessionrec.models.repeat import RepeatAware
from sessionrec.tuning import SEARCH_SPACES, validation_ranks

log = logging.getLogger("sessionrec.auto")

CUTOFF = 20
BASELINES = ("pop", "spop", "markov", "sr")
KNN_FAMILY = ("vsknn", "stan", "vstan", "vmisknn")
MIN_VALID_CASES = 20
"""Fewer validation cases than this cannot tell candidates apart: the split is refused."""
MIN_FIT_SESSIONS = 10
TUNE_SHARE = 0.6
"""Share of the budget left after the baselines that the kNN search may use."""
NEURAL = ("gru4rec", "sasrec")
NEURAL_SHARE = 0.5
"""Share of the budget left after the kNN search that the neural models may use; each fit
gets half of its part, the other half being kept for its refit on all the sessions."""
MIN_NEURAL_SECONDS = 30.0
"""A neural model is not started with less than this for its training."""
REPEAT_BASES = 2
ENSEMBLE_MEMBERS = 3
SHORT_PREFIXES = (1, 2)


@dataclass
class Candidate:
    """One row of the leaderboard."""

    label: str
    model: str
    stage: str
    params: dict[str, Any]
    hr: float
    mrr: float
    fit_seconds: float
    root: str
    """The plain candidate this one is built on (itself for a plain candidate)."""
    hr_short: dict[str, float] = field(default_factory=dict)
    """Validation HR@20 at prefix lengths 1 and 2 (``"1"``, ``"2"``), where kNN and rules
    differ most."""
    saved: bool = False
    members: list[str] = field(default_factory=list)


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


class _Run:
    """The state of one ``auto`` run: the clock, the candidates and the work folder."""

    def __init__(
        self,
        fit_part: SessionData,
        valid: SessionData,
        work_dir: Path,
        budget: float,
        arguments: dict[str, Any],
    ) -> None:
        self.fit_part, self.valid = fit_part, valid
        self.prefix_lengths = make_cases(valid, "next").lengths
        self.work_dir = work_dir
        self.arguments = arguments
        self.seed = int(arguments["seed"])
        self.candidates: list[Candidate] = []
        self.models: dict[str, Recommender] = {}
        self.trials: list[dict[str, Any]] = []
        self.skipped: list[str] = []
        self.spent_before = 0.0
        self._load()
        # A resumed run has what the interrupted one left of the budget: a finished run
        # resumed starts nothing new and chooses the same model again.
        self.started = time.monotonic()
        self.deadline = self.started + budget - self.spent_before

    # ---------------------------------------------------------------- work folder
    @property
    def board_path(self) -> Path:
        return self.work_dir / "leaderboard.json"

    def _load(self) -> None:
        if not self.board_path.is_file():
            return
        board = json.loads(self.board_path.read_text())
        if board.get("arguments") != self.arguments:
            raise ConfigError(
                f"auto: {self.work_dir} holds a run with other arguments "
                f"({board.get('arguments')}); resume with those or choose another --work-dir"
            )
        self.spent_before = float(board.get("spent_seconds", 0.0))
        for row in board.get("candidates", []):
            candidate = Candidate(**row)
            if candidate.saved:
                self.models[candidate.label] = load_model(self._model_dir(candidate.label))
            self.candidates.append(candidate)
        self.trials = list(board.get("trials", []))
        self.skipped = list(board.get("skipped", []))
        log.info("auto: resumed %d candidates from %s", len(self.candidates), self.work_dir)

    def _model_dir(self, label: str) -> Path:
        return self.work_dir / "candidates" / label

    def write_board(self, extra: dict[str, Any] | None = None) -> None:
        payload = {
            "arguments": self.arguments,
            "spent_seconds": self.spent_before + time.monotonic() - self.started,
            "metric": f"mrr@{CUTOFF}",
            "candidates": [asdict(c) for c in self.candidates],
            "trials": self.trials,
            "skipped": self.skipped,
            **(extra or {}),
        }
        with atomic_file(self.board_path) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")

    # ---------------------------------------------------------------- candidates
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def skip(self, label: str) -> None:
        if label not in self.skipped:
            self.skipped.append(label)

    def has(self, label: str) -> bool:
        return any(c.label == label for c in self.candidates)

    def score(self, model: Recommender) -> tuple[float, float]:
        hr, mrr, _ = self.score_with_lengths(model)
        return hr, mrr

    def score_with_lengths(self, model: Recommender) -> tuple[float, float, dict[str, float]]:
        ranks = validation_ranks(model, self.valid)
        short = {
            str(n): 100.0 * metrics.hit_rate(ranks[self.prefix_lengths == n], CUTOFF)
            for n in SHORT_PREFIXES
            if (self.prefix_lengths == n).any()
        }
        return (
            100.0 * metrics.hit_rate(ranks, CUTOFF),
            100.0 * metrics.mrr(ranks, CUTOFF),
            short,
        )

    def add(
        self, label: str, model: Recommender, stage: str, fit_seconds: float, root: str
    ) -> Candidate:
        hr, mrr, short = self.score_with_lengths(model)
        candidate = Candidate(
            label=label,
            model=model.name,
            stage=stage,
            params=_jsonable(model.get_params()),
            hr=hr,
            mrr=mrr,
            fit_seconds=fit_seconds,
            root=root,
            hr_short=short,
        )
        if label in self.skipped:
            self.skipped.remove(label)
        model.save(self._model_dir(label))
        candidate.saved = True
        self.models[label] = model
        self.candidates.append(candidate)
        self.write_board()
        log.info(
            "auto: %s (%s) hr@20=%.2f mrr@20=%.2f in %.1fs", label, stage, hr, mrr, fit_seconds
        )
        return candidate

    def ranked(self) -> list[Candidate]:
        """Best first by validation MRR; equal ones keep their order (cheaper first)."""
        return sorted(self.candidates, key=lambda c: -c.mrr)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def _fit(name: str, params: dict[str, Any], train: SessionData) -> tuple[Recommender, float]:
    started = time.perf_counter()
    model = create_model(name, params).fit(train)
    return model, time.perf_counter() - started


# ------------------------------------------------------------------------------- stages
def _stage_baselines(run: _Run) -> None:
    for i, name in enumerate(BASELINES):
        if run.has(name):
            continue
        if i > 0 and run.left() <= 0:  # pop always runs: the floor of every run
            run.skip(name)
            continue
        model, seconds = _fit(name, model_params(name), run.fit_part)
        run.add(name, model, "baselines", seconds, name)


def _stage_knn(run: _Run, trials: int | None) -> None:
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


def _tune_one(
    run: _Run, optuna: Any, storage: str, name: str, seconds: float, trials: int | None
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
        model, fit_seconds = _fit(name, params, run.fit_part)
        hr, mrr = run.score(model)
        trial.set_user_attr("params", _jsonable(params))
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
    if best.number in kept:
        model = kept[best.number][0]
        fit_seconds = float(best.user_attrs["fit_seconds"])
    else:  # found by an earlier, interrupted run: fit it again
        model, fit_seconds = _fit(name, best.user_attrs["params"], run.fit_part)
    run.add(name, model, "knn-optuna", fit_seconds, name)


def _stage_neural(run: _Run, names: tuple[str, ...]) -> None:
    """Each neural model trained (on the GPU when there is one) for at most its share of the
    budget, validated every epoch; the best epoch is kept and is what the refit trains."""
    todo = [name for name in names if not run.has(name)]
    stage_end = time.monotonic() + max(run.left(), 0.0) * NEURAL_SHARE
    for i, name in enumerate(todo):
        seconds = (stage_end - time.monotonic()) / (len(todo) - i) / 2
        if seconds < MIN_NEURAL_SECONDS or run.left() <= 0 or not _has_torch():
            run.skip(name)
            continue
        params = {**model_params(name), "max_train_seconds": seconds}
        started = time.perf_counter()
        model = create_model(name, params).fit(run.fit_part, run.valid)
        run.add(name, model, "neural", time.perf_counter() - started, name)


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _stage_repeat(run: _Run) -> None:
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


def _stage_ensemble(run: _Run) -> None:
    if run.has("ensemble"):
        return
    chosen: list[Candidate] = []
    for candidate in run.ranked():
        if all(candidate.root != c.root for c in chosen):
            chosen.append(candidate)
    chosen = chosen[:ENSEMBLE_MEMBERS]
    if len(chosen) < 2 or run.left() <= 0:
        run.skip("ensemble")
        return
    started = time.perf_counter()
    members = {c.label: run.models[c.label] for c in chosen}
    model = Ensemble.from_fitted(members, run.valid)
    seconds = sum(c.fit_seconds for c in chosen) + time.perf_counter() - started
    candidate = run.add("ensemble", model, "ensemble", seconds, "ensemble")
    candidate.members = [c.label for c in chosen]
    run.write_board()


# -------------------------------------------------------------------------------- refit
def refit(model: Recommender, train: SessionData) -> Recommender:
    """``model`` fitted on ``train`` as its own ``fit(train)`` would: learned mixtures and
    ensemble weights are kept, the models under them are fitted again."""
    if isinstance(model, RepeatAware):
        model.base_ = refit(model.base_, train)
        model.data_fingerprint_ = model.base_.data_fingerprint_
        return model
    if isinstance(model, Ensemble):
        for label, weight in zip(model.labels, model.weights_.tolist(), strict=True):
            if weight > 0:  # a member without weight is never scored
                model.members_[label] = refit(model.members_[label], train)
        refitted = [m for m in model.members_.values()]
        model.data_fingerprint_ = str(getattr(refitted[0], "data_fingerprint_", "") or "")
        return model
    params = model.get_params()
    history = model.training_history()
    if history is not None:  # the epochs validation chose, with no time limit
        params = refit_params(params, history.best_epoch)
    return create_model(model.name, params).fit(train)


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
    run = _Run(fit_part, valid, work, budget, arguments)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("baselines", lambda: _stage_baselines(run)),
        ("knn", lambda: _stage_knn(run, trials)),
        ("neural", lambda: _stage_neural(run, neural)),
        ("repeat", lambda: _stage_repeat(run)),
        ("ensemble", lambda: _stage_ensemble(run)),
    ]
    for _name, stage in progress(stages, desc="auto", unit="stage"):
        stage()
    best = run.ranked()[0]
    single = next(c for c in run.ranked() if c.stage in ("baselines", "knn-optuna", "neural"))
    warning = None
    if len(run.candidates) == 1:
        warning = (
            f"the budget of {budget:.0f}s was too small for any candidate beyond the "
            f"popularity baseline; saved {best.label}"
        )
        log.warning("auto: %s", warning)
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
        "warning": warning,
        "work_dir": str(work),
    }
    run.write_board({"summary": summary})
    write_leaderboard_html(run.ranked(), summary, work / "leaderboard.html")
    return summary


def write_leaderboard_html(ranked: list[Candidate], summary: dict[str, Any], path: Path) -> Path:
    """A self-contained HTML page of every candidate, best first."""
    rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                c.label,
                c.stage,
                f"{c.hr:.2f}",
                f"{c.mrr:.2f}",
                *(
                    f"{c.hr_short[str(n)]:.2f}" if str(n) in c.hr_short else ""
                    for n in SHORT_PREFIXES
                ),
                f"{c.fit_seconds:.1f}",
                json.dumps(c.params, sort_keys=True),
            )
        )
        + "</tr>"
        for c in ranked
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sessionrec auto</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
        "</style></head><body><h1>sessionrec auto: leaderboard</h1>"
        f"<p>chosen: <b>{html.escape(str(summary['chosen']))}</b> (validation MRR@20 "
        f"{summary[f'valid_mrr@{CUTOFF}']:.2f})</p>"
        + (f"<p><b>{html.escape(summary['warning'])}</b></p>" if summary.get("warning") else "")
        + "<table><tr><th>candidate</th><th>stage</th><th>HR@20</th><th>MRR@20</th>"
        "<th>HR@20, 1 click</th><th>HR@20, 2 clicks</th><th>fit seconds</th><th>params</th></tr>"
        f"{rows}</table></body></html>\n"
    )
    with atomic_file(path) as tmp:
        tmp.write_text(page)
    return path


__all__ = ["Candidate", "auto", "check_split", "parse_budget", "refit", "write_leaderboard_html"]
