"""Figure 8: the class probe accuracy of every configuration against the hyperparameters. Each configuration
is read at its own best layer (``ssl_ray.reports.selection.config_layers``, the rule ``trials.md`` uses),
so a cell of the heatmap is the number of its row in ``trials.md``; colors span the values drawn."""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402  (after plotting, which selects the Agg backend)
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from ssl_ray.probes.choice import selection_metric
from ssl_ray.reports.chance import chance_levels, chance_line
from ssl_ray.reports.plotting import empty_panel, figure_grid, finish_figure, score_metric, seeds_note, span_norm
from ssl_ray.reports.selection import config_layers
from ssl_ray.reports.source import UNUSABLE, SweepData, fmt_param, short_name
from ssl_ray.reports.tables import mean_std

COLORBAR = dict(ticks=matplotlib.ticker.MaxNLocator(5), format="%.3f")  # a few readable ticks on a narrow span


def trial_values(data: SweepData, layer: Optional[str] = None) -> Tuple[Dict[str, float], Dict[str, str]]:
    """``({trial id: class test accuracy}, {trial id: the layer it is read at})``: at its configuration's best
    layer (or at ``layer``), at its last checkpoint; NaN for a diverged or collapsed trial (its last probe
    is not its result)."""
    metric = score_metric(data)
    best = config_layers(data, selection_metric(data.probes.metric))
    layers = {t.trial_id: layer or best[t.group][0] for t in data.trials}
    vals = {
        t.trial_id: math.nan if t.status in UNUSABLE else data.final(t.trial_id, "class", metric, layers[t.trial_id])
        for t in data.trials
    }
    return vals, layers


def hyperparameter_view(data: SweepData, layer: Optional[str], axes_keys: Sequence[str]) -> Figure:
    """A class probe metric at each trial's last checkpoint against the hyperparameters: a heatmap over the
    first two that vary (mean over the others), and parallel coordinates over all of ``axes_keys``. Each
    configuration is read at its own best layer; ``layer`` reads every one at that layer instead."""
    metric = score_metric(data)
    vals, layers = trial_values(data, layer)
    fig, (a, b) = figure_grid(2, width=5.8, height=4.4)
    varied = [k for k in data.varied if k in axes_keys] or list(data.varied)
    where = f"at {layer}" if layer else "at each configuration's best layer"
    label = f"class {metric.replace('_', ' ')}"
    if len(varied) >= 2:
        _heatmap(a, data, varied[0], varied[1], vals, layers, label)
    elif len(varied) == 1:
        _points(a, data, varied[0], vals, label)
    else:
        empty_panel(a, "no hyperparameter varies between the trials")
    present = [k for k in list(varied) + list(axes_keys) if any(k in t.params for t in data.trials)]
    keys = [k for k in dict.fromkeys(present) if len({t.params.get(k) for t in data.trials}) > 1] or varied
    _parallel(b, data, keys, vals, label)
    return finish_figure(
        fig, f"Class probe accuracy across configurations against the hyperparameters, {where} ({seeds_note(data)})", 0
    )


def _heatmap(ax, data: SweepData, kx: str, ky: str, vals: Dict[str, float], layers: Dict[str, str], label: str) -> None:
    """Mean over the trials of a cell (every seed, and the other hyperparameters); its layer under the value."""
    xs = sorted({t.params.get(kx) for t in data.trials}, key=_sort_key)
    ys = sorted({t.params.get(ky) for t in data.trials}, key=_sort_key)
    grid = np.full((len(ys), len(xs)), np.nan)
    notes: Dict[Tuple[int, int], str] = {}
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            cell = [t for t in data.trials if t.params.get(kx) == xv and t.params.get(ky) == yv]
            mean, sd, n = mean_std([vals[t.trial_id] for t in cell])
            if n:
                grid[i, j] = mean
                at = "/".join(sorted({layers[t.trial_id] for t in cell if not math.isnan(vals[t.trial_id])}))
                notes[(i, j)] = f"{mean:.3f}" + (f" ± {sd:.3f}\n(N={n})" if n > 1 else "") + f"\n{at}"
            elif cell:
                notes[(i, j)] = "/".join(sorted({t.status for t in cell}))
    norm = span_norm(grid)
    im = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto", norm=norm)
    for (i, j), text in notes.items():
        value = grid[i, j]
        color = "red" if np.isnan(value) else "white" if norm(value) < 0.5 else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(len(xs)), [fmt_param(v) for v in xs])
    ax.set_yticks(range(len(ys)), [fmt_param(v) for v in ys])
    ax.set_xlabel(short_name(kx))
    ax.set_ylabel(short_name(ky))
    ax.figure.colorbar(im, ax=ax, label=label, **COLORBAR)
    ax.set_title(f"{label}, by {short_name(kx)} and {short_name(ky)}", fontsize=9)


def _points(ax, data: SweepData, k: str, vals: Dict[str, float], label: str) -> None:
    """One point per configuration: the mean over its seeds, ± one std where there are several, and N."""
    groups = list(data.configs().values())
    xs = np.arange(len(groups))
    for x, trials in zip(xs, groups):
        mean, sd, n = mean_std([vals[t.trial_id] for t in trials])
        if n > 1:
            ax.errorbar([x], [mean], yerr=[sd], fmt="o", ms=6, capsize=4, color="tab:blue")
        elif n:
            ax.plot([x], [mean], "o", ms=6, color="tab:blue")
        if n:
            ax.annotate(
                f"{mean:.3f}" + (f" ± {sd:.3f}\nN={n}" if n > 1 else ""),
                (x, mean),
                textcoords="offset points",
                xytext=(8, -4),
                fontsize=7,
            )
        else:
            ax.annotate(
                "/".join(sorted({t.status for t in trials})),
                (x, 0.5),
                xycoords=("data", "axes fraction"),
                ha="center",
                color="red",
                fontsize=8,
            )
    ax.set_xticks(xs, [fmt_param(trials[0].params.get(k, "")) for trials in groups], fontsize=8)
    ax.set_xlim(-0.5, len(groups) - 0.3)
    ax.set_ylabel(label)
    ax.set_xlabel(short_name(k))
    ax.grid(alpha=0.3)
    ax.set_title(f"{label}, by {short_name(k)}", fontsize=9)
    chance_line(ax, chance_levels(data).get("class"))


def _numeric(values: Sequence[str]) -> Optional[np.ndarray]:
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError):
        return None


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
    norm = span_norm(metric)
    cmap = plt.get_cmap("viridis")
    xs = np.arange(len(cols))
    for j in np.argsort(np.nan_to_num(metric, nan=-np.inf)):  # the best drawn last, on top
        ax.plot(xs, scaled[:, j], marker="o", color=cmap(norm(metric[j])) if np.isfinite(metric[j]) else "grey", lw=2)
    for i in range(len(cols)):
        ax.axvline(i, color="grey", lw=0.6)
        ax.text(i, -0.08, f"{_fmt_num(np.nanmin(arr[i]))}", ha="center", va="top", fontsize=7)
        ax.text(i, 1.08, f"{_fmt_num(np.nanmax(arr[i]))}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [short_name(c) for c in cols[:-1]] + ["class acc."], fontsize=9)
    ax.set_yticks([])
    ax.set_ylim(-0.2, 1.2)
    ax.set_title("parallel coordinates (each axis min..max; grey: diverged or collapsed)", fontsize=9)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(sm, ax=ax, label=label, **COLORBAR)


def _fmt_num(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"
