"""The study's per-layer figures (5-8): accuracy at every layer, geometry over training, embeddings, and
the hyperparameter view. Shared pieces live in ``plotting.py``; ``figures.py`` is the one place to import."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ssl_ray.reports.source import short_name, UNUSABLE, SweepData, fmt_param  # noqa: E402
from ssl_ray.reports.tables import mean_std  # noqa: E402
from ssl_ray.reports.plotting import (GEOMETRY, accuracy_norm, LEVELS, _empty, _finish, _grid, _plot_configs, _rows_of_legend, _series, _trial_legend, aggregate, band, config_colors, config_series, note_figure, score_metric, seeds_note)  # noqa: E402,F401


# 5 ------------------------------------------------------------------------------------------------

def pick_epochs(epochs: Sequence[int], n: int = 5) -> List[int]:
    epochs = sorted(set(int(e) for e in epochs))
    if len(epochs) <= n:
        return epochs
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, n)).astype(int))
    return [epochs[i] for i in idx]


def accuracy_per_layer(data: SweepData, best: str) -> Figure:
    """Class and superclass accuracy at every layer, at several checkpoints of the best trial: where in the
    network, and when, each grouping is learned."""
    metric = score_metric(data)
    layers = data.layers
    has_super = "superclass" in data.targets
    fig, axes = _grid(2 if has_super else 1, width=4.8)
    rows = data.probes[(data.probes.trial_id == best) & (data.probes.metric == metric)]
    epochs = pick_epochs(rows.epoch.unique())
    cmap = plt.get_cmap("viridis")
    xs = np.arange(len(layers))

    def values(target: str, e: int) -> np.ndarray:
        r = rows[(rows.target == target) & (rows.epoch == e)].set_index("layer").value
        return np.array([r.get(name, np.nan) for name in layers], dtype=float)

    panels = [("class", "class"), ("superclass", "superclass")] if has_super else [("class", "class")]
    for ax, (target, title) in zip(axes, panels):
        for i, e in enumerate(epochs):
            ax.plot(xs, values(target, e), marker="o", ms=3, color=cmap(i / max(1, len(epochs) - 1)), label=f"epoch {e}")
        ax.set_title(f"{title} {metric.replace('_', ' ')}")
        ax.set_ylabel("accuracy")
    for ax in axes:
        ax.set_xticks(xs, layers, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # one legend, below the panels: none covers a line
    fig.legend(handles, labels, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    return _finish(fig, f"Accuracy per layer over training, best trial ({data.trial(best).label})",
                   _rows_of_legend(len(handles)))


# 6 ------------------------------------------------------------------------------------------------

def geometry_over_training(data: SweepData, layer: str) -> Figure:
    """CDNV (class-distance normalized variance) and the label-free geometry metrics over training."""
    have = set(data.probes.metric[data.probes.target == "class"])
    panels = [(m, title) for m, title in GEOMETRY if m in have]
    colors = config_colors(data)
    fig, axes = _grid(max(1, len(panels)), width=4.2, cols=min(max(1, len(panels)), 4))
    if not panels:
        _empty(axes[0], "no CDNV or geometry probes in this sweep")
    for ax, (metric, title) in zip(axes, panels):
        _plot_configs(ax, data, colors, "class", metric, layer)
        if metric == "cdnv":
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    _trial_legend(fig, data, colors)
    return _finish(fig, f"Clustering geometry over training at {layer} ({seeds_note(data)})",
                   _rows_of_legend(len(data.configs())))


# 7 ------------------------------------------------------------------------------------------------

def embeddings(points: Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]], title: str,
               class_names: Optional[Dict[str, List[str]]] = None) -> Figure:
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
            if names and k <= 20:
                handles = [Line2D([], [], ls="", marker="o", ms=4, color=cmap(v % cmap.N), label=names[v]) for v in range(k)]
                ax.legend(handles=handles, fontsize=6, ncol=2 if k > 5 else 1, loc="best", markerscale=1, framealpha=0.6)
            ax.set_title(f"{r}: colored by {level}" + (f" ({k} images' views)" if level == "sample" else ""), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("t-SNE 1")
            ax.set_ylabel("t-SNE 2")
    return _finish(fig, title, 0)


# 8 ------------------------------------------------------------------------------------------------

def _numeric(values: Sequence[str]) -> Optional[np.ndarray]:
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError):
        return None


def hyperparameter_view(data: SweepData, layer: str, axes_keys: Sequence[str]) -> Figure:
    """A class probe metric at each trial's last checkpoint against the hyperparameters: a heatmap over the
    first two that vary (mean over the others), and parallel coordinates over all of ``axes_keys``."""
    metric = score_metric(data)
    vals = {t.trial_id: math.nan if t.status in UNUSABLE else data.final(t.trial_id, "class", metric, layer)
            for t in data.trials}  # a diverged or collapsed trial's last probe is not its result
    fig, (a, b) = _grid(2, width=5.6, height=4.2)
    varied = [k for k in data.varied if k in axes_keys] or list(data.varied)
    label = f"class {metric.replace('_', ' ')} at {layer}"
    if len(varied) >= 2:
        kx, ky = varied[0], varied[1]
        xs = sorted({t.params.get(kx) for t in data.trials}, key=_sort_key)
        ys = sorted({t.params.get(ky) for t in data.trials}, key=_sort_key)
        grid = np.full((len(ys), len(xs)), np.nan)
        status: Dict[Tuple[int, int], str] = {}
        spread: Dict[Tuple[int, int], Tuple[float, int]] = {}
        for i, yv in enumerate(ys):
            for j, xv in enumerate(xs):
                cell = [t for t in data.trials if t.params.get(kx) == xv and t.params.get(ky) == yv]
                mean, sd, n = mean_std([vals[t.trial_id] for t in cell])
                if n:
                    grid[i, j] = mean
                    spread[(i, j)] = (sd, n)
                elif cell:
                    status[(i, j)] = "/".join(sorted({t.status for t in cell}))
        norm = accuracy_norm(grid)
        im = a.imshow(grid, cmap="viridis", origin="lower", aspect="auto", norm=norm)
        for i in range(len(ys)):
            for j in range(len(xs)):
                if not np.isnan(grid[i, j]):
                    sd, n = spread[(i, j)]
                    a.text(j, i, f"{grid[i, j]:.3f}" + (f"\n±{sd:.3f} (N={n})" if n > 1 else ""), ha="center", va="center",
                           fontsize=9,
                           color="white" if norm(grid[i, j]) < 0.5 else "black")
                elif (i, j) in status:
                    a.text(j, i, status[(i, j)], ha="center", va="center", fontsize=9, color="red")
        a.set_xticks(range(len(xs)), [fmt_param(v) for v in xs])
        a.set_yticks(range(len(ys)), [fmt_param(v) for v in ys])
        a.set_xlabel(short_name(kx))
        a.set_ylabel(short_name(ky))
        fig.colorbar(im, ax=a, label=label)
        a.set_title(f"{label}, by {short_name(kx)} and {short_name(ky)}", fontsize=9)
    elif len(varied) == 1:  # one point per configuration: the mean over its seeds, ± one std, and N
        k = varied[0]
        groups = list(data.configs().values())
        xs = np.arange(len(groups))
        for x, trials in zip(xs, groups):
            mean, sd, n = mean_std([vals[t.trial_id] for t in trials])
            if n:
                a.errorbar([x], [mean], yerr=[sd], fmt="o", ms=6, capsize=4, color="tab:blue")
                a.annotate(f"{mean:.3f}" + (f" ± {sd:.3f}\nN={n}" if n > 1 else ""), (x, mean),
                           textcoords="offset points", xytext=(8, -4), fontsize=7)
            else:
                a.annotate("/".join(sorted({t.status for t in trials})), (x, 0.5), xycoords=("data", "axes fraction"),
                           ha="center", color="red", fontsize=8)
        a.set_xticks(xs, [fmt_param(trials[0].params.get(k, "")) for trials in groups], fontsize=8)
        a.set_xlim(-0.5, len(groups) - 0.3)
        a.set_ylabel(label)
        a.set_xlabel(short_name(k))
        a.grid(alpha=0.3)
        a.set_title(f"{label}, by {short_name(k)} (mean ± std over seeds)", fontsize=9)
    else:
        _empty(a, "no hyperparameter varies between the trials")
    present = [k for k in list(varied) + list(axes_keys) if any(k in t.params for t in data.trials)]
    keys = [k for k in dict.fromkeys(present) if len({t.params.get(k) for t in data.trials}) > 1] or varied
    _parallel(b, data, keys, vals, label)
    return _finish(fig, "Probe accuracy across trials against the hyperparameters", 0)


def _sort_key(v):
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _parallel(ax, data: SweepData, keys: Sequence[str], vals: Dict[str, float], label: str) -> None:
    """Parallel coordinates: one axis per hyperparameter and one for the metric, each scaled to [0, 1]."""
    cols = list(keys) + [label]
    table = []
    for k in keys:
        raw = [t.params.get(k, "") for t in data.trials]
        num = _numeric(raw)
        if num is None:  # categorical: evenly spaced in sorted order
            levels = sorted(set(raw), key=_sort_key)
            num = np.array([levels.index(v) for v in raw], dtype=float)
        table.append(num)
    table.append(np.array([vals[t.trial_id] for t in data.trials], dtype=float))
    arr = np.array(table)
    lo, hi = np.nanmin(arr, axis=1, keepdims=True), np.nanmax(arr, axis=1, keepdims=True)
    scaled = np.where(hi > lo, (arr - lo) / np.where(hi > lo, hi - lo, 1), 0.5)
    metric = arr[-1]
    norm = accuracy_norm(metric)
    cmap = plt.get_cmap("viridis")
    xs = np.arange(len(cols))
    for j, t in enumerate(data.trials):
        ax.plot(xs, scaled[:, j], marker="o", color=cmap(norm(metric[j])) if np.isfinite(metric[j]) else "grey", lw=2)
    for i in range(len(cols)):
        ax.axvline(i, color="grey", lw=0.6)
        ax.text(i, -0.08, f"{_fmt_num(arr[i].min())}", ha="center", va="top", fontsize=7)
        ax.text(i, 1.08, f"{_fmt_num(arr[i].max())}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [short_name(c) for c in cols[:-1]] + ["class acc."], fontsize=9)
    ax.set_yticks([])
    ax.set_ylim(-0.2, 1.2)
    ax.set_title("parallel coordinates (each axis min..max)", fontsize=9)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(sm, ax=ax, label=label)


def _fmt_num(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"
