"""Label-free selection: would a sweep's choice be the same without labels?

* **RankMe** (Garrido et al., ICML 2023, "RankMe: Assessing the downstream performance of pretrained
  self-supervised representations by their rank"): the effective rank ``exp(H(p))`` of the
  representation, ``p = s / sum(s)`` over its singular values. Higher is claimed to be better, so the
  label-free choice is the trial with the highest RankMe.
* **alpha-ReQ** (Agrawal et al., NeurIPS 2022): the eigenspectrum decay ``alpha`` in ``l_i ~ i^(-alpha)``;
  representations are claimed to generalize best near ``alpha = 1``, so the score read is ``-|alpha - 1|``.

The geometry probe computes both (``ssl_ray.probes.geometry``: ``rankme``, ``powerlaw_alpha``) and logs
them under every target with the same value; they are read under ``class``. The check reads one layer,
chosen without labels: **the representation**, the backbone's last probed tap (never a projector tap,
``proj_hidden<i>`` or ``projector``, nor the ``input`` pixels). Each usable trial (not diverged,
collapsed or errored: ``UNUSABLE``) gives one point: its reading at its last probed checkpoint against
its class validation accuracy there (``linear_val``, the metric ``ssl_ray.reports.selection`` chooses on;
``ncc_val`` without linear probes). Spearman's rho over those points says whether the label-free ranking
agrees with the labeled one; it is reported as computed, negative or null where the data says so, and
only over at least ``MIN_TRIALS`` trials.

:func:`label_free_choice` is the pure part (no engine, no tables): readings in, choice and rhos out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ssl_ray.probes.choice import layer_order, selection_metric
from ssl_ray.reports.selection import Selection
from ssl_ray.reports.source import UNUSABLE, SweepData

TARGET = "class"  # rankme and alpha are label-free: every clean target carries the same value
MIN_TRIALS = 3  # fewer points than this give no rho
STEM = "fig12_label_free"
MAX_LEGEND = 8  # configurations named in the legend; beyond, only the two choices are


@dataclass(frozen=True)
class Reading:
    """One trial at its last probed checkpoint, at the representation layer."""

    trial_id: str
    status: str
    rankme: float
    alpha: float
    accuracy: float  # class validation accuracy (linear_val)


@dataclass(frozen=True)
class LabelFree:
    trial_id: Optional[str]  # the usable trial with the highest RankMe (None: no usable trial has one)
    rankme: float  # its RankMe
    rho_rankme: float  # Spearman rho(RankMe, accuracy); NaN with too few trials or constant values
    n_rankme: int  # the trials behind it (usable, RankMe and accuracy both finite)
    rho_alpha: float  # Spearman rho(-|alpha - 1|, accuracy)
    n_alpha: int


def spearman(x: Sequence[float], y: Sequence[float]) -> Tuple[float, int]:
    """``(rho, n)`` over the pairs where both are finite; rho is NaN where ``n < MIN_TRIALS`` or either side
    is constant (no ranking to compare)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, n = x[ok], y[ok], int(ok.sum())
    if n < MIN_TRIALS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, n
    return float(spearmanr(x, y).statistic), n


def label_free_choice(readings: Sequence[Reading]) -> LabelFree:
    """The highest RankMe among the usable trials (the first of equals, in the order given), and Spearman's
    rho of RankMe and of ``-|alpha - 1|`` against the accuracy, over the usable trials."""
    usable = [r for r in readings if r.status not in UNUSABLE]
    ranked = [r for r in usable if math.isfinite(r.rankme)]
    best = max(ranked, key=lambda r: r.rankme, default=None)
    acc = [r.accuracy for r in usable]
    rho_r, n_r = spearman([r.rankme for r in usable], acc)
    rho_a, n_a = spearman([-abs(r.alpha - 1.0) for r in usable], acc)
    return LabelFree(best.trial_id if best else None, best.rankme if best else math.nan, rho_r, n_r, rho_a, n_a)


def rho_text(rho: float, n: int) -> str:
    """``Spearman rho = +0.71 (n=8)``, or why there is no number."""
    if n < MIN_TRIALS:
        return f"Spearman rho: too few trials (n={n})"
    if math.isnan(rho):
        return f"Spearman rho: undefined, constant values (n={n})"
    return f"Spearman rho = {rho:+.2f} (n={n})"


# ---- from a sweep's tables ----


def representation_layer(data: SweepData) -> Optional[str]:
    """The backbone's last tap that has a RankMe reading, in the model's tap order (``layer_order``): chosen
    from the architecture alone, no labels. None where no backbone layer has one."""
    have = set(data.probe(TARGET, "rankme").layer)
    backbone = [name for name in data.layers if layer_order(name)[0] == 0 and name in have]
    return backbone[-1] if backbone else None


def readings(data: SweepData, layer: str) -> List[Reading]:
    """Every trial's RankMe, alpha and class validation accuracy at ``layer`` at its last probed checkpoint."""
    metric = selection_metric(data.probes.metric)
    return [
        Reading(t.trial_id, t.status, *(data.final(t.trial_id, TARGET, m, layer) for m in ("rankme", "alpha", metric)))
        for t in data.trials
    ]


def _name(data: SweepData, trial_id: str) -> str:
    t = data.trial(trial_id)
    return t.label or t.trial_id


def label_free_line(data: SweepData, sel: Selection) -> str:
    """The sweep summary's line: the label-free choice beside the labeled one, and how well RankMe ranks."""
    layer = representation_layer(data)
    lf = label_free_choice(readings(data, layer)) if layer else None
    if lf is None or lf.trial_id is None:
        return (
            "label-free choice: none (no usable trial has a RankMe reading at a backbone layer; the geometry "
            f"probe computes it); labeled choice: {_name(data, sel.best_trial)}"
        )
    what = f"rho(RankMe, class {sel.metric.replace('_', ' ')})"
    rho = (
        f"Spearman {what} = {lf.rho_rankme:.2f} over {lf.n_rankme} trials"
        if not math.isnan(lf.rho_rankme)
        else rho_text(lf.rho_rankme, lf.n_rankme).replace("Spearman rho", f"Spearman {what}")
    )
    return (
        f"label-free choice (highest RankMe at {layer}): {_name(data, lf.trial_id)} (RankMe {lf.rankme:.1f}); "
        f"labeled choice: {_name(data, sel.best_trial)}; {rho}"
    )


def label_free_findings(data: SweepData, sel: Selection) -> List[str]:
    """The report's section: the line above, alpha-ReQ's rho, and what the label-free choice costs at the layer."""
    layer = representation_layer(data)
    lines = [
        "## Label-free selection",
        "",
        f"RankMe (Garrido et al. 2023; higher is claimed better) and alpha-ReQ's eigenspectrum decay α (Agrawal et "
        f"al. 2022; claimed best near α = 1, so read as −|α − 1|), against class `{sel.metric}`, at each usable "
        f"trial's last probed checkpoint (`{STEM}.png`). The layer is chosen without labels: the backbone's last "
        "probed tap (the representation, not the projector). Spearman's ρ is shown as computed.",
        "",
        f"- {label_free_line(data, sel)}",
    ]
    if layer is None:
        return lines + [""]
    rs = readings(data, layer)
    lf = label_free_choice(rs)
    lines.append(
        f"- alpha-ReQ at `{layer}`: "
        f"{rho_text(lf.rho_alpha, lf.n_alpha).replace('Spearman rho', 'Spearman ρ(−|α − 1|, accuracy)')}."
    )
    acc = {r.trial_id: r.accuracy for r in rs}
    if lf.trial_id is not None and lf.trial_id != sel.best_trial:
        own = "" if sel.layer == layer else f" (chosen at its configuration's best layer `{sel.layer}`)"
        lines.append(
            f"- At `{layer}`, class `{sel.metric}` of the label-free choice is {acc[lf.trial_id]:.3f}, of the "
            f"labeled choice {acc.get(sel.best_trial, math.nan):.3f}{own}."
        )
    elif lf.trial_id is not None:
        lines.append("- The label-free choice is the labeled one.")
    return lines + [""]


def label_free_figure(data: SweepData, sel: Selection):
    """Two panels, one point per usable trial: RankMe, and α, against class validation accuracy at the
    representation layer; the labeled choice (``select``'s best trial) and the label-free one are ringed."""
    from matplotlib.lines import Line2D

    from ssl_ray.reports.chance import chance_levels, chance_line
    from ssl_ray.reports.plotting import (
        config_colors,
        empty_panel,
        figure_grid,
        finish_figure,
        legend_rows,
        note_figure,
    )

    layer = representation_layer(data)
    title = "Label-free selection: RankMe and eigenspectrum decay α against class validation accuracy"
    if layer is None:
        return note_figure(title, "no RankMe reading at a backbone layer (the geometry probe computes RankMe and α)")
    rs = readings(data, layer)
    lf = label_free_choice(rs)
    usable = [r for r in rs if r.status not in UNUSABLE]
    colors = config_colors(data)
    metric = sel.metric
    fig, (a1, a2) = figure_grid(2, width=5.4, height=4.4)
    panels = (
        (
            a1,
            "rankme",
            lambda r: r.rankme,
            f"RankMe at {layer}",
            lf.rho_rankme,
            lf.n_rankme,
            f"RankMe vs class {metric} (claimed: higher is better)",
        ),
        (
            a2,
            "alpha",
            lambda r: r.alpha,
            f"eigenspectrum decay α at {layer} (ρ reads −|α − 1|)",
            lf.rho_alpha,
            lf.n_alpha,
            f"α vs class {metric}; rho of −|α − 1| (alpha-ReQ: best near α = 1)",
        ),
    )
    for ax, key, x_of, xlabel, rho, n, what in panels:
        pts = [(x_of(r), r.accuracy, r) for r in usable if math.isfinite(x_of(r)) and math.isfinite(r.accuracy)]
        if not pts:
            empty_panel(ax, f"no usable trial has both {key} and class {metric} at {layer}")
            continue
        ax.scatter(
            [p[0] for p in pts],
            [p[1] for p in pts],
            s=36,
            zorder=3,
            c=[colors[data.trial(p[2].trial_id).group] for p in pts],
        )
        for tid, marker, edge, size in ((sel.best_trial, "o", "black", 240), (lf.trial_id, "s", "tab:red", 180)):
            hit = [p for p in pts if p[2].trial_id == tid]
            if hit:
                ax.scatter(
                    [hit[0][0]],
                    [hit[0][1]],
                    s=size,
                    marker=marker,
                    facecolors="none",
                    edgecolors=edge,
                    linewidths=1.6,
                    zorder=4,
                )
        if key == "alpha":
            ax.axvline(1.0, color="grey", ls="--", lw=1)
        ax.set_title(f"{what}\n{rho_text(rho, n)}", fontsize=9)
        ax.margins(0.08)  # the rings of a point at the edge stay whole
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"class {metric} (last checkpoint)")
        ax.grid(alpha=0.3)
        chance_line(ax, chance_levels(data).get("class"))
    shown = {data.trial(r.trial_id).group for r in usable}
    # a search's many configurations would make a legend wider than the figure: then only the two choices
    # are named (their labels in the legend entries)
    handles = (
        [Line2D([], [], ls="", marker="o", color=colors[c], label=c) for c in colors if c in shown]
        if len(shown) <= MAX_LEGEND
        else []
    )
    named = {tid: f" {_name(data, tid)}" if not handles and tid else "" for tid in (sel.best_trial, lf.trial_id)}
    handles += [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            ms=12,
            mfc="none",
            mec="black",
            label=f"labeled choice (best on val){named[sel.best_trial]}",
        ),
        Line2D(
            [],
            [],
            ls="",
            marker="s",
            ms=11,
            mfc="none",
            mec="tab:red",
            label=f"label-free choice (highest RankMe){named[lf.trial_id]}",
        ),
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 6 if len(handles) > 2 else 1),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    left_out = len(rs) - len(usable)
    return finish_figure(
        fig,
        f"{title} at {layer} (the backbone's last tap), one point per usable trial at its last probed "
        f"checkpoint" + (f"; {left_out} unusable trial(s) left out" if left_out else ""),
        legend_rows(len(handles)),
    )
