"""The HTML report that compares evaluation results files.

``sessionrec report FILE.json ... -o report.html`` turns several results files
(:mod:`sessionrec.evaluation.results`) into one self-contained HTML page
(:func:`build_report`, :func:`write_report`).

The page has one section per view, with stable ids (:data:`SECTION_IDS`). Plots are PNG
images made with matplotlib (the ``report`` extra) and embedded as ``data:`` URIs: the
file opens offline, references nothing outside itself and can be mailed as it is.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError
from sessionrec.data.reliability import small_test_warning
from sessionrec.evaluation.report_plots import ReportPlots, finite_number
from sessionrec.evaluation.results import MAX_K, REPORT_K, check_results, load_results

if TYPE_CHECKING:
    pass


log = logging.getLogger("sessionrec.evaluation.report")

SECTION_IDS: tuple[str, ...] = (
    "metrics",
    "hr-curve",
    "mrr-curve",
    "by-length",
    "coverage-popularity",
    "training",
    "latency",
)


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
            prepared.append((source, check_results(entry, source)))
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


def apply_labels(
    results: Sequence[tuple[str, dict[str, Any]]], labels: Sequence[str] | None
) -> list[tuple[str, dict[str, Any]]]:
    """The results with ``labels`` (``report --label``, in the order of the files) replacing
    their saved labels: the first label names the first result, and so on; results past the
    last label keep theirs."""
    labels = list(labels or [])
    if len(labels) > len(results):
        raise ConfigError(
            f"{len(labels)} --label values for {len(results)} results file(s): give at most "
            "one per file, in the order of the files"
        )
    for label in labels:
        if not label.strip():
            raise ConfigError("--label needs a non-empty name")
    named = [(source, dict(data)) for source, data in results]
    for (_, data), label in zip(named, labels, strict=False):
        data["label"] = label.strip()
    return named


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
    labels: Sequence[str] | None = None,
) -> str:
    """One self-contained HTML page comparing the given results (dicts or file paths).

    Results from different splits or tie policies are refused with a :class:`DataError`;
    with ``allow_mixed_splits`` the page is built with a warning at its top instead.
    ``labels`` name the results in the page (see :func:`apply_labels`); without them a
    result is shown by the label saved in its file (``evaluate --label``, else the model's
    name).
    """
    prepared = apply_labels(_prepare(results), labels)
    warnings = split_mismatches(prepared)
    if warnings and not allow_mixed_splits:
        raise DataError(
            "; ".join(warnings)
            + ": their numbers are not comparable (allow it with --allow-mixed-splits)"
        )
    for warning in warnings:
        log.warning("report: %s", warning)
    plt = ReportPlots(_labels(prepared))
    data = [d for _, d in prepared]
    body = [
        f"<h1>{_esc(title)}</h1>",
        _meta(prepared),
        _warnings(warnings),
        _small_tests(plt.labels, data),
        _nav(),
        _metrics_section(plt.labels, data),
        _curve_section(plt, data, "hr-curve", "hr", "HR@K (hit rate)"),
        _curve_section(plt, data, "mrr-curve", "mrr", "MRR@K (mean reciprocal rank)"),
        _length_section(plt, data),
        _beyond_section(plt, data),
        _training_section(plt, data),
        _latency_section(plt, data),
    ]
    return PAGE.format(title=_esc(title), style=_STYLE, body="\n".join(p for p in body if p))


def write_report(
    results: Sequence[dict[str, Any] | str | Path],
    output: str | Path,
    title: str = "Evaluation report",
    *,
    allow_mixed_splits: bool = False,
    labels: Sequence[str] | None = None,
) -> Path:
    """Build the report and write it to ``output`` atomically."""
    page = build_report(results, title, allow_mixed_splits=allow_mixed_splits, labels=labels)
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


def _small_tests(labels: Sequence[str], data: Sequence[dict[str, Any]]) -> str:
    """A warning naming the results measured on too few test cases to mean anything."""
    small = [
        f"<li><b>{_esc(label)}</b>: {_esc(warning)}</li>"
        for label, d in zip(labels, data, strict=True)
        if (warning := small_test_warning(int(d["n_cases"]))) is not None
    ]
    if not small:
        return ""
    return (
        '<section id="small-test" class="warn"><h2>Warning: too few test cases</h2>'
        f"<ul>{''.join(small)}</ul></section>"
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
            return finite_number(d["metrics"][key])
        name, _, k = key.partition("@")
        curve = d["curves"].get(name)
        if name in ("hr", "mrr", "ndcg") and curve and k.isdigit() and int(k) <= len(curve):
            return finite_number(curve[int(k) - 1])  # from the curve when not among the cutoffs
        return None

    best = {
        key: max((v for d in data if (v := value(d, key)) is not None), default=None)
        for _, key, higher in columns
        if higher
    }
    head = "".join(f"<th>{_header(h)}</th>" for h, _, _ in columns)
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
            f"<td>{_fmt(finite_number(timing.get('fit_seconds')), 2)}</td>"
            f"<td>{_fmt(finite_number(timing.get('predict_seconds')), 2)}</td>"
            f"<td>{_fmt(finite_number(latency.get('p50')), 3)}</td></tr>"
        )
    params = "".join(
        f"<li><b>{_esc(label)}</b> ({_esc(d['model'].get('class'))}): "
        f"<code>{_esc(_params_text(d['model'].get('params')))}</code></li>"
        for label, d in zip(labels, data, strict=True)
    )
    return (
        '<section id="metrics"><h2>Metrics</h2><div class="scroll"><table class="metrics">'
        f"<thead><tr><th>Model</th><th>Cases</th>{head}<th>Fit s</th><th>Eval s</th>"
        f"<th>p50 ms</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">Best accuracy in bold. Cov@20: share of the catalog shown in some '
        "top-20 list; Pop@20: mean popularity of the recommended items relative to the most "
        "clicked item (lower is less biased). Eval s: batched evaluation of every case; "
        "p50 ms: median single-session request.</p>"
        f"<details><summary>Hyperparameters</summary><ul>{params}</ul></details></section>"
    )


def _curve_section(
    plt: ReportPlots, data: Sequence[dict[str, Any]], sid: str, key: str, title: str
) -> str:
    image = plt.curve(data, key, title)
    name = key.upper()
    return (
        f'<section id="{sid}"><h2>{_esc(title)}</h2>{image}'
        f'<p class="note">{name}@K for K = 1..{MAX_K}, from the same ranks as the table.</p>'
        "</section>"
    )


def _length_section(plt: ReportPlots, data: Sequence[dict[str, Any]]) -> str:
    image = plt.by_length(data)
    groups = [g["label"] for g in data[0]["by_length"]["groups"]]
    head = "".join(f"<th>{_esc(g)}</th>" for g in groups)
    counts = "".join(f"<td>{g['n_cases']}</td>" for g in data[0]["by_length"]["groups"])
    rows = [f"<tr><th>cases</th>{counts}</tr>"]
    for label, d in zip(plt.labels, data, strict=True):
        cells = "".join(_length_cell(g) for g in d["by_length"]["groups"])
        rows.append(f"<tr><th>{_esc(label)}</th>{cells}</tr>")
    k = data[0]["by_length"].get("k", REPORT_K)
    return (
        f'<section id="by-length"><h2>Accuracy by session length</h2>{image}'
        f'<div class="scroll"><table><thead><tr><th>clicks before target</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">HR@{k} / MRR@{k} in percent by the number of clicks the model '
        "saw before the target; n/a where the test set has no such case.</p></section>"
    )


def _beyond_section(plt: ReportPlots, data: Sequence[dict[str, Any]]) -> str:
    image = plt.beyond(data)
    rows = []
    for label, d in zip(plt.labels, data, strict=True):
        beyond = d.get("beyond_accuracy") or {}
        rows.append(
            f"<tr><th>{_esc(label)}</th><td>{_fmt(finite_number(beyond.get('coverage')), 3)}</td>"
            f"<td>{_fmt(finite_number(beyond.get('popularity')), 3)}</td></tr>"
        )
    return (
        '<section id="coverage-popularity"><h2>Coverage and popularity bias</h2>'
        f'{image}<div class="scroll"><table><thead><tr><th>Model</th><th>Coverage@{REPORT_K}'
        f"</th><th>Popularity@{REPORT_K}</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        '</table></div><p class="note">Coverage: higher shows more of the catalog. '
        "Popularity: lower recommends less popular items.</p></section>"
    )


def _training_section(plt: ReportPlots, data: Sequence[dict[str, Any]]) -> str:
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
            f"<td>{_fmt(finite_number(sum(s for s in seconds if s is not None)), 1)}</td></tr>"
        )
    return (
        f'<section id="training"><h2>Training curves</h2>{image}'
        '<div class="scroll"><table><thead><tr><th>Model</th><th>Epochs</th>'
        f"<th>Best epoch</th><th>Train s</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        '</table></div><p class="note">Loss per epoch, and the validation metric where the '
        "model was trained with a validation split (never the test set).</p></section>"
    )


def _latency_section(plt: ReportPlots, data: Sequence[dict[str, Any]]) -> str:
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
            f"<td>{_fmt(finite_number(lat.get(key)), 3)}</td>"
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


# ----------------------------------------------------------------- helpers
def _header(text: str) -> str:
    """A column header that may wrap before its ``@K`` when the table needs the room."""
    return "<wbr>@".join(_esc(part) for part in text.split("@"))


def _length_cell(group: dict[str, Any]) -> str:
    """HR / MRR of a length group; ``n/a`` for a group without cases (0 would say missed)."""
    if not group.get("n_cases"):
        return '<td class="na">n/a</td>'
    hr, mrr = finite_number(group.get("hr")), finite_number(group.get("mrr"))
    return f"<td>{_fmt(hr, 1)} / {_fmt(mrr, 1)}</td>"


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
       margin: 0 auto; padding: 0.75rem; max-width: 72rem; color: #1b1b1b; }
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
/* The metrics table fits a 1280 px window: headers wrap before "@K", model names wrap. */
table.metrics { font-size: 0.8rem; }
table.metrics th, table.metrics td { padding: 0.2rem 0.35rem; }
table.metrics thead th { white-space: normal; vertical-align: bottom; }
table.metrics thead th:first-child { text-align: left; }
table.metrics tbody th { white-space: normal; overflow-wrap: anywhere; min-width: 6rem;
                         max-width: 14rem; }
td.na { color: #888; }
.note, .meta { color: #555; font-size: 0.85rem; }
.warn { background: #fff3cd; border: 1px solid #e0b400; padding: 0.25rem 0.75rem; }
code { font-size: 0.85em; overflow-wrap: anywhere; white-space: normal; }
@media (max-width: 600px) { body { font-size: 14px; padding: 0.5rem; } }
"""

# The page around every self-contained HTML report (this one and `sessionrec abtest report`).
PAGE = """<!DOCTYPE html>
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
