"""The leaderboard of ``sessionrec auto``: its candidates, the run's state in the work folder
(``leaderboard.json``, the fitted candidates) and the HTML page."""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError
from sessionrec.data.sessions import SessionData
from sessionrec.evaluation import metrics
from sessionrec.evaluation.protocol import make_cases
from sessionrec.models.base import Recommender
from sessionrec.models.registry import load_model
from sessionrec.tuning import validation_ranks

log = logging.getLogger("sessionrec.auto")

CUTOFF = 20
"""Candidates are ranked by MRR at this cut-off on validation."""
SHORT_PREFIXES = (1, 2)
"""Prefix lengths whose validation HR@20 every candidate reports."""


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


class AutoRun:
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
        self.finished = False  # a finished run found in the work folder: nothing new starts
        self._load()
        # A resumed run has what the interrupted one left of the budget.
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
        self.finished = "summary" in board
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

    def replace(self, label: str, model: Recommender, fit_seconds: float) -> Candidate:
        """Put ``model`` in the place of candidate ``label`` (a longer search found a better
        setting): scored, saved and written to the leaderboard like a new one."""
        old = next(c for c in self.candidates if c.label == label)
        self.candidates.remove(old)
        return self.add(label, model, old.stage, fit_seconds, old.root)

    def add(
        self, label: str, model: Recommender, stage: str, fit_seconds: float, root: str
    ) -> Candidate:
        hr, mrr, short = self.score_with_lengths(model)
        candidate = Candidate(
            label=label,
            model=model.name,
            stage=stage,
            params=jsonable(model.get_params()),
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


def jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


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
