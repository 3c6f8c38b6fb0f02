"""Figures that read a layer against a baseline it must beat: the pixel baseline of every random target
(fig 10) and the exact information each layer carries beside MINE's estimate of it (fig 11).

* :func:`above_pixels` -- each layer's linear test accuracy *minus* the same probe's on the pooled input
  pixels (``ssl_ray.probes.baseline``), against the target randomness r, at the first and the last
  checkpoint. The random targets are functions of the pixels of very different smoothness, so raw
  accuracy against r mixes what the representation learned with how easy each target is; above the
  pixels, a layer's curve says what it adds. 0 is "no better than the pixels".
* :func:`information_over_training` -- ``mi_exact`` (the exact ``I(X; Z + sigma eps)``,
  ``ssl_ray.probes.information``) per layer over training, solid, beside ``mi_gaussian`` (Gaussian features
  of the same covariance: what the spectrum alone allows), dashed, and the cap ``1 / (2 noise^2)`` they can
  never pass; the gap between solid and dashed is what clustering takes away. MINE's estimate (mean ± its
  spread over seeds) is drawn where it is reliable; readings flagged ``mine_unreliable`` are not drawn, and
  the panel says how many there were.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import matplotlib.pyplot as plt  # noqa: E402  (after plotting, which selects the Agg backend)
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ssl_ray.reports.plotting import (
    aggregate,
    band,
    checkpoints,
    empty_panel,
    figure_grid,
    finish_figure,
    legend_rows,
    score_metric,
    seeds_note,
)
from ssl_ray.reports.source import SweepData, target_order


def randomness_of(target: str) -> Optional[float]:
    """r of a study target: ``random_<r>``; None for every other target."""
    return float(target.split("_", 1)[1]) if target.startswith("random_") else None


def random_targets(data: SweepData) -> List[str]:
    return sorted([t for t in data.targets if randomness_of(t) is not None], key=target_order)


def layer_colors(layers: List[str]) -> Dict[str, tuple]:
    cmap = plt.get_cmap("plasma")
    return {name: cmap(0.85 * i / max(1, len(layers) - 1)) for i, name in enumerate(layers)}


def curve(data: SweepData, trial_ids: List[str], layer: str, epoch: int, metric: str) -> pd.Series:
    """Mean over ``trial_ids`` of ``metric`` at ``(layer, epoch)``, per random target's r."""
    p = data.probes
    rows = p[p.trial_id.isin(trial_ids) & (p.layer == layer) & (p.epoch == epoch) & (p.metric == metric)]
    rows = rows[rows.target.map(lambda t: randomness_of(t) is not None)]
    return rows.assign(r=rows.target.map(randomness_of)).groupby("r").value.mean()


def pixel_curve(data: SweepData, metric: str, trial_ids: Optional[List[str]] = None) -> pd.Series:
    """The pixel baseline of every random target, per r."""
    return pd.Series(
        {randomness_of(t): data.pixel_baseline(t, metric, trial_ids) for t in random_targets(data)}, dtype=float
    ).sort_index()


def above_pixels(data: SweepData) -> Figure:
    metric = score_metric(data)
    groups = data.configs()
    layers = data.layers
    colors = layer_colors(layers)
    fig, axes = figure_grid(len(groups), width=5.0 if len(groups) > 1 else 6.4, height=3.8, cols=min(len(groups), 2))
    pixels = pixel_curve(data, metric)
    for ax, (c, trials) in zip(axes, groups.items()):
        ids = [t.trial_id for t in trials]
        epochs = sorted(data.probes.epoch[data.probes.trial_id.isin(ids)].unique())
        if pixels.dropna().empty or not epochs:
            empty_panel(ax, "no random_<r> targets with a pixel baseline in this sweep")
            continue
        for layer in layers:
            for e, style, alpha in ((epochs[0], ":", 0.55), (epochs[-1], "-", 1.0)):
                acc = curve(data, ids, layer, e, metric)
                diff = (acc - pixels).dropna()
                ax.plot(diff.index, diff.values, style, marker="o", ms=3, color=colors[layer], alpha=alpha)
        ax.axhline(0.0, color="k", lw=1.0)
        ax.set_title(f"{c} (N={len(trials)})" if len(trials) > 1 else c, fontsize=9)
        ax.set_xlabel("target randomness r (random_<r>)")
        ax.set_ylabel(f"{metric.split('_')[0]} test accuracy − pixel baseline", fontsize=8)
        ax.grid(alpha=0.3)
    drawn = [ax for ax in axes if ax.get_lines()]
    if drawn:  # one y scale for every panel: configurations compare by eye
        lo = min(ax.get_ylim()[0] for ax in drawn)
        hi = max(ax.get_ylim()[1] for ax in drawn)
        for ax in drawn:
            ax.set_ylim(lo, hi)
    handles = [Line2D([], [], color=colors[name], lw=2, label=name) for name in layers]
    handles += [
        Line2D([], [], color="k", ls=":", label="first checkpoint"),
        Line2D([], [], color="k", ls="-", label="last checkpoint"),
        Line2D([], [], color="k", lw=1.0, label="0: the pixels"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    return finish_figure(
        fig,
        f"What each layer adds over the pooled input pixels, against target randomness ({seeds_note(data)})",
        legend_rows(len(handles)),
    )


def _trial_values(data: SweepData, trial_ids: List[str], layer: str, metric: str) -> pd.DataFrame:
    p = data.probes
    rows = p[p.trial_id.isin(trial_ids) & (p.layer == layer) & (p.metric == metric)]
    if len(rows):
        return rows.pivot_table(index=["trial_id", "epoch"], values="value").value
    empty = pd.MultiIndex.from_arrays([[], []], names=["trial_id", "epoch"])  # groupby(level=...) works on it
    return pd.Series(dtype=float, index=empty)


def mine_points(data: SweepData, trial_ids: List[str], layer: str) -> Tuple[pd.DataFrame, int]:
    """MINE's reliable readings ``(epoch, mean, spread)`` at ``layer`` (mean over ``trial_ids`` of each trial's
    estimate; spread: the seeds' std, or the trials' where there are several), and how many were unreliable."""
    cols = {m: _trial_values(data, trial_ids, layer, m) for m in ("mine", "mine_std", "mine_unreliable")}
    if cols["mine"].empty:
        return pd.DataFrame(columns=["epoch", "mean", "spread"]), 0
    frame = pd.DataFrame(cols).reset_index()
    bad = frame.mine_unreliable.fillna(1.0) > 0
    good = frame[~bad]
    rows = []
    for e, g in good.groupby("epoch"):
        spread = g.mine.std(ddof=1) if len(g) > 1 else float(g.mine_std.iloc[0])
        rows.append((e, g.mine.mean(), spread))
    return pd.DataFrame(rows, columns=["epoch", "mean", "spread"]), int(bad.sum())


def information_over_training(data: SweepData) -> Figure:
    groups = data.configs()
    layers = data.layers
    colors = layer_colors(layers)
    fig, axes = figure_grid(len(groups), width=5.0 if len(groups) > 1 else 6.4, height=3.8, cols=min(len(groups), 2))
    any_exact = False
    for ax, (c, trials) in zip(axes, groups.items()):
        ids = [t.trial_id for t in trials]
        unreliable = total = 0
        for layer in layers:
            for metric, style in (("mi_exact", "-"), ("mi_gaussian", "--")):
                series = [
                    (v.index.get_level_values("epoch").to_numpy(), v.to_numpy())
                    for _, v in _trial_values(data, ids, layer, metric).groupby(level="trial_id")
                ]
                if series:
                    any_exact = True
                    band(ax, *aggregate(series), colors[layer], style=style, marker="")
            pts, bad = mine_points(data, ids, layer)
            unreliable, total = unreliable + bad, total + bad + len(pts)
            if len(pts):
                ax.errorbar(pts.epoch, pts["mean"], yerr=pts.spread, fmt="o", ms=5, color=colors[layer], capsize=3)
        if not any_exact:
            empty_panel(ax, "no information readings (probe.metrics without 'information')")
            continue
        noise = {t.params.get("probe.mine_noise") for t in trials} - {None}
        if len(noise) == 1:
            ax.axhline(1 / (2 * float(noise.pop()) ** 2), color="grey", ls=":", lw=1.0)
        ax.set_title(
            f"{c}: MINE unreliable at {unreliable} of {total} readings (not drawn)" if total else c, fontsize=9
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[name], lw=2, label=name) for name in layers]
    handles += [
        Line2D([], [], color="k", lw=2, label="exact I(X; Z + σε)"),
        Line2D([], [], color="k", lw=1.5, ls="--", label="Gaussian features, same covariance"),
        Line2D([], [], color="grey", lw=1.0, ls=":", label="cap 1/(2 noise²)"),
        Line2D([], [], color="k", marker="o", ls="", label="MINE, mean ± spread (reliable only)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    return finish_figure(
        fig,
        f"Information about the input that survives noise at each layer, exact and by MINE ({seeds_note(data)})",
        legend_rows(len(handles)),
        checkpoints(data),
    )
