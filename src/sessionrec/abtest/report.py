"""The A/B report: a text summary and a self-contained HTML page of an :func:`analyze` dict.

The page follows the evaluation report's habits (:mod:`sessionrec.evaluation.report`): one
section per view with a stable id (:data:`SECTION_IDS`), matplotlib plots embedded as PNG
``data:`` URIs by :class:`~sessionrec.evaluation.report_plots.ReportPlots` (the ``report``
extra), nothing fetched from outside the file.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec._atomic import atomic_file
from sessionrec.evaluation.report import PAGE
from sessionrec.evaluation.report_plots import ReportPlots

SECTION_IDS: tuple[str, ...] = ("srm", "metrics", "intervals", "sequential")


# ------------------------------------------------------------------ text
def summary_lines(analysis: dict[str, Any]) -> list[str]:
    """The analysis as plain text lines (the CLI prints them)."""
    alpha = analysis["alpha"]
    level = f"{100 * (1 - alpha):g}%"
    counts = ", ".join(f"{name} {n}" for name, n in analysis["variants"].items())
    srm = analysis["srm"]
    lines = [
        f"{analysis['sessions']} sessions ({counts}); control '{analysis['control']}'",
        f"sample ratio: chi2 {srm['chi2']:.2f}, p {srm['p_value']:.3g}"
        + (" -- MISMATCH: the split is broken, do not trust the numbers" if srm["mismatch"]
           else " (ok)"),
    ]  # fmt: skip
    traffic = _traffic_text(analysis["traffic"])
    if traffic:
        lines.append(traffic)
    for block in analysis["metrics"]:
        lines.append(f"{block['metric']}:")
        for row in block["rows"]:
            text = (
                f"  {row['variant']:<12} {_num(row['estimate'])}  "
                f"{level} CI {_pair(row['ci'])}  (n={row['n']})"
            )
            if "uplift" in row:
                text += (
                    f"  uplift {_pct(row['uplift'])} {level} CI {_pct_pair(row['uplift_ci'])}"
                    f"  p {row['p_value']:.3g}"
                )
            lines.append(text)
    for seq in analysis["sequential"]:
        text = (
            f"sequential {seq['metric']} {seq['variant']}: always-valid p "
            f"{seq['p_always_valid']:.3g}, mSPRT "
            + (f"significant at {_when(seq['msprt_stop'])}" if seq["msprt_stop"] else "running")
        )
        if "spending" in seq:
            text += f"; {seq['spending']} boundary " + (
                f"crossed at {_when(seq['spending_stop'])}"
                if seq["spending_stop"]
                else "not crossed"
            )
        lines.append(text)
    return lines


def _traffic_text(traffic: dict[str, Any]) -> str:
    if traffic["sessions_per_day"] is None:
        return ""
    text = (
        f"traffic: {traffic['sessions_per_day']:.0f} sessions a day over {traffic['days']:.2f} days"
    )
    if "reached" in traffic:
        text += f"; {100 * traffic['reached']:.0f}% of the planned sessions"
        if traffic["days_left"] is not None:
            text += f", about {traffic['days_left']:.1f} more days at this pace"
    return text


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _pair(pair: list[float] | None) -> str:
    return "n/a" if pair is None else f"[{pair[0]:.4g}, {pair[1]:.4g}]"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}%"


def _pct_pair(pair: list[float] | None) -> str:
    return "n/a" if pair is None else f"[{100 * pair[0]:+.2f}%, {100 * pair[1]:+.2f}%]"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------ HTML
def build_html(analysis: dict[str, Any], title: str = "A/B test report") -> str:
    """One self-contained HTML page of the analysis."""
    plots = ReportPlots(list(analysis["variants"]))
    body = [
        f"<h1>{_esc(title)}</h1>",
        _meta(analysis),
        "<nav>" + " · ".join(f'<a href="#{sid}">{sid}</a>' for sid in SECTION_IDS) + "</nav>",
        _srm_section(analysis),
        _metrics_section(analysis),
        _intervals_section(plots, analysis),
        _sequential_section(plots, analysis),
    ]
    return PAGE.format(title=_esc(title), style=_STYLE, body="\n".join(body))


def write_html(
    analysis: dict[str, Any], output: str | Path, title: str = "A/B test report"
) -> Path:
    page = build_html(analysis, title)
    with atomic_file(output) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(output)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _meta(analysis: dict[str, Any]) -> str:
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<p class="meta">{analysis["sessions"]} sessions from {_when(analysis["first_seen"])} '
        f"to {_when(analysis['last_seen'])}; control <code>{_esc(analysis['control'])}</code>; "
        f"intervals at {100 * (1 - analysis['alpha']):g}% (session level: normal, ratio "
        f"metrics by the delta method, Wilson for shares of sessions). "
        f"{_esc(_traffic_text(analysis['traffic']).capitalize())}. Built {built}.</p>"
    )


def _srm_section(analysis: dict[str, Any]) -> str:
    srm = analysis["srm"]
    rows = "".join(
        f"<tr><th>{_esc(name)}</th><td>{n}</td><td>{srm['expected'][name]:.1f}</td></tr>"
        for name, n in srm["observed"].items()
    )
    verdict = (
        '<p class="warn">Sample-ratio mismatch: the sessions are not split as configured '
        "(assignment or logging is broken); the comparisons below are not to be trusted.</p>"
        if srm["mismatch"]
        else '<p class="note">The split matches the configured weights.</p>'
    )
    return (
        '<section id="srm"><h2>Sample ratio</h2><div class="scroll"><table>'
        "<thead><tr><th>variant</th><th>sessions</th><th>expected</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
        f"<p>chi-square {srm['chi2']:.2f}, p = {srm['p_value']:.3g} (mismatch below "
        f"{srm['threshold']:g})</p>{verdict}</section>"
    )


def _metrics_section(analysis: dict[str, Any]) -> str:
    parts = ['<section id="metrics"><h2>Metrics</h2>']
    for block in analysis["metrics"]:
        rows = []
        for row in block["rows"]:
            cells = [
                f"<th>{_esc(row['variant'])}</th>",
                f"<td>{row['n']}</td>",
                f"<td>{_num(row['estimate'])}</td>",
                f"<td>{_pair(row['ci'])}</td>",
            ]
            if "uplift" in row:
                cells += [
                    f"<td>{_pct(row['uplift'])}</td>",
                    f"<td>{_pct_pair(row['uplift_ci'])}</td>",
                    f"<td>{row['p_value']:.3g}</td>",
                ]
            else:
                cells += ['<td class="na">control</td>', "<td></td>", "<td></td>"]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(
            f'<h3>{_esc(block["label"])}</h3><div class="scroll"><table>'
            "<thead><tr><th>variant</th><th>sessions</th><th>estimate</th><th>interval</th>"
            "<th>uplift</th><th>uplift interval</th><th>p (fixed horizon)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    parts.append(
        '<p class="note">The fixed-horizon p-value is valid only if this is the one planned '
        "look; for a pilot looked at along the way read the sequential tests.</p></section>"
    )
    return "".join(parts)


def _intervals_section(plots: ReportPlots, analysis: dict[str, Any]) -> str:
    blocks = analysis["metrics"]
    fig, axes = plots.new(len(blocks), 1, height=max(1.2, 0.45 * len(plots.labels) + 0.9))
    for ax, block in zip(axes[:, 0], blocks, strict=True):
        for i, row in enumerate(block["rows"]):
            lo, hi = row["ci"]
            ax.errorbar(
                [row["estimate"]], [i], xerr=[[row["estimate"] - lo], [hi - row["estimate"]]],
                fmt="o", color=plots.color(i), capsize=4,
            )  # fmt: skip
        ax.set_yticks(range(len(block["rows"])), [r["variant"] for r in block["rows"]])
        ax.set_ylim(-0.6, len(block["rows"]) - 0.4)
        ax.invert_yaxis()
        ax.set_title(block["label"], fontsize="medium")
        ax.grid(axis="x", alpha=0.3)
    figure = plots.embed(fig, "estimates with their intervals")
    return f'<section id="intervals"><h2>Intervals</h2>{figure}</section>'


def _sequential_section(plots: ReportPlots, analysis: dict[str, Any]) -> str:
    tests = analysis["sequential"]
    rows = []
    for seq in tests:
        spending = (
            f"{_esc(seq['spending'])}: "
            + (_when(seq["spending_stop"]) if seq["spending_stop"] else "not crossed")
            if "spending" in seq
            else "(no plan given)"
        )
        rows.append(
            f"<tr><th>{_esc(seq['metric'])}</th><td>{_esc(seq['variant'])}</td>"
            f"<td>{len(seq['looks'])}</td><td>{seq['p_always_valid']:.3g}</td>"
            f"<td>{_when(seq['msprt_stop']) if seq['msprt_stop'] else 'not yet'}</td>"
            f"<td>{spending}</td></tr>"
        )
    table = (
        '<div class="scroll"><table><thead><tr><th>metric</th><th>variant</th><th>looks</th>'
        "<th>always-valid p</th><th>mSPRT significant</th><th>alpha-spending boundary</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    figure = ""
    if any(seq["looks"] for seq in tests):
        fig, axes = plots.new(1, 1)
        ax = axes[0, 0]
        start = analysis["first_seen"]
        for i, seq in enumerate(tests):
            if not seq["looks"]:
                continue
            hours = np.array([look["time"] - start for look in seq["looks"]]) / 3600
            p = [look["p_always_valid"] for look in seq["looks"]]
            ax.step(hours, p, where="post", color=plots.color(i),
                    label=f"{seq['metric']} ({seq['variant']})")  # fmt: skip
        ax.axhline(analysis["alpha"], color="#d62728", linewidth=0.9, linestyle="--")
        ax.set_yscale("log")
        ax.set_ylim(max(min(1e-4, analysis["alpha"] / 10), 1e-12), 1.05)
        ax.set_xlabel("hours since the first session")
        ax.set_ylabel("always-valid p (mSPRT)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", frameon=False)
        figure = plots.embed(fig, "always-valid p-values look by look")
    alpha = analysis["alpha"]
    return (
        '<section id="sequential"><h2>Sequential tests</h2>'
        f"<p>Looked at along the pilot; stopping at the first look with an always-valid p "
        f"below {alpha:g} keeps false positives under {alpha:g} however often one looks "
        "(mSPRT). The alpha-spending boundary spends exactly alpha by the planned number of "
        f"sessions.</p>{table}{figure}</section>"
    )


_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; padding: 0.75rem; max-width: 72rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1rem; margin: 1rem 0 0.3rem; }
img { max-width: 100%; height: auto; display: block; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25rem 0.5rem; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; }
tbody th { text-align: left; }
td.na { color: #888; }
.note, .meta { color: #555; font-size: 0.85rem; }
.warn { background: #fff3cd; border: 1px solid #e0b400; padding: 0.25rem 0.75rem; }
"""
