"""Evaluation results files and the HTML report that compares them.

``sessionrec evaluate --save-results FILE.json`` writes one *results file* per model run
(:func:`build_results`, :func:`save_results`); ``sessionrec report FILE.json ... -o
report.html`` turns several into one self-contained HTML page (:func:`build_report`,
:func:`write_report`).

Results file (``format: "sessionrec-results"``, ``version: 1``), JSON without NaN:

- ``model``: registry name, class and hyperparameters; ``label``: the name shown in the
  report (the model name; edit it to tell two runs of one model apart).
- ``split``: the benchmark folder, the content fingerprints of its train and test files
  and one ``fingerprint`` of both, the protocol and the tie policy. The report compares
  only results of the same split and tie policy: it refuses others unless told to mix
  them, and then says so at the top of the page.
- ``n_cases``, ``n_items``; ``metrics``: what ``evaluate`` prints (HR/MRR/NDCG in percent,
  coverage and popularity as fractions) for its cutoffs and K = 20.
- ``curves``: HR@K, MRR@K and NDCG@K in percent for K = 1..50 (entry ``i`` is K = i + 1).
- ``by_length``: HR@20 and MRR@20 in percent and case counts per prefix length group
  (1, 2, 3, 4-5, 6-10, >10 clicks before the target).
- ``beyond_accuracy``: coverage@20 and popularity@20 (fractions).
- ``timing``: fit and evaluation seconds (fit is null for a loaded model).
- ``history``: per-epoch loss, validation metric (null where not validated), seconds and
  examples of a neural model, read from the ``epoch_*_`` attributes any model may have;
  null for models without them.
- ``latency``: milliseconds of every timed single-session ``recommend(k=20)`` call, with
  p50/p90/p99, mean and max; null when not measured.

The page has one section per view, with stable ids (:data:`SECTION_IDS`). Plots are PNG
images made with matplotlib (the ``report`` extra) and embedded as ``data:`` URIs: the
file opens offline, references nothing outside itself and can be mailed as it is.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError
from sessionrec.evaluation import metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from sessionrec.data.sessions import SessionData
    from sessionrec.evaluation.protocol import EvaluationResult
    from sessionrec.models.base import Recommender

log = logging.getLogger("sessionrec.evaluation.report")

RESULTS_FORMAT = "sessionrec-results"
RESULTS_VERSION = 1
MAX_K = 50
"""Curves run over K = 1..MAX_K."""
REPORT_K = 20
"""The cutoff of the by-length, coverage, popularity and latency views."""
SECTION_IDS: tuple[str, ...] = (
    "metrics",
    "hr-curve",
    "mrr-curve",
    "by-length",
    "coverage-popularity",
    "training",
    "latency",
)
_HISTORY_ATTRIBUTES = {
    "loss": "epoch_losses_",
    "valid": "epoch_valid_",
    "seconds": "epoch_seconds_",
    "examples": "epoch_examples_",
}
_REQUIRED_KEYS = ("model", "split", "n_cases", "metrics", "curves", "by_length")


# ------------------------------------------------------------ results files
def split_fingerprint(train: SessionData, test: SessionData) -> str:
    """One short hash of a train/test pair: equal only for the same clicks in both files."""
    digest = hashlib.sha256(f"{train.fingerprint()}:{test.fingerprint()}".encode())
    return digest.hexdigest()[:16]


def training_history(model: Recommender) -> dict[str, Any] | None:
    """Per-epoch history of a model that keeps one (``epoch_losses_`` and friends).

    Read generically, so any model that follows GRU4Rec's attribute names gets training
    curves in the report. None when the model has no loss history.
    """
    losses = getattr(model, "epoch_losses_", None)
    if losses is None or np.asarray(losses).size == 0:
        return None
    history: dict[str, Any] = {}
    n_epochs = int(np.asarray(losses).size)
    for key, attribute in _HISTORY_ATTRIBUTES.items():
        values = getattr(model, attribute, None)
        if values is None:
            history[key] = None
            continue
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size != n_epochs:
            log.warning(
                "%s.%s has %d entries for %d epochs; left out of the report",
                type(model).__name__,
                attribute,
                array.size,
                n_epochs,
            )
            history[key] = None
            continue
        history[key] = _finite_list(array)
    if history["valid"] is not None and all(v is None for v in history["valid"]):
        history["valid"] = None  # trained without a validation split
    best = getattr(model, "best_epoch_", None)
    history["best_epoch"] = int(best) if best is not None and int(best) > 0 else None
    history["valid_metric"] = str(getattr(model, "selection_metric", "validation metric"))
    return history


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
    return _check_results(data, str(file))


def _check_results(data: Any, source: str) -> dict[str, Any]:
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


# ------------------------------------------------------------------ report
def _prepare(
    results: Sequence[dict[str, Any] | str | Path],
) -> list[tuple[str, dict[str, Any]]]:
    """(source, checked results) pairs: a file's path, or the label of a dict given as is."""
    if not results:
        raise ConfigError("a report needs at least one results file")
    prepared = []
    for entry in results:
        if isinstance(entry, dict):
            source = str(entry.get("label") or "results")
            prepared.append((source, _check_results(entry, source)))
        else:
            prepared.append((str(entry), load_results(entry)))
    return prepared


def split_mismatches(results: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Reasons why the results are not comparable (different split or tie policy)."""
    problems = []
    for field, what in (("fingerprint", "split"), ("ties", "tie policy")):
        seen: dict[str, list[str]] = {}
        for source, data in results:
            seen.setdefault(str(data["split"].get(field)), []).append(source)
        if len(seen) > 1:
            parts = "; ".join(f"{value}: {', '.join(srcs)}" for value, srcs in seen.items())
            problems.append(f"the results come from different {what}s ({parts})")
    return problems


def _labels(results: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each result's label, made unique with ``#2``, ``#3`` for repeated names."""
    labels: list[str] = []
    counts: dict[str, int] = {}
    for _, data in results:
        base = str(data.get("label") or data["model"].get("name") or "model")
        counts[base] = counts.get(base, 0) + 1
        labels.append(base if counts[base] == 1 else f"{base} #{counts[base]}")
    return labels


def build_report(
    results: Sequence[dict[str, Any] | str | Path],
    title: str = "Evaluation report",
    *,
    allow_mixed_splits: bool = False,
) -> str:
    """One self-contained HTML page comparing the given results (dicts or file paths).

    Results from different splits or tie policies are refused with a :class:`DataError`;
    with ``allow_mixed_splits`` the page is built with a warning at its top instead.
    """
    prepared = _prepare(results)
    warnings = split_mismatches(prepared)
    if warnings and not allow_mixed_splits:
        raise DataError(
            "; ".join(warnings)
            + ": their numbers are not comparable (allow it with --allow-mixed-splits)"
        )
    for warning in warnings:
        log.warning("report: %s", warning)
    plt = _Plots(_labels(prepared))
    data = [d for _, d in prepared]
    body = [
        f"<h1>{_esc(title)}</h1>",
        _meta(prepared),
        _warnings(warnings),
        _nav(),
        _metrics_section(plt.labels, data),
        _curve_section(plt, data, "hr-curve", "hr", "HR@K (hit rate)"),
        _curve_section(plt, data, "mrr-curve", "mrr", "MRR@K (mean reciprocal rank)"),
        _length_section(plt, data),
        _beyond_section(plt, data),
        _training_section(plt, data),
        _latency_section(plt, data),
    ]
    return _PAGE.format(title=_esc(title), style=_STYLE, body="\n".join(p for p in body if p))


def write_report(
    results: Sequence[dict[str, Any] | str | Path],
    output: str | Path,
    title: str = "Evaluation report",
    *,
    allow_mixed_splits: bool = False,
) -> Path:
    """Build the report and write it to ``output`` atomically."""
    page = build_report(results, title, allow_mixed_splits=allow_mixed_splits)
    with atomic_file(output) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote report of %d result(s) to %s", len(results), output)
    return Path(output)


# ---------------------------------------------------------------- sections
def _meta(prepared: Sequence[tuple[str, dict[str, Any]]]) -> str:
    first = prepared[0][1]["split"]
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<p class="meta">{len(prepared)} result(s) on <code>{_esc(first.get("benchmark"))}'
        f"</code> (split {_esc(first.get('fingerprint'))}, {_esc(first.get('n_train_sessions'))}"
        f" training and {_esc(first.get('n_test_sessions'))} test sessions, protocol "
        f"{_esc(first.get('protocol'))}, {_esc(first.get('ties'))} ties). "
        f"Full ranking over the catalog; HR, MRR and NDCG in percent. Built {created}.</p>"
    )


def _warnings(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{_esc(w)}</li>" for w in warnings)
    return (
        '<section id="warnings" class="warn"><h2>Warning: not comparable</h2>'
        f"<ul>{items}</ul><p>Numbers from different splits or tie policies cannot be "
        "compared with each other.</p></section>"
    )


def _nav() -> str:
    names = {
        "metrics": "Metrics",
        "hr-curve": "HR@K",
        "mrr-curve": "MRR@K",
        "by-length": "By session length",
        "coverage-popularity": "Coverage & popularity",
        "training": "Training",
        "latency": "Latency",
    }
    links = " · ".join(f'<a href="#{sid}">{names[sid]}</a>' for sid in SECTION_IDS)
    return f"<nav>{links}</nav>"


def _metrics_section(labels: Sequence[str], data: Sequence[dict[str, Any]]) -> str:
    columns: list[tuple[str, str, bool]] = [  # (header, metric key, higher is better)
        ("HR@5", "hr@5", True),
        ("HR@10", "hr@10", True),
        ("HR@20", "hr@20", True),
        ("MRR@5", "mrr@5", True),
        ("MRR@10", "mrr@10", True),
        ("MRR@20", "mrr@20", True),
        ("NDCG@20", "ndcg@20", True),
        ("Cov@20", "coverage@20", False),
        ("Pop@20", "popularity@20", False),
    ]

    def value(d: dict[str, Any], key: str) -> float | None:
        if key in d["metrics"]:
            return _number(d["metrics"][key])
        name, _, k = key.partition("@")
        curve = d["curves"].get(name)
        if name in ("hr", "mrr", "ndcg") and curve and k.isdigit() and int(k) <= len(curve):
            return _number(curve[int(k) - 1])  # from the curve when not among the cutoffs
        return None

    best = {
        key: max((v for d in data if (v := value(d, key)) is not None), default=None)
        for _, key, higher in columns
        if higher
    }
    head = "".join(f"<th>{h}</th>" for h, _, _ in columns)
    rows = []
    for label, d in zip(labels, data, strict=True):
        cells = []
        for _, key, higher in columns:
            v = value(d, key)
            text = _fmt(v, 2 if higher else 3)
            strong = higher and v is not None and v == best.get(key)
            cells.append(f"<td>{'<b>' + text + '</b>' if strong else text}</td>")
        timing = d.get("timing") or {}
        latency = d.get("latency") or {}
        rows.append(
            f"<tr><th>{_esc(label)}</th><td>{d['n_cases']}</td>{''.join(cells)}"
            f"<td>{_fmt(_number(timing.get('fit_seconds')), 2)}</td>"
            f"<td>{_fmt(_number(timing.get('predict_seconds')), 2)}</td>"
            f"<td>{_fmt(_number(latency.get('p50')), 3)}</td></tr>"
        )
    params = "".join(
        f"<li><b>{_esc(label)}</b> ({_esc(d['model'].get('class'))}): "
        f"<code>{_esc(_params_text(d['model'].get('params')))}</code></li>"
        for label, d in zip(labels, data, strict=True)
    )
    return (
        '<section id="metrics"><h2>Metrics</h2><div class="scroll"><table>'
        f"<thead><tr><th>Model</th><th>Cases</th>{head}<th>Fit s</th><th>Eval s</th>"
        f"<th>p50 ms</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">Best accuracy in bold. Cov@20: share of the catalog shown in some '
        "top-20 list; Pop@20: mean popularity of the recommended items relative to the most "
        "clicked item (lower is less biased). Eval s: batched evaluation of every case; "
        "p50 ms: median single-session request.</p>"
        f"<details><summary>Hyperparameters</summary><ul>{params}</ul></details></section>"
    )


def _curve_section(
    plt: _Plots, data: Sequence[dict[str, Any]], sid: str, key: str, title: str
) -> str:
    image = plt.curve(data, key, title)
    name = key.upper()
    return (
        f'<section id="{sid}"><h2>{_esc(title)}</h2>{image}'
        f'<p class="note">{name}@K for K = 1..{MAX_K}, from the same ranks as the table.</p>'
        "</section>"
    )


def _length_section(plt: _Plots, data: Sequence[dict[str, Any]]) -> str:
    image = plt.by_length(data)
    groups = [g["label"] for g in data[0]["by_length"]["groups"]]
    head = "".join(f"<th>{_esc(g)}</th>" for g in groups)
    counts = "".join(f"<td>{g['n_cases']}</td>" for g in data[0]["by_length"]["groups"])
    rows = [f"<tr><th>cases</th>{counts}</tr>"]
    for label, d in zip(plt.labels, data, strict=True):
        cells = "".join(
            f"<td>{_fmt(_number(g['hr']), 1)} / {_fmt(_number(g['mrr']), 1)}</td>"
            for g in d["by_length"]["groups"]
        )
        rows.append(f"<tr><th>{_esc(label)}</th>{cells}</tr>")
    k = data[0]["by_length"].get("k", REPORT_K)
    return (
        f'<section id="by-length"><h2>Accuracy by session length</h2>{image}'
        f'<div class="scroll"><table><thead><tr><th>clicks before target</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">HR@{k} / MRR@{k} in percent by the number of clicks the model '
        "saw before the target.</p></section>"
    )


def _beyond_section(plt: _Plots, data: Sequence[dict[str, Any]]) -> str:
    image = plt.beyond(data)
    rows = []
    for label, d in zip(plt.labels, data, strict=True):
        beyond = d.get("beyond_accuracy") or {}
        rows.append(
            f"<tr><th>{_esc(label)}</th><td>{_fmt(_number(beyond.get('coverage')), 3)}</td>"
            f"<td>{_fmt(_number(beyond.get('popularity')), 3)}</td></tr>"
        )
    return (
        '<section id="coverage-popularity"><h2>Coverage and popularity bias</h2>'
        f'{image}<div class="scroll"><table><thead><tr><th>Model</th><th>Coverage@{REPORT_K}'
        f"</th><th>Popularity@{REPORT_K}</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        '</table></div><p class="note">Coverage: higher shows more of the catalog. '
        "Popularity: lower recommends less popular items.</p></section>"
    )


def _training_section(plt: _Plots, data: Sequence[dict[str, Any]]) -> str:
    if not any(d.get("history") for d in data):
        return (
            '<section id="training"><h2>Training curves</h2><p class="note">No result has '
            "a training history: only neural models record one (loss and validation metric "
            "per epoch).</p></section>"
        )
    image = plt.training(data)
    rows = []
    for label, d in zip(plt.labels, data, strict=True):
        history = d.get("history")
        if not history:
            continue
        seconds = history.get("seconds") or []
        rows.append(
            f"<tr><th>{_esc(label)}</th><td>{len(history.get('loss') or [])}</td>"
            f"<td>{_esc(history.get('best_epoch') or '-')}</td>"
            f"<td>{_fmt(_number(sum(s for s in seconds if s is not None)), 1)}</td></tr>"
        )
    return (
        f'<section id="training"><h2>Training curves</h2>{image}'
        '<div class="scroll"><table><thead><tr><th>Model</th><th>Epochs</th>'
        f"<th>Best epoch</th><th>Train s</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        '</table></div><p class="note">Loss per epoch, and the validation metric where the '
        "model was trained with a validation split (never the test set).</p></section>"
    )


def _latency_section(plt: _Plots, data: Sequence[dict[str, Any]]) -> str:
    measured = [d for d in data if d.get("latency") and d["latency"].get("ms")]
    if not measured:
        return (
            '<section id="latency"><h2>Recommendation latency</h2><p class="note">Not '
            "measured: evaluate with --save-results and --latency-calls above 0.</p>"
            "</section>"
        )
    image = plt.latency(data)
    rows = []
    for label, d in zip(plt.labels, data, strict=True):
        lat = d.get("latency")
        if not lat:
            continue
        cells = "".join(
            f"<td>{_fmt(_number(lat.get(key)), 3)}</td>"
            for key in ("p50", "p90", "p99", "mean", "max")
        )
        rows.append(f"<tr><th>{_esc(label)}</th><td>{lat.get('n_calls')}</td>{cells}</tr>")
    return (
        f'<section id="latency"><h2>Recommendation latency</h2>{image}'
        '<div class="scroll"><table><thead><tr><th>Model</th><th>Calls</th><th>p50 ms</th>'
        "<th>p90 ms</th><th>p99 ms</th><th>mean ms</th><th>max ms</th></tr></thead>"
        f'<tbody>{"".join(rows)}</tbody></table></div><p class="note">One '
        f"<code>recommend([session], k={REPORT_K})</code> call per test prefix drawn with a "
        "fixed seed, external ids in and out, in the evaluating process (no HTTP). Compare "
        "only numbers measured on the same machine.</p></section>"
    )


# ------------------------------------------------------------------- plots
class _Plots:
    """Figures as embedded ``<img>`` tags; matplotlib is imported on first use."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ConfigError(
                "the report needs matplotlib, an optional dependency: "
                "pip install 'sessionrec[report]'"
            ) from None
        self._figure = Figure
        # tab10 as hex: the same model keeps its colour in every plot
        self.colors = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
        ]  # fmt: skip

    def color(self, i: int) -> str:
        return self.colors[i % len(self.colors)]

    def new(self, rows: int = 1, cols: int = 1, height: float = 4.0) -> tuple[Figure, Any]:
        fig = self._figure(figsize=(8.0, height * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        return fig, axes

    def embed(self, fig: Figure, alt: str) -> str:
        buffer = io.BytesIO()
        # no Software/date metadata: the same results give byte-identical images
        fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<figure><img alt="{_esc(alt)}" src="data:image/png;base64,{encoded}"></figure>'

    def _legend(self, fig: Figure, ax: Axes) -> None:
        """One legend above the plots, where it never hides a bar or a line."""
        handles, labels = ax.get_legend_handles_labels()
        if handles and (len(self.labels) > 1 or len(handles) > 1):
            fig.legend(
                handles,
                labels,
                loc="outside upper center",
                ncols=min(len(handles), 5),
                fontsize="small",
                frameon=False,
            )

    def curve(self, data: Sequence[dict[str, Any]], key: str, title: str) -> str:
        fig, axes = self.new()
        ax = axes[0, 0]
        for i, (label, d) in enumerate(zip(self.labels, data, strict=True)):
            values = [np.nan if v is None else float(v) for v in d["curves"][key]]
            ks = np.arange(1, len(values) + 1)
            ax.plot(ks, values, label=label, color=self.color(i), linewidth=1.8)
        ax.set_xlabel("K (list length)")
        ax.set_ylabel(f"{key.upper()}@K (%)")
        ax.set_title(title)
        ax.set_xlim(1, MAX_K)
        ax.axvline(REPORT_K, color="#999999", linewidth=0.8, linestyle=":")
        ax.grid(alpha=0.3)
        self._legend(fig, ax)
        return self.embed(fig, f"{key.upper()}@K curves")

    def by_length(self, data: Sequence[dict[str, Any]]) -> str:
        fig, axes = self.new(2, 1, height=3.2)
        groups = [g["label"] for g in data[0]["by_length"]["groups"]]
        counts = [g["n_cases"] for g in data[0]["by_length"]["groups"]]
        x = np.arange(len(groups))
        width = 0.8 / max(len(data), 1)
        k = data[0]["by_length"].get("k", REPORT_K)
        for row, key in enumerate(("hr", "mrr")):
            ax = axes[row, 0]
            for i, (label, d) in enumerate(zip(self.labels, data, strict=True)):
                values = [_number(g[key]) or 0.0 for g in d["by_length"]["groups"]]
                offset = (i - (len(data) - 1) / 2) * width
                ax.bar(x + offset, values, width, label=label, color=self.color(i))
            ax.set_xticks(x, [f"{g}\n(n={n})" for g, n in zip(groups, counts, strict=True)])
            ax.set_ylabel(f"{key.upper()}@{k} (%)")
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                ax.set_title("Accuracy by clicks before the target")
                self._legend(fig, ax)
        return self.embed(fig, "accuracy by session length")

    def beyond(self, data: Sequence[dict[str, Any]]) -> str:
        fig, axes = self.new(1, 2, height=max(2.5, 0.45 * len(data) + 1.5))
        y = np.arange(len(data))
        for col, (key, title) in enumerate(
            (("coverage", f"Coverage@{REPORT_K}"), ("popularity", f"Popularity@{REPORT_K}"))
        ):
            ax = axes[0, col]
            values = [_number((d.get("beyond_accuracy") or {}).get(key)) or 0.0 for d in data]
            ax.barh(y, values, color=[self.color(i) for i in range(len(data))])
            ax.set_yticks(y, self.labels if col == 0 else [""] * len(data))
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_title(title)
            ax.grid(axis="x", alpha=0.3)
        return self.embed(fig, "coverage and popularity bias")

    def training(self, data: Sequence[dict[str, Any]]) -> str:
        from matplotlib.ticker import MaxNLocator

        has_valid = any((d.get("history") or {}).get("valid") for d in data)
        fig, axes = self.new(1, 2 if has_valid else 1)
        metric_names = set()
        for i, (label, d) in enumerate(zip(self.labels, data, strict=True)):
            history = d.get("history")
            if not history or not history.get("loss"):
                continue
            loss = [np.nan if v is None else v for v in history["loss"]]
            epochs = np.arange(1, len(loss) + 1)
            axes[0, 0].plot(epochs, loss, marker="o", label=label, color=self.color(i))
            valid = history.get("valid")
            if has_valid and valid:
                values = [np.nan if v is None else v for v in valid]
                axes[0, 1].plot(epochs, values, marker="o", label=label, color=self.color(i))
                best = history.get("best_epoch")
                if best and 1 <= best <= len(values):
                    axes[0, 1].plot([best], [values[best - 1]], "*", markersize=14,
                                    color=self.color(i))  # fmt: skip
                metric_names.add(str(history.get("valid_metric")))
        axes[0, 0].set_title("Training loss")
        for ax in axes[0]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0, 0].set_xlabel("epoch")
        axes[0, 0].grid(alpha=0.3)
        self._legend(fig, axes[0, 0])
        if has_valid:
            axes[0, 1].set_title(f"Validation {', '.join(sorted(metric_names))} (star: kept epoch)")
            axes[0, 1].set_xlabel("epoch")
            axes[0, 1].grid(alpha=0.3)
        return self.embed(fig, "training curves")

    def latency(self, data: Sequence[dict[str, Any]]) -> str:
        fig, axes = self.new(1, 2)
        samples = [
            (i, label, np.asarray(d["latency"]["ms"], dtype=np.float64))
            for i, (label, d) in enumerate(zip(self.labels, data, strict=True))
            if d.get("latency") and d["latency"].get("ms")
        ]
        low = max(min(float(s.min()) for _, _, s in samples), 1e-4)
        high = max(float(s.max()) for _, _, s in samples)
        # log-spaced bins: models differ by orders of magnitude in speed
        bins = np.geomspace(low, max(high, low * 1.01), 60)
        for i, label, sample in samples:
            color = self.color(i)
            axes[0, 0].hist(sample, bins=bins, histtype="step", label=label, color=color)
            ordered = np.sort(sample)
            share = np.arange(1, ordered.size + 1) / ordered.size
            axes[0, 1].step(ordered, share, where="post", label=label, color=color)
        for ax in axes[0]:
            ax.set_xscale("log")
            ax.set_xlabel("milliseconds per request")
            ax.grid(alpha=0.3)
        axes[0, 0].set_title("Histogram")
        axes[0, 0].set_ylabel("requests")
        axes[0, 1].set_title("Cumulative share")
        for q in (0.5, 0.9, 0.99):
            axes[0, 1].axhline(q, color="#999999", linewidth=0.8, linestyle=":")
        self._legend(fig, axes[0, 1])
        return self.embed(fig, "latency distribution")


# ----------------------------------------------------------------- helpers
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _params_text(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return "defaults"
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


_STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; padding: 0.75rem; max-width: 62rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; margin: 0.5rem 0; }
h2 { font-size: 1.2rem; margin: 1.6rem 0 0.5rem; border-bottom: 1px solid #ddd; }
nav { font-size: 0.9rem; margin: 0.5rem 0 1rem; }
nav a { white-space: nowrap; }
figure { margin: 0.5rem 0; }
img { max-width: 100%; height: auto; display: block; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25rem 0.5rem; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; }
tbody th { text-align: left; }
.note, .meta { color: #555; font-size: 0.85rem; }
.warn { background: #fff3cd; border: 1px solid #e0b400; padding: 0.25rem 0.75rem; }
code { font-size: 0.85em; overflow-wrap: anywhere; white-space: normal; }
@media (max-width: 600px) { body { font-size: 14px; padding: 0.5rem; } }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""
