"""The validation metrics ``sessionrec tune`` maximises.

- ``mrr@K``, ``hr@K``, ``ndcg@K``: the next-click metrics, on the pessimistic ranks of every
  ``s[:i] -> s[i]`` case of the validation sessions (:func:`sessionrec.tuning.validation_ranks`).
- ``orders@K``, ``carts@K``, ``otto@K``: the OTTO protocol (:mod:`sessionrec.evaluation.otto`)
  on the validation sessions, each cut once at a point drawn with the fixed seed
  :data:`VALID_CUT_SEED` (the same cuts for every trial): Recall@K of the later purchases, of
  the later carts, and the weighted sum 0.1 clicks + 0.3 carts + 0.6 orders.

A ``cart`` / ``purchase`` objective is tuned on ``carts@20`` / ``orders@20`` unless another
metric is asked for (:func:`default_metric`): a model fitted to predict purchases is judged
by the purchases it finds, not by the next click.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError
from sessionrec.data.sessions import SessionData
from sessionrec.evaluation import metrics
from sessionrec.evaluation.otto import evaluate_otto, otto_cases
from sessionrec.models.base import Recommender

RANK_METRICS: dict[str, Callable[[np.ndarray, int], float]] = {
    "mrr": metrics.mrr,
    "hr": metrics.hit_rate,
    "ndcg": metrics.ndcg,
}
"""Next-click metrics of ranks."""

OTTO_METRICS: dict[str, str] = {"orders": "orders", "carts": "carts", "otto": "score"}
"""OTTO metric name -> what it reads of the protocol's result (a recall, or the score)."""

VALID_CUT_SEED = 0
"""Seed of the validation sessions' cut points (fixed: every trial sees the same cases)."""

OBJECTIVE_METRICS: dict[str, str] = {"click": "mrr@20", "cart": "carts@20", "purchase": "orders@20"}
"""The metric tuned on by default, per objective."""


@dataclass(frozen=True)
class ValidationMetric:
    """A parsed ``--metric``: its name (``mrr``, ``orders``, ...) and cutoff."""

    name: str
    cutoff: int

    @property
    def otto(self) -> bool:
        return self.name in OTTO_METRICS

    def check_data(self, valid: SessionData) -> None:
        """Refuse an OTTO metric whose targets the validation sessions do not have."""
        if not self.otto:
            return
        cases = otto_cases(valid, VALID_CUT_SEED)
        counts = {
            "clicks": int((cases.click >= 0).sum()),
            "carts": sum(1 for t in cases.carts if t.size),
            "orders": sum(1 for t in cases.orders if t.size),
        }
        needed = ("clicks", "carts", "orders") if self.name == "otto" else (self.name,)
        missing = [kind for kind in needed if counts[kind] == 0]
        if missing:
            raise ConfigError(
                f"--metric {self.name}@{self.cutoff} needs validation sessions with later "
                f"{' and '.join(missing)} ({len(cases)} validation cases have none): tune on "
                "a prepared folder with event types, or use --metric mrr@20"
            )

    def otto_value(self, model: Recommender, valid: SessionData) -> float:
        """The OTTO metric of ``model`` on ``valid``, in percent."""
        result = evaluate_otto(model, valid, k=self.cutoff, seed=VALID_CUT_SEED)
        key = OTTO_METRICS[self.name]
        return 100.0 * (result.score if key == "score" else result.recall[key])


def validation_metric(metric: str) -> ValidationMetric:
    """``"orders@20"`` -> ``ValidationMetric("orders", 20)``; a clear error otherwise."""
    name, sep, cutoff = metric.partition("@")
    known = (*RANK_METRICS, *OTTO_METRICS)
    if not sep or name not in known or not cutoff.isdigit() or int(cutoff) < 1:
        raise ConfigError(
            "--metric must look like mrr@20, hr@20, ndcg@20, orders@20, carts@20 or otto@20, "
            f"got {metric!r}"
        )
    return ValidationMetric(name, int(cutoff))


def parse_metric(metric: str) -> tuple[Callable[[np.ndarray, int], float], int]:
    """A next-click metric: ``"mrr@20"`` -> (metric function of ranks, cutoff)."""
    parsed = validation_metric(metric)
    if parsed.otto:
        raise ConfigError(f"{metric!r} is not a metric of ranks (mrr, hr or ndcg)")
    return RANK_METRICS[parsed.name], parsed.cutoff


def default_metric(params: Mapping[str, Any]) -> str:
    """The metric to tune on when none is given: by the ``objective`` of ``params`` (or of
    their ``base_params``, the repeat layer's base)."""
    base = params.get("base_params")
    objective = params.get("objective")
    if objective is None and isinstance(base, Mapping):
        objective = base.get("objective")
    return OBJECTIVE_METRICS.get(str(objective or "click"), "mrr@20")
