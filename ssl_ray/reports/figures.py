"""The study's figures, drawn from a :class:`~ssl_ray.reports.source.SweepData` (Ben-Shaul et al., 2023,
*Reverse Engineering Self-Supervised Learning*). Each function returns a matplotlib ``Figure``; none
reads MLflow or a checkpoint itself, so they are drawn the same from a live store or a test's tables.

Configurations (the hyperparameters that differ between trials) are colored alike in every figure. A
configuration run with several seeds is drawn as the mean over its seeds with a band of plus or minus
one standard deviation, and its legend entry says N; with one seed there is no band, and the figure
says so. "One layer" figures use the report layer (figure 8 reads each configuration at its own best
layer, as ``trials.md`` does) and "the best trial" is the best configuration's best seed, all chosen on
validation data (``ssl_ray.reports.selection``). Accuracy axes mark chance, 1/K (``chance.py``).

Here: the figures over training (1-3). The others live by what they read: ``randomness_figures.py`` the targets'
randomness (4, 9), ``layer_figures.py`` every layer (5-7), ``hyperparameter_figure.py`` the hyperparameters (8),
``baseline_figures.py`` a layer against its baselines (10-11), ``label_free.py`` RankMe (12); what they share,
``plotting.py``.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ssl_ray.reports.chance import chance_levels, chance_line  # noqa: E402
from ssl_ray.reports.plotting import (  # noqa: E402
    LEVELS,
    aggregate,
    band,
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
    trial_series,
)
from ssl_ray.reports.source import SweepData, short_name  # noqa: E402

# 1 ------------------------------------------------------------------------------------------------


def ncc_over_training(data: SweepData, layer: str) -> Figure:
    """NCC train (solid) and test (dashed) accuracy over training, at the sample, class and superclass levels."""
    levels = [lv for lv in LEVELS if lv in data.targets]
    colors = config_colors(data)
    chance = chance_levels(data)
    fig, axes = figure_grid(len(levels))
    for ax, level in zip(axes, levels):
        for metric, style in (("ncc_train", "-"), ("ncc_test", "--")):
            plot_configs(ax, data, colors, level, metric, layer, style)
        ax.set_title(f"{level} level")
        ax.set_xlabel("epoch")
        ax.set_ylabel("NCC accuracy")
        ax.grid(alpha=0.3)
        chance_line(ax, chance.get(level))
    styles = [Line2D([], [], color="k", ls="-", label="train"), Line2D([], [], color="k", ls="--", label="test")]
    trial_legend(fig, data, colors, styles)
    return finish_figure(
        fig,
        f"Nearest-class-center accuracy over training at {layer} ({seeds_note(data)})",
        legend_rows(len(data.configs()) + 2),
        checkpoints(data),
    )


# 2 ------------------------------------------------------------------------------------------------


def _normalized(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return (x, y / y[0]) if len(y) and y[0] != 0 else (x, y)


def ncc_linear_ratio(data: SweepData, layer: str, best: str) -> Figure:
    """NCC test accuracy / linear test accuracy (class), over training, divided by its value at the first
    checkpoint (initialization): how much of what a linear probe finds is already clustered around means."""
    colors = config_colors(data)
    fig, (a, b) = figure_grid(2, width=5.4)
    if "ncc_linear_ratio" not in set(data.probes.metric):
        for ax in (a, b):
            empty_panel(ax, "no NCC/linear ratio: this sweep ran without both the ncc and linear probes")
        return finish_figure(fig, "NCC / linear accuracy ratio")
    for c, trials in data.configs().items():
        band(
            a,
            *aggregate(
                [_normalized(*trial_series(data, t.trial_id, "class", "ncc_linear_ratio", layer)) for t in trials]
            ),
            colors[c],
        )
    a.set_title(f"every configuration, at {layer}")
    cmap = plt.get_cmap("viridis")
    layers = data.layers
    for i, name in enumerate(layers):
        b.plot(
            *_normalized(*trial_series(data, best, "class", "ncc_linear_ratio", name)),
            marker="o",
            ms=3,
            color=cmap(i / max(1, len(layers) - 1)),
            label=name,
        )
    b.set_title(f"every layer, best trial ({data.trial(best).label})")
    b.legend(fontsize=7, title="layer", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # off the lines
    for ax in (a, b):
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("NCC / linear accuracy, ÷ value at init")
        ax.grid(alpha=0.3)
    trial_legend(fig, data, colors)
    return finish_figure(
        fig,
        f"Class NCC/linear accuracy ratio over training, normalized at initialization ({seeds_note(data)})",
        legend_rows(len(data.configs())),
        checkpoints(data),
    )


# 3 ------------------------------------------------------------------------------------------------


def loss_parts(data: SweepData, trial_id: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """A trial's loss in parts over epochs, as its objective groups and weights its terms (VICReg:
    invariance ``λ·inv`` and regularization ``µ·var + ν·cov``, with the trial's weights or the objective's
    defaults). Objectives that declare no weights: their logged terms as they are."""
    from ssl_ray.objectives import OBJECTIVES

    tr = data.train[data.train.trial_id == trial_id].pivot_table(index="epoch", columns="metric", values="value")
    params = data.trial(trial_id).params
    name = params.get("objective.name", "")
    cls = OBJECTIVES.get(name) if name in OBJECTIVES else None
    if cls is not None and cls.term_weights and set(cls.term_weights) <= set(tr.columns):
        weight = {
            t: float(params.get(f"objective.{h}", cls.Hparams.defaults()[h])) for t, h in cls.term_weights.items()
        }
        out = {}
        for group, terms in (cls.term_groups or {t: (t,) for t in cls.term_weights}).items():
            label = "+".join(
                f"{short_name('objective.' + cls.term_weights[t], cls.term_weights[t])}·{t[:3]}" for t in terms
            )
            out[f"{group} {label}"] = (tr.index.to_numpy(), sum(weight[t] * tr[t].to_numpy() for t in terms))
        return out
    skip = {"loss", "lr", "embedding_std", "images_per_s"}
    parts = {k: (tr.index.to_numpy(), tr[k].to_numpy()) for k in tr.columns if k not in skip}
    return parts or ({"loss": (tr.index.to_numpy(), tr["loss"].to_numpy())} if "loss" in tr.columns else {})


def loss_and_accuracy(data: SweepData, layer: str) -> Figure:
    """The loss decomposed into invariance and regularization over training, beside class linear accuracy."""
    colors = config_colors(data)
    fig, (a, b) = figure_grid(2, width=5.4)
    names: List[str] = []
    styles = ["-", "--", ":", "-."]
    for c, trials in data.configs().items():
        parts = [loss_parts(data, t.trial_id) for t in trials]
        for name in dict.fromkeys(k for p in parts for k in p):
            if name not in names:
                names.append(name)
            band(
                a,
                *aggregate([p[name] for p in parts if name in p]),
                colors[c],
                styles[names.index(name) % len(styles)],
                marker="",
            )
    a.set_title("training loss, by part")
    a.set_xlabel("epoch")
    a.set_ylabel("loss part (weighted)")
    log_axis(a)
    metric = score_metric(data)
    plot_configs(b, data, colors, "class", metric, layer)
    b.set_title(f"class {metric.replace('_', ' ')} accuracy at {layer}")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    epochs = data.probes.epoch.max()
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.set_xlim(-0.5, epochs + 0.5)  # both panels on one epoch axis (the loss starts at epoch 1)
    chance_line(b, chance_levels(data).get("class"))
    extra = [Line2D([], [], color="k", ls=styles[i % len(styles)], label=n) for i, n in enumerate(names)]
    trial_legend(fig, data, colors, extra)
    return finish_figure(
        fig,
        f"Invariance vs regularization over training, and what the embedding learns ({seeds_note(data)})",
        legend_rows(len(data.configs()) + len(extra)),
        checkpoints(data),
    )
