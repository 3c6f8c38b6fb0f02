"""What every figure shares: configuration colors, the mean ± std band over seeds, grids, legends."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ssl_ray.reports.selection import reported_metric, selection_metric  # noqa: E402
from ssl_ray.reports.source import SweepData, Trial  # noqa: E402
LEVELS = ("sample", "class", "superclass")
GEOMETRY = [("cdnv", "class CDNV (log)"), ("within_var", "class within-class variance"), ("rankme", "RankMe"),
            ("participation_ratio", "participation ratio"), ("alpha", "eigenspectrum decay α"),
            ("manifold_radius", "class manifold radius"), ("manifold_dim", "class manifold dimension")]


def config_colors(data: SweepData) -> Dict[str, tuple]:
    configs = list(data.configs())
    cmap = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    return {c: cmap(i % cmap.N) for i, c in enumerate(configs)}


def score_metric(data: SweepData) -> str:
    """The test-split class accuracy a figure plots: the linear probe's, or NCC's without linear probes."""
    return reported_metric(selection_metric(data))


def seeds_note(data: SweepData) -> str:
    n = data.seeds_per_config()
    return (f"mean ± std over N={n} seeds per configuration" if n > 1
            else "one seed per configuration, no error bars; run with --seeds N")


def _grid(n: int, width: float = 4.6, height: float = 3.6, cols: Optional[int] = None) -> Tuple[Figure, List]:
    cols = cols or min(n, 3)
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _trial_legend(fig: Figure, data: SweepData, colors: Dict[str, tuple], extra: Sequence[Line2D] = ()) -> None:
    groups = data.configs()
    handles = [Line2D([], [], color=colors[c], lw=2, label=f"{c} (N={len(ts)})" if len(ts) > 1 else c)
               for c, ts in groups.items()] + list(extra)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))


def _finish(fig: Figure, title: str, legend_rows: int = 1) -> Figure:
    for ax in fig.axes:
        if ax.get_xlabel() == "epoch":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    import textwrap

    lines = textwrap.wrap(title, width=max(40, int(fig.get_figwidth() * 10)))  # a title never runs off the figure
    fig.suptitle("\n".join(lines), fontsize=12)
    fig.tight_layout(rect=(0, 0.05 + 0.03 * legend_rows, 1, 0.95 - 0.04 * (len(lines) - 1)))
    return fig


def accuracy_norm(values) -> "matplotlib.colors.Normalize":
    """A colour scale for accuracies from chance-like 0 to 1, widened only where values leave it: a spread of
    a few points stays a few points of colour, not the whole scale."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    lo = min(0.0, float(finite.min())) if len(finite) else 0.0
    hi = max(1.0, float(finite.max())) if len(finite) else 1.0
    return matplotlib.colors.Normalize(vmin=lo, vmax=hi)


def note_figure(title: str, note: str) -> Figure:
    """A figure that says why it has nothing to show."""
    fig, (ax,) = _grid(1)
    _empty(ax, note)
    return _finish(fig, title, 0)


def _series(data: SweepData, trial_id: str, target: str, metric: str, layer: str) -> Tuple[np.ndarray, np.ndarray]:
    rows = data.probe(target, metric, layer)
    rows = rows[rows.trial_id == trial_id]
    return rows.epoch.to_numpy(), rows.value.to_numpy()


def aggregate(per_trial: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, mean, std, n)`` over trials' ``(x, y)`` series, at every x any trial has (std 0 where n = 1)."""
    frame = pd.DataFrame([(x, y) for xs, ys in per_trial for x, y in zip(xs, ys)], columns=["x", "y"])
    if frame.empty:
        return (np.array([]),) * 4
    g = frame.groupby("x").y
    return (g.mean().index.to_numpy(), g.mean().to_numpy(), g.std(ddof=1).fillna(0.0).to_numpy(), g.count().to_numpy())


def config_series(data: SweepData, trials: Sequence[Trial], target: str, metric: str, layer: str):
    """A configuration's ``(epochs, mean, std, n)`` of one probe metric over its seeds."""
    return aggregate([_series(data, t.trial_id, target, metric, layer) for t in trials])


def band(ax, x, mean, std, n, color, style: str = "-", label: Optional[str] = None, marker: str = "o") -> None:
    """The mean as a line, and plus or minus one standard deviation as a band where several seeds agree."""
    ax.plot(x, mean, style, marker=marker, ms=3, color=color, label=label)
    if len(n) and n.max() > 1:
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0)


def _plot_configs(ax, data: SweepData, colors, target: str, metric: str, layer: str, style: str = "-") -> None:
    for c, trials in data.configs().items():
        band(ax, *config_series(data, trials, target, metric, layer), colors[c], style)


def _rows_of_legend(n: int) -> int:
    return math.ceil(n / 6)
