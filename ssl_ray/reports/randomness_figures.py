"""The figures over the targets' randomness (Ben-Shaul et al., 2023, figures 4 and 9): how each target's accuracy
falls as its labels grow more random, and whether the class target clusters more than the most random one, over
training. Drawn from a :class:`~ssl_ray.reports.source.SweepData`, as every figure (``figures.py`` says how)."""

from __future__ import annotations

from typing import Optional

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ssl_ray.probes.target_names import CHANCE_CONTROL  # noqa: E402
from ssl_ray.reports.baseline_figures import pixel_curve, random_targets, randomness_of  # noqa: E402
from ssl_ray.reports.chance import CHANCE_COLOR, chance_levels, chance_line  # noqa: E402
from ssl_ray.reports.layer_figures import pick_epochs  # noqa: E402
from ssl_ray.reports.plotting import (  # noqa: E402
    aggregate,
    band,
    checkpoint_colors,
    checkpoints,
    config_colors,
    empty_panel,
    figure_grid,
    finish_figure,
    legend_rows,
    log_axis,
    score_metric,
    seeds_note,
    trial_legend,
    trial_series,
)
from ssl_ray.reports.source import SweepData  # noqa: E402

# 4 ------------------------------------------------------------------------------------------------


def accuracy_vs_randomness(data: SweepData, layer: str) -> Figure:
    """The study's Fig. 4 question: linear accuracy (test solid, train dashed) against the randomness r
    of the ``random_<r>`` targets (a supervised classifier's labels over its training: r = 1 its
    untrained network, r = 0 trained), one line per checkpoint (five of them, first to last), one panel per
    configuration, two to a row (mean over seeds, error bars = std where there are several). The true
    classes are the star at r = 0; the red dotted line is the chance control ``permuted_1.0`` (labels
    permuted: what no representation can predict), the dashed one chance, 1/K; the black dash-dotted line
    is the pixel baseline, the same probe on the pooled input pixels (the hollow star: the classes from
    the pixels). How high a line sits above the pixels, not its shape alone, is what the layer learned:
    the targets differ in how smooth a function of the input they are (fig 10 subtracts the baseline)."""
    metric = score_metric(data)
    train_metric = metric.replace("_test", "_train")
    targets = random_targets(data)
    groups = data.configs()
    fig, axes = figure_grid(len(groups), width=6.0 if len(groups) > 1 else 7.0, height=4.4, cols=min(len(groups), 2))
    at_layer = data.probes[data.probes.layer == layer]
    epochs = pick_epochs(at_layer.epoch.unique())
    colors = checkpoint_colors(epochs)
    chance = chance_levels(data).get("class")
    for ax, (c, trials) in zip(axes, groups.items()):
        ids = [t.trial_id for t in trials]
        mine = at_layer[at_layer.trial_id.isin(ids)]
        if not targets:
            ax.text(
                0.5,
                0.5,
                "no random_<r> targets in this sweep:\nthe true classes and the chance control only",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=9,
                color="grey",
            )
        for e in epochs:
            at = mine[mine.epoch == e]
            for m, style, alpha in ((metric, "-", 1.0), (train_metric, "--", 0.6)):
                rows = at[(at.metric == m) & at.target.isin(targets)]
                g = rows.assign(x=rows.target.map(randomness_of)).groupby("x").value
                if not len(g.mean()):
                    continue
                if len(trials) > 1:  # error bars only where seeds give a spread
                    ax.errorbar(
                        g.mean().index,
                        g.mean(),
                        yerr=g.std(ddof=1).fillna(0.0),
                        fmt=style,
                        marker="o",
                        ms=4,
                        color=colors[e],
                        alpha=alpha,
                        capsize=2,
                    )
                else:
                    ax.plot(g.mean().index, g.mean(), style, marker="o", ms=4, color=colors[e], alpha=alpha)
            cls = at[(at.metric == metric) & (at.target == "class")].value
            if len(cls):
                ax.plot([0.0], [cls.mean()], marker="*", ms=11, color=colors[e], mec="k", mew=0.5, ls="")
        control = mine[(mine.metric == metric) & (mine.target == CHANCE_CONTROL)].value
        if len(control):
            ax.axhline(control.mean(), color="tab:red", ls=":", lw=1.2)
        pixels = pixel_curve(data, metric, ids).dropna()
        if len(pixels):
            ax.plot(pixels.index, pixels.values, "-.", marker="x", ms=5, color="k", lw=1.4)
            ax.plot([0.0], [data.pixel_baseline("class", metric, ids)], marker="*", ms=11, ls="", mfc="none", color="k")
        ax.set_title(f"{c} (N={len(trials)})" if len(trials) > 1 else c, fontsize=10)
        ax.set_xlabel("target randomness r (random_<r>)")
        ax.set_ylabel(f"{metric.split('_')[0]} accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        chance_line(ax, chance)
    handles = [Line2D([], [], color=colors[e], marker="o", ms=4, lw=2, label=f"epoch {e}") for e in epochs]
    handles += [
        Line2D([], [], color="k", ls="-", label="test"),
        Line2D([], [], color="k", ls="--", label="train"),
        Line2D([], [], color="grey", marker="*", mec="k", ls="", ms=11, label="true classes (r = 0)"),
        Line2D([], [], color="k", ls="-.", marker="x", label="pixel baseline"),
        Line2D([], [], color="k", ls="", marker="*", mfc="none", ms=11, label="true classes from the pixels"),
        Line2D([], [], color="tab:red", ls=":", lw=1.2, label=f"chance control ({CHANCE_CONTROL})"),
        Line2D([], [], color=CHANCE_COLOR, ls=(0, (5, 3)), label="chance, 1/K"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    return finish_figure(
        fig,
        f"Accuracy against target randomness at {layer}, one line per checkpoint ({seeds_note(data)})",
        legend_rows(len(handles)),
    )


# 9 ------------------------------------------------------------------------------------------------


def semantic_over_random(data: SweepData, layer: str, random_target: Optional[str] = None) -> Figure:
    """The study's ratio figure: class NCC test accuracy divided by that of the most random ``random_<r>``
    target (the chance control ``permuted_1.0`` where a sweep has none), and class CDNV divided by its CDNV, over
    training (mean ± std over seeds). NCC ratio above 1
    and rising, CDNV ratio below 1 and falling: the embedding clusters by class more than by an
    arbitrary function of the input."""
    colors = config_colors(data)
    randoms = random_targets(data)
    # without random_<r> targets (no bank), the chance control stands in as the random target
    random_target = random_target or (
        randoms[-1] if randoms else CHANCE_CONTROL if CHANCE_CONTROL in data.targets else None
    )
    fig, (a, b) = figure_grid(2, width=5.4)
    if random_target is None:
        for ax in (a, b):
            empty_panel(ax, "no random_<r> or permuted targets in this sweep")
        return finish_figure(fig, "Semantic over random targets", 0)
    for ax, metric, title in ((a, "ncc_test", "NCC test accuracy"), (b, "cdnv", "CDNV")):
        for c, trials in data.configs().items():
            ratios = []
            for t in trials:
                xs, num = trial_series(data, t.trial_id, "class", metric, layer)
                xr, den = trial_series(data, t.trial_id, random_target, metric, layer)
                common = sorted(set(xs) & set(xr))
                num = dict(zip(xs, num))
                den = dict(zip(xr, den))
                ratios.append((np.array(common), np.array([num[e] / den[e] if den[e] else np.nan for e in common])))
            band(ax, *aggregate(ratios), colors[c])
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{title}: class ÷ {random_target}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("ratio")
        ax.grid(alpha=0.3)
    log_axis(b)
    trial_legend(fig, data, colors)
    return finish_figure(
        fig,
        f"Semantic over random targets at {layer} ({seeds_note(data)})",
        legend_rows(len(data.configs())),
        checkpoints(data),
    )
