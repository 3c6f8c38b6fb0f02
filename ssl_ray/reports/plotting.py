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

from ssl_ray.probes.choice import reported_metric, selection_metric  # noqa: E402
from ssl_ray.reports.source import SweepData, Trial  # noqa: E402

LEVELS = ("sample", "class", "superclass")
GEOMETRY = [
    ("cdnv", "class CDNV (log)"),
    ("within_var", "class within-class variance"),
    ("rankme", "RankMe"),
    ("participation_ratio", "participation ratio"),
    ("alpha", "eigenspectrum decay α"),
    ("manifold_radius", "class manifold radius"),
    ("manifold_dim", "class manifold dimension"),
]
MAX_EPOCH_TICKS = 12  # more checkpoints than this: integer ticks instead of one per checkpoint


def config_colors(data: SweepData) -> Dict[str, tuple]:
    configs = list(data.configs())
    cmap = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    return {c: cmap(i % cmap.N) for i, c in enumerate(configs)}


def score_metric(data: SweepData) -> str:
    """The test-split class accuracy a figure plots: the linear probe's, or NCC's without linear probes."""
    return reported_metric(selection_metric(data.probes.metric))


def seeds_note(data: SweepData, one_trial: bool = False) -> str:
    """How many seeds stand behind each line; ``one_trial``: the figure draws one trial (the best seed)."""
    n = data.seeds_per_config()
    if n > 1:
        return (
            f"the best of N={n} seeds, no error bars" if one_trial else f"mean ± std over N={n} seeds per configuration"
        )
    return "one seed per configuration" + ("" if one_trial else ", no error bars") + "; run with --seeds N"


def checkpoints(data: SweepData) -> List[int]:
    """The probed epochs (every trial's together): an epoch axis's ticks."""
    return sorted({int(e) for e in data.probes.epoch.unique()})


def checkpoint_colors(epochs: Sequence[int]) -> Dict[int, tuple]:
    """One color per checkpoint, early cool to late warm (turbo: blue, cyan, green, orange, red), each one apart
    from the next, the last as much as the first."""
    cmap = plt.get_cmap("turbo")
    return {e: cmap(0.05 + 0.9 * i / max(1, len(epochs) - 1)) for i, e in enumerate(epochs)}


def figure_grid(n: int, width: float = 4.6, height: float = 3.6, cols: Optional[int] = None) -> Tuple[Figure, List]:
    cols = cols or min(n, 3)
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def empty_panel(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def trial_legend(fig: Figure, data: SweepData, colors: Dict[str, tuple], extra: Sequence[Line2D] = ()) -> None:
    groups = data.configs()
    handles = [
        Line2D([], [], color=colors[c], lw=2, label=f"{c} (N={len(ts)})" if len(ts) > 1 else c)
        for c, ts in groups.items()
    ] + list(extra)
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )


def finish_figure(fig: Figure, title: str, legend_rows: int = 1, epochs: Sequence[int] = ()) -> Figure:
    """Title and layout; an epoch axis is ticked at ``epochs`` (the checkpoints), or at integers where there
    are too many to label."""
    ticks = sorted({int(e) for e in epochs})
    for ax in fig.axes:
        if ax.get_xlabel() == "epoch" and 1 < len(ticks) <= MAX_EPOCH_TICKS:
            ax.set_xticks(ticks)
        elif ax.get_xlabel() == "epoch":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    import textwrap

    lines = textwrap.wrap(title, width=max(40, int(fig.get_figwidth() * 10)))  # a title never runs off the figure
    fig.suptitle("\n".join(lines), fontsize=12)
    # tight_layout makes room for the title itself; the legend below the panels takes inches, whatever the height
    fig.tight_layout(rect=(0, (0.07 + 0.2 * legend_rows) / fig.get_figheight(), 1, 1))
    return fig


def log_axis(ax) -> None:
    """A log y axis labelled in plain numbers at 1, 2 and 5 × 10^k (every digit where the data span less than a
    factor of 4), not in 10^x notation crowding each other; where a value is not positive, a symlog axis."""
    ys = [v for line in ax.get_lines() for v in np.asarray(line.get_ydata(), dtype=float) if np.isfinite(v)]
    if not ys or min(ys) <= 0:
        ax.set_yscale("symlog")
    else:
        ax.set_yscale("log")
        subs = (1.0, 2.0, 5.0) if max(ys) >= 4 * min(ys) else tuple(float(d) for d in range(1, 10))
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def span_norm(values) -> "matplotlib.colors.Normalize":
    """A colour scale from the smallest finite value to the largest: accuracies of 0.95 to 0.99 take the whole
    scale, not a few points of it (a single value: a scale of ±0.005 around it)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    return matplotlib.colors.Normalize(lo, hi) if hi > lo else matplotlib.colors.Normalize(lo - 0.005, hi + 0.005)


def note_figure(title: str, note: str) -> Figure:
    """A figure that says why it has nothing to show."""
    fig, (ax,) = figure_grid(1)
    empty_panel(ax, note)
    return finish_figure(fig, title, 0)


def trial_series(data: SweepData, trial_id: str, target: str, metric: str, layer: str) -> Tuple[np.ndarray, np.ndarray]:
    rows = data.probe(target, metric, layer)
    rows = rows[rows.trial_id == trial_id]
    return rows.epoch.to_numpy(), rows.value.to_numpy()


def aggregate(
    per_trial: Sequence[Tuple[np.ndarray, np.ndarray]],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, mean, std, n)`` over trials' ``(x, y)`` series, at every x any trial has (std 0 where n = 1)."""
    frame = pd.DataFrame([(x, y) for xs, ys in per_trial for x, y in zip(xs, ys)], columns=["x", "y"])
    if frame.empty:
        return (np.array([]),) * 4
    g = frame.groupby("x").y
    return (g.mean().index.to_numpy(), g.mean().to_numpy(), g.std(ddof=1).fillna(0.0).to_numpy(), g.count().to_numpy())


def config_series(data: SweepData, trials: Sequence[Trial], target: str, metric: str, layer: str):
    """A configuration's ``(epochs, mean, std, n)`` of one probe metric over its seeds."""
    return aggregate([trial_series(data, t.trial_id, target, metric, layer) for t in trials])


def band(ax, x, mean, std, n, color, style: str = "-", label: Optional[str] = None, marker: str = "o") -> None:
    """The mean as a line, and plus or minus one standard deviation as a band where several seeds agree."""
    ax.plot(x, mean, style, marker=marker, ms=3, color=color, label=label)
    if len(n) and n.max() > 1:
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0)


def plot_configs(ax, data: SweepData, colors, target: str, metric: str, layer: str, style: str = "-") -> None:
    for c, trials in data.configs().items():
        band(ax, *config_series(data, trials, target, metric, layer), colors[c], style)


def legend_rows(n: int) -> int:
    return math.ceil(n / 6)
