"""The study's per-layer figures (5-7): accuracy at every layer, geometry over training, and embeddings
(figure 8, the hyperparameter view, is ``hyperparameter_figure.py``). Shared pieces live in ``plotting.py``."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ssl_ray.reports.chance import chance_levels, chance_line  # noqa: E402
from ssl_ray.reports.plotting import (  # noqa: E402
    GEOMETRY,
    LEVELS,
    checkpoint_colors,
    checkpoints,
    config_colors,
    empty_panel,
    figure_grid,
    finish_figure,
    legend_rows,
    log_axis,
    plot_configs,
    score_metric,
    seeds_note,
    trial_legend,
)
from ssl_ray.reports.source import SweepData  # noqa: E402

# 5 ------------------------------------------------------------------------------------------------


def pick_epochs(epochs: Sequence[int], n: int = 5) -> List[int]:
    epochs = sorted(set(int(e) for e in epochs))
    if len(epochs) <= n:
        return epochs
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, n)).astype(int))
    return [epochs[i] for i in idx]


def accuracy_per_layer(data: SweepData, best: str) -> Figure:
    """Class and superclass accuracy at every layer, at several checkpoints of the best trial, and the
    superclass/class ratio: where in the network, and when, each grouping is learned, and where the coarser
    one leads (a ratio above 1: the superclasses are read better than the classes)."""
    metric = score_metric(data)
    layers = data.layers
    has_super = "superclass" in data.targets
    fig, axes = figure_grid(3 if has_super else 1, width=4.8)
    rows = data.probes[(data.probes.trial_id == best) & (data.probes.metric == metric)]
    epochs = pick_epochs(rows.epoch.unique())
    colors = checkpoint_colors(epochs)
    chance = chance_levels(data)
    xs = np.arange(len(layers))

    def values(target: str, e: int) -> np.ndarray:
        r = rows[(rows.target == target) & (rows.epoch == e)].set_index("layer").value
        return np.array([r.get(name, np.nan) for name in layers], dtype=float)

    what = metric.replace("_", " ")
    for ax, target in zip(axes, ["class", "superclass"] if has_super else ["class"]):
        for e in epochs:
            ax.plot(xs, values(target, e), marker="o", ms=3, color=colors[e], label=f"epoch {e}")
        ax.set_title(f"{target} {what}")
        ax.set_ylabel("accuracy")
        chance_line(ax, chance.get(target))
    if has_super:
        ax = axes[2]
        for e in epochs:
            ax.plot(xs, values("superclass", e) / values("class", e), marker="o", ms=3, color=colors[e])
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_title(f"superclass / class {what}")
        ax.set_ylabel("ratio (1: equal)")
    for ax in axes:
        ax.set_xticks(xs, layers, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    handles = [h for h in axes[0].get_lines() if h.get_label().startswith("epoch")]  # one legend, below the panels
    fig.legend(
        handles,
        [h.get_label() for h in handles],
        loc="lower center",
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
    )
    return finish_figure(
        fig,
        f"Accuracy per layer over training, best trial ({data.trial(best).label}; {seeds_note(data, one_trial=True)})",
        legend_rows(len(handles)),
    )


# 6 ------------------------------------------------------------------------------------------------


def geometry_over_training(data: SweepData, layer: str) -> Figure:
    """CDNV (class-distance normalized variance) and the label-free geometry metrics over training."""
    have = set(data.probes.metric[data.probes.target == "class"])
    panels = [(m, title) for m, title in GEOMETRY if m in have]
    colors = config_colors(data)
    fig, axes = figure_grid(max(1, len(panels)), width=4.2, cols=min(max(1, len(panels)), 4))
    if not panels:
        empty_panel(axes[0], "no CDNV or geometry probes in this sweep")
    for ax, (metric, title) in zip(axes, panels):
        plot_configs(ax, data, colors, "class", metric, layer)
        if metric == "cdnv":
            log_axis(ax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    trial_legend(fig, data, colors)
    return finish_figure(
        fig,
        f"Clustering geometry over training at {layer} ({seeds_note(data)})",
        legend_rows(len(data.configs())),
        checkpoints(data),
    )


# 7 ------------------------------------------------------------------------------------------------


def embeddings(
    points: Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]],
    title: str,
    class_names: Optional[Dict[str, List[str]]] = None,
) -> Figure:
    """2-D maps (t-SNE) of embeddings: rows are checkpoints (e.g. "before", "after"), columns the coloring
    level (sample, class, superclass). ``points[(row, level)] = (xy (N, 2), labels (N,))``."""
    rows = list(dict.fromkeys(r for r, _ in points))
    cols = [lv for lv in LEVELS if any(c == lv for _, c in points)]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 4.0 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j, level in enumerate(cols):
            ax = axes[i][j]
            if (r, level) not in points:
                ax.set_visible(False)
                continue
            xy, labels = points[(r, level)]
            k = int(labels.max()) + 1 if len(labels) else 1
            cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
            ax.scatter(xy[:, 0], xy[:, 1], c=[cmap(int(v) % cmap.N) for v in labels], s=6, linewidths=0)
            names = (class_names or {}).get(level)
            if names and k <= 20 and i == len(rows) - 1:  # once per column, where the clusters leave room
                handles = [
                    Line2D([], [], ls="", marker="o", ms=4, color=cmap(v % cmap.N), label=names[v]) for v in range(k)
                ]
                ax.legend(
                    handles=handles, fontsize=6, ncol=2 if k > 5 else 1, loc="best", markerscale=1, framealpha=0.6
                )
            ax.set_title(
                f"{r}: colored by {level}" + (f" ({k} images' views)" if level == "sample" else ""), fontsize=9
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("t-SNE 1")
            ax.set_ylabel("t-SNE 2")
    return finish_figure(fig, title, 0)
