"""The report's figures: matplotlib plots embedded in the page as PNG ``data:`` URIs.

matplotlib (the ``report`` extra) is imported when the first figure is made, so reading
and writing results files never needs it.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._errors import ConfigError
from sessionrec.evaluation.results import MAX_K, REPORT_K

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class ReportPlots:
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
        alt = html.escape(alt, quote=True)
        return f'<figure><img alt="{alt}" src="data:image/png;base64,{encoded}"></figure>'

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
                # no bar for a group without cases: 0 would read as every case missed
                values = [
                    (finite_number(g[key]) or 0.0) if g.get("n_cases") else np.nan
                    for g in d["by_length"]["groups"]
                ]
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
            values = [finite_number((d.get("beyond_accuracy") or {}).get(key)) or 0.0 for d in data]
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


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
