"""The study's figures, drawn from a :class:`~ssl_ray.reports.source.SweepData` (Ben-Shaul et al., 2023,
*Reverse Engineering Self-Supervised Learning*). Each function returns a matplotlib ``Figure``; none
reads MLflow or a checkpoint itself, so they are drawn the same from a live store or a test's tables.

Configurations (the hyperparameters that differ between trials) are colored alike in every figure. A
configuration run with several seeds is drawn as the mean over its seeds with a band of plus or minus
one standard deviation, and its legend entry says N; with one seed there is no band, and the figure
says so. "One layer" figures use the report layer and "the best trial" is the best configuration's
best seed, both chosen on validation data (``ssl_ray.reports.selection``).
"""

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
from ssl_ray.reports.source import SHORT_NAMES, UNUSABLE, SweepData, Trial, fmt_param, target_order  # noqa: E402
from ssl_ray.reports.tables import mean_std  # noqa: E402

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
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.05 + 0.03 * legend_rows, 1, 0.95))
    return fig


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


# 1 ------------------------------------------------------------------------------------------------

def ncc_over_training(data: SweepData, layer: str) -> Figure:
    """NCC train (solid) and test (dashed) accuracy over training, at the sample, class and superclass levels."""
    levels = [lv for lv in LEVELS if lv in data.targets]
    colors = config_colors(data)
    fig, axes = _grid(len(levels))
    for ax, level in zip(axes, levels):
        for metric, style in (("ncc_train", "-"), ("ncc_test", "--")):
            _plot_configs(ax, data, colors, level, metric, layer, style)
        ax.set_title(f"{level} level")
        ax.set_xlabel("epoch")
        ax.set_ylabel("NCC accuracy")
        ax.grid(alpha=0.3)
    styles = [Line2D([], [], color="k", ls="-", label="train"), Line2D([], [], color="k", ls="--", label="test")]
    _trial_legend(fig, data, colors, styles)
    return _finish(fig, f"Nearest-class-center accuracy over training at {layer} ({seeds_note(data)})",
                   _rows_of_legend(len(data.configs()) + 2))


# 2 ------------------------------------------------------------------------------------------------

def _normalized(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return (x, y / y[0]) if len(y) and y[0] != 0 else (x, y)


def ncc_linear_ratio(data: SweepData, layer: str, best: str) -> Figure:
    """NCC test accuracy / linear test accuracy (class), over training, divided by its value at the first
    checkpoint (initialization): how much of what a linear probe finds is already clustered around means."""
    colors = config_colors(data)
    fig, (a, b) = _grid(2, width=5.4)
    if "ncc_linear_ratio" not in set(data.probes.metric):
        for ax in (a, b):
            _empty(ax, "no NCC/linear ratio: this sweep ran without both the ncc and linear probes")
        return _finish(fig, "NCC / linear accuracy ratio")
    for c, trials in data.configs().items():
        band(a, *aggregate([_normalized(*_series(data, t.trial_id, "class", "ncc_linear_ratio", layer)) for t in trials]),
             colors[c])
    a.set_title(f"every configuration, at {layer}")
    cmap = plt.get_cmap("viridis")
    layers = data.layers
    for i, name in enumerate(layers):
        b.plot(*_normalized(*_series(data, best, "class", "ncc_linear_ratio", name)), marker="o", ms=3,
               color=cmap(i / max(1, len(layers) - 1)), label=name)
    b.set_title(f"every layer, best trial ({data.trial(best).label})")
    b.legend(fontsize=7, title="layer", title_fontsize=7)
    for ax in (a, b):
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("NCC / linear accuracy, ÷ value at init")
        ax.grid(alpha=0.3)
    _trial_legend(fig, data, colors)
    return _finish(fig, f"Class NCC/linear accuracy ratio over training, normalized at initialization ({seeds_note(data)})",
                   _rows_of_legend(len(data.configs())))


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
        weight = {t: float(params.get(f"objective.{h}", cls.hparams()[h])) for t, h in cls.term_weights.items()}
        out = {}
        for group, terms in (cls.term_groups or {t: (t,) for t in cls.term_weights}).items():
            label = "+".join(f"{SHORT_NAMES.get('objective.' + cls.term_weights[t], cls.term_weights[t])}·{t[:3]}" for t in terms)
            out[f"{group} {label}"] = (tr.index.to_numpy(), sum(weight[t] * tr[t].to_numpy() for t in terms))
        return out
    skip = {"loss", "lr", "embedding_std", "images_per_s"}
    parts = {k: (tr.index.to_numpy(), tr[k].to_numpy()) for k in tr.columns if k not in skip}
    return parts or ({"loss": (tr.index.to_numpy(), tr["loss"].to_numpy())} if "loss" in tr.columns else {})


def loss_and_accuracy(data: SweepData, layer: str) -> Figure:
    """The loss decomposed into invariance and regularization over training, beside class linear accuracy."""
    colors = config_colors(data)
    fig, (a, b) = _grid(2, width=5.4)
    names: List[str] = []
    styles = ["-", "--", ":", "-."]
    for c, trials in data.configs().items():
        parts = [loss_parts(data, t.trial_id) for t in trials]
        for name in dict.fromkeys(k for p in parts for k in p):
            if name not in names:
                names.append(name)
            band(a, *aggregate([p[name] for p in parts if name in p]), colors[c], styles[names.index(name) % len(styles)],
                 marker="")
    a.set_title("training loss, by part")
    a.set_xlabel("epoch")
    a.set_ylabel("loss part (weighted)")
    ys = [v for line in a.get_lines() for v in line.get_ydata()]
    a.set_yscale("log" if ys and min(ys) > 0 else "symlog")
    a.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    a.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    metric = score_metric(data)
    _plot_configs(b, data, colors, "class", metric, layer)
    b.set_title(f"class {metric.replace('_', ' ')} accuracy at {layer}")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    extra = [Line2D([], [], color="k", ls=styles[i % len(styles)], label=n) for i, n in enumerate(names)]
    _trial_legend(fig, data, colors, extra)
    return _finish(fig, f"Invariance vs regularization over training, and what the embedding learns ({seeds_note(data)})",
                   _rows_of_legend(len(data.configs()) + len(extra)))


# 4 ------------------------------------------------------------------------------------------------

def randomness_of(target: str) -> Optional[float]:
    """r of a study target: ``random_<r>``; None for every other target."""
    if target.startswith("random_"):
        return float(target.split("_", 1)[1])
    return None


CHANCE = "permuted_1.0"


def accuracy_vs_randomness(data: SweepData, layer: str) -> Figure:
    """The study's Fig. 4 question: linear accuracy (test solid, train dashed) against the randomness r
    of the ``random_<r>`` targets (a supervised classifier's labels over its training: r = 1 its
    untrained network, r = 0 trained), one line per checkpoint, one panel per configuration (mean over
    seeds, error bars = std). The true classes are the star at r = 0; the grey dotted line is the chance
    control ``permuted_1.0`` (labels permuted: what no representation can predict). If training made
    the embedding fit semantic targets and not arbitrary ones, later checkpoints rise at small r and
    stay near the random-target floor at large r."""
    metric = score_metric(data)
    train_metric = metric.replace("_test", "_train")
    targets = sorted([t for t in data.targets if randomness_of(t) is not None], key=target_order)
    groups = data.configs()
    fig, axes = _grid(len(groups), width=4.4 if len(groups) > 1 else 6.4, cols=min(len(groups), 4))
    cmap = plt.get_cmap("viridis")
    for ax, (c, trials) in zip(axes, groups.items()):
        ids = {t.trial_id for t in trials}
        mine = data.probes[data.probes.trial_id.isin(ids) & (data.probes.layer == layer)]
        epochs = sorted(mine.epoch.unique())
        if not targets:
            ax.text(0.5, 0.5, "no random_<r> targets in this sweep:\nthe true classes and the chance control only",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9, color="grey")
        for i, e in enumerate(epochs):
            color = cmap(i / max(1, len(epochs) - 1))
            at = mine[mine.epoch == e]
            for m, style, alpha in ((metric, "-", 1.0), (train_metric, "--", 0.6)):
                rows = at[(at.metric == m) & at.target.isin(targets)]
                g = rows.assign(x=rows.target.map(randomness_of)).groupby("x").value
                if len(g.mean()):
                    ax.errorbar(g.mean().index, g.mean(), yerr=g.std(ddof=1).fillna(0.0), fmt=style, marker="o", ms=3,
                                color=color, alpha=alpha, capsize=2, label=f"epoch {e}" if m == metric else None)
            cls = at[(at.metric == metric) & (at.target == "class")].value
            if len(cls):
                ax.plot([0.0], [cls.mean()], marker="*", ms=9, color=color, ls="")
        chance = mine[(mine.metric == metric) & (mine.target == CHANCE)].value
        if len(chance):
            ax.axhline(chance.mean(), color="grey", ls=":", lw=1.2, label=f"chance control ({CHANCE})")
        ax.set_title(f"{c} (N={len(trials)})" if len(trials) > 1 else c, fontsize=9)
        ax.set_xlabel("target randomness r (random_<r>)")
        ax.set_ylabel(f"{metric.split('_')[0]} accuracy", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    extra = [Line2D([], [], color="k", ls="-", label="test"), Line2D([], [], color="k", ls="--", label="train"),
             Line2D([], [], color="k", marker="*", ls="", ms=9, label="true classes")]
    fig.legend(handles=handles + extra, loc="lower center", ncol=min(len(handles) + 3, 6), fontsize=8, frameon=False)
    return _finish(fig, f"Accuracy against target randomness at {layer}, one line per checkpoint ({seeds_note(data)})",
                   _rows_of_legend(len(handles) + 3))


# 9 ------------------------------------------------------------------------------------------------

def semantic_over_random(data: SweepData, layer: str, random_target: Optional[str] = None) -> Figure:
    """The study's ratio figure: class NCC test accuracy divided by that of the most random ``random_<r>``
    target (the chance control ``permuted_1.0`` where a sweep has none), and class CDNV divided by its CDNV, over training (mean ± std over seeds). NCC ratio above 1
    and rising, CDNV ratio below 1 and falling: the embedding clusters by class more than by an
    arbitrary function of the input."""
    colors = config_colors(data)
    randoms = sorted([t for t in data.targets if randomness_of(t) is not None], key=target_order)
    # without random_<r> targets (no bank), the chance control stands in as the random target
    random_target = random_target or (randoms[-1] if randoms else CHANCE if CHANCE in data.targets else None)
    fig, (a, b) = _grid(2, width=5.4)
    if random_target is None:
        for ax in (a, b):
            _empty(ax, "no random_<r> or permuted targets in this sweep")
        return _finish(fig, "Semantic over random targets", 0)
    for ax, metric, title in ((a, "ncc_test", "NCC test accuracy"), (b, "cdnv", "CDNV")):
        for c, trials in data.configs().items():
            ratios = []
            for t in trials:
                xs, num = _series(data, t.trial_id, "class", metric, layer)
                xr, den = _series(data, t.trial_id, random_target, metric, layer)
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
    b.set_yscale("log")
    _trial_legend(fig, data, colors)
    return _finish(fig, f"Semantic over random targets at {layer} ({seeds_note(data)})", _rows_of_legend(len(data.configs())))


# 5 ------------------------------------------------------------------------------------------------

def pick_epochs(epochs: Sequence[int], n: int = 5) -> List[int]:
    epochs = sorted(set(int(e) for e in epochs))
    if len(epochs) <= n:
        return epochs
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, n)).astype(int))
    return [epochs[i] for i in idx]


def accuracy_per_layer(data: SweepData, best: str) -> Figure:
    """Class and superclass accuracy at every layer, at several checkpoints of the best trial, and the
    superclass/class ratio: where in the network, and when, the coarser grouping is learned."""
    metric = score_metric(data)
    layers = data.layers
    has_super = "superclass" in data.targets
    fig, axes = _grid(3 if has_super else 1, width=4.8)
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
    if has_super:
        ax = axes[2]
        for i, e in enumerate(epochs):
            ax.plot(xs, values("superclass", e) / values("class", e), marker="o", ms=3,
                    color=cmap(i / max(1, len(epochs) - 1)), label=f"epoch {e}")
        ax.set_title("superclass / class accuracy")
        ax.set_ylabel("ratio")
    for ax in axes:
        ax.set_xticks(xs, layers, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, f"Accuracy per layer over training, best trial ({data.trial(best).label})", 0)


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
        im = a.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
        for i in range(len(ys)):
            for j in range(len(xs)):
                if not np.isnan(grid[i, j]):
                    sd, n = spread[(i, j)]
                    a.text(j, i, f"{grid[i, j]:.3f}" + (f"\n±{sd:.3f} (N={n})" if n > 1 else ""), ha="center", va="center",
                           fontsize=9,
                           color="white" if grid[i, j] < np.nanmean(grid) else "black")
                elif (i, j) in status:
                    a.text(j, i, status[(i, j)], ha="center", va="center", fontsize=9, color="red")
        a.set_xticks(range(len(xs)), [fmt_param(v) for v in xs])
        a.set_yticks(range(len(ys)), [fmt_param(v) for v in ys])
        a.set_xlabel(SHORT_NAMES.get(kx, kx))
        a.set_ylabel(SHORT_NAMES.get(ky, ky))
        fig.colorbar(im, ax=a, label=label)
        a.set_title(f"{label}, by {SHORT_NAMES.get(kx, kx)} and {SHORT_NAMES.get(ky, ky)}", fontsize=9)
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
        a.set_xlabel(SHORT_NAMES.get(k, k))
        a.grid(alpha=0.3)
        a.set_title(f"{label}, by {SHORT_NAMES.get(k, k)} (mean ± std over seeds)", fontsize=9)
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
    finite = metric[np.isfinite(metric)]
    norm = matplotlib.colors.Normalize(vmin=finite.min() if len(finite) else 0, vmax=finite.max() if len(finite) else 1)
    cmap = plt.get_cmap("viridis")
    xs = np.arange(len(cols))
    for j, t in enumerate(data.trials):
        ax.plot(xs, scaled[:, j], marker="o", color=cmap(norm(metric[j])) if np.isfinite(metric[j]) else "grey", lw=2)
    for i in range(len(cols)):
        ax.axvline(i, color="grey", lw=0.6)
        ax.text(i, -0.08, f"{_fmt_num(arr[i].min())}", ha="center", va="top", fontsize=7)
        ax.text(i, 1.08, f"{_fmt_num(arr[i].max())}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [SHORT_NAMES.get(c, c) for c in cols[:-1]] + ["class acc."], fontsize=9)
    ax.set_yticks([])
    ax.set_ylim(-0.2, 1.2)
    ax.set_title("parallel coordinates (each axis min..max)", fontsize=9)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(sm, ax=ax, label=label)


def _fmt_num(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"
