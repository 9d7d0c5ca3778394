"""Evaluation results files: one JSON file per evaluated model run.

``sessionrec evaluate --save-results FILE.json`` writes one *results file* per model run
(:func:`build_results`, :func:`save_results`); :func:`load_results` reads and checks one
back. ``sessionrec report`` compares several in one HTML page
(:mod:`sessionrec.evaluation.report`).

Results file (``format: "sessionrec-results"``, ``version: 1``), JSON without NaN:

- ``model``: registry name, class and hyperparameters; ``label``: the name shown in the
  report (the model name; edit it to tell two runs of one model apart).
- ``split``: the benchmark folder, the content fingerprints of its train and test files
  and one ``fingerprint`` of both, the protocol and the tie policy. The report compares
  only results of the same split and tie policy: it refuses others unless told to mix
  them, and then says so at the top of the page.
- ``n_cases``, ``n_items``; ``test_warning``: ``null``, or the sentence saying that fewer
  than :data:`~sessionrec.data.reliability.MIN_RELIABLE_CASES` test cases make the numbers
  noise (for the report to show beside them); ``metrics``: what ``evaluate`` prints
  (HR/MRR/NDCG in percent, coverage and popularity as fractions) for its cutoffs and K = 20.
- ``curves``: HR@K, MRR@K and NDCG@K in percent for K = 1..50 (entry ``i`` is K = i + 1).
- ``by_length``: HR@20 and MRR@20 in percent and case counts per prefix length group
  (1, 2, 3, 4-5, 6-10, >10 clicks before the target).
- ``beyond_accuracy``: coverage@20 and popularity@20 (fractions).
- ``timing``: fit and evaluation seconds (for a loaded model, the fit time its folder
  records; null when it records none).
- ``history``: per-epoch loss, validation metric (null where not validated), seconds and
  examples of a model trained in epochs, from its
  :meth:`~sessionrec.models.base.Recommender.training_history`; null for other models.
- ``latency``: milliseconds of every timed single-session ``recommend(k=20)`` call, with
  p50/p90/p99, mean and max; null when not measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError
from sessionrec.data.reliability import small_test_warning
from sessionrec.evaluation import metrics

if TYPE_CHECKING:
    from sessionrec.data.sessions import SessionData
    from sessionrec.evaluation.protocol import EvaluationResult
    from sessionrec.models.base import Recommender

log = logging.getLogger("sessionrec.evaluation.results")

RESULTS_FORMAT = "sessionrec-results"
RESULTS_VERSION = 1
MAX_K = 50
"""Curves run over K = 1..MAX_K."""
REPORT_K = 20
"""The cutoff of the by-length, coverage, popularity and latency views."""
_REQUIRED_KEYS = ("model", "split", "n_cases", "metrics", "curves", "by_length")


def split_fingerprint(train: SessionData, test: SessionData) -> str:
    """One short hash of a train/test pair: equal only for the same clicks in both files."""
    digest = hashlib.sha256(f"{train.fingerprint()}:{test.fingerprint()}".encode())
    return digest.hexdigest()[:16]


def training_history(model: Recommender) -> dict[str, Any] | None:
    """The results file's ``history`` of a model: its :meth:`training_history` as JSON.

    Lists per epoch (``loss``, ``valid``, ``seconds``, ``examples``; NaN as null), the
    1-based ``best_epoch`` and the ``valid_metric``. ``valid`` is null when no epoch was
    validated; a list whose length differs from the number of epochs is left out (null,
    with a warning). None for a model not trained in epochs, or that ran none.
    """
    history = model.training_history()
    if history is None:
        return None
    n_epochs = int(np.asarray(history.losses).size)
    if n_epochs == 0:
        return None
    per_epoch = {
        "loss": history.losses,
        "valid": history.valid,
        "seconds": history.seconds,
        "examples": history.examples,
    }
    out: dict[str, Any] = {}
    for key, values in per_epoch.items():
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size != n_epochs:
            log.warning(
                "%s training history: %s has %d entries for %d epochs; left out of the report",
                type(model).__name__,
                key,
                array.size,
                n_epochs,
            )
            out[key] = None
            continue
        out[key] = _finite_list(array)
    if out["valid"] is not None and all(v is None for v in out["valid"]):
        out["valid"] = None  # trained without a validation split
    best = int(history.best_epoch)
    out["best_epoch"] = best if best > 0 else None
    out["valid_metric"] = str(history.valid_metric)
    return out


def latency_summary(millis: np.ndarray) -> dict[str, float]:
    """p50, p90, p99, mean and max of a latency sample in milliseconds."""
    values = np.asarray(millis, dtype=np.float64)
    if not values.size:
        raise DataError("an empty latency sample has no summary")
    return {
        **metrics.percentiles(values, (50.0, 90.0, 99.0)),
        "mean": float(values.mean()),
        "max": float(values.max()),
    }


def build_results(
    result: EvaluationResult,
    model: Recommender,
    *,
    benchmark: str | Path,
    train: SessionData,
    test: SessionData,
    item_counts: np.ndarray,
    latency_ms: np.ndarray | None = None,
    latency_seed: int | None = None,
) -> dict[str, Any]:
    """The results-file dict of one evaluated model (see the module docstring)."""
    from sessionrec._version import __version__

    if REPORT_K not in result.cutoffs:
        raise ConfigError(
            f"results files need metrics at K={REPORT_K}; evaluate with it in the cutoffs"
        )
    computed = result.metrics(item_counts=item_counts)
    curves = metrics.cutoff_curves(result.ranks, MAX_K)
    groups = [
        {
            "label": label,
            "n_cases": int(values["n_cases"]),
            "hr": 100.0 * float(values[f"hr@{REPORT_K}"]),
            "mrr": 100.0 * float(values[f"mrr@{REPORT_K}"]),
        }
        for label, values in result.by_length(REPORT_K).items()
    ]
    latency: dict[str, Any] | None = None
    if latency_ms is not None and np.asarray(latency_ms).size:
        millis = np.asarray(latency_ms, dtype=np.float64)
        latency = {
            "k": REPORT_K,
            "n_calls": int(millis.size),
            "seed": latency_seed,
            **latency_summary(millis),
            "ms": [round(float(v), 5) for v in millis],
        }
    return _jsonable(
        {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "sessionrec_version": __version__,
            "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "label": model.name,
            "model": {
                "name": model.name,
                "class": type(model).__name__,
                "params": model.get_params(),
            },
            "split": {
                "benchmark": str(Path(benchmark).resolve()),
                "fingerprint": split_fingerprint(train, test),
                "train_fingerprint": train.fingerprint(),
                "test_fingerprint": test.fingerprint(),
                "n_train_sessions": train.n_sessions,
                "n_test_sessions": test.n_sessions,
                "protocol": result.protocol,
                "ties": result.ties,
            },
            "n_cases": result.n_cases,
            "test_warning": small_test_warning(result.n_cases),
            "n_items": result.n_items,
            "metrics": computed,
            "curves": {
                "max_k": MAX_K,
                **{name: [100.0 * v for v in values] for name, values in curves.items()},
            },
            "by_length": {"k": REPORT_K, "groups": groups},
            "beyond_accuracy": {
                "k": REPORT_K,
                "coverage": computed[f"coverage@{REPORT_K}"],
                "popularity": computed.get(f"popularity@{REPORT_K}"),
            },
            "timing": {
                "fit_seconds": result.fit_seconds,
                "predict_seconds": result.predict_seconds,
            },
            "history": training_history(model),
            "latency": latency,
        }
    )


def save_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write a results file atomically (strict JSON: NaN and infinities are refused)."""
    text = json.dumps(_jsonable(results), indent=1, allow_nan=False)
    with atomic_file(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and check one results file; errors name the file and what is wrong."""
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{file}: cannot read results file: {exc}") from None
    return check_results(data, str(file))


def check_results(data: Any, source: str) -> dict[str, Any]:
    """``data`` when it is a results file this version reads; errors name ``source``."""
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise DataError(
            f"{source}: not a sessionrec results file (write one with "
            "`sessionrec evaluate ... --save-results FILE.json`)"
        )
    if data.get("version") != RESULTS_VERSION:
        raise DataError(
            f"{source}: results format version {data.get('version')!r} is not supported "
            f"(this sessionrec reads version {RESULTS_VERSION})"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise DataError(f"{source}: results file lacks {', '.join(missing)}")
    for name in ("hr", "mrr"):
        values = data["curves"].get(name) if isinstance(data["curves"], dict) else None
        if not isinstance(values, list) or not values:
            raise DataError(f"{source}: results file has no {name.upper()}@K curve")
    return data


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)  # e.g. a Path among hyperparameters: readable, never a pickle


def _finite_list(array: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in array.tolist()]
