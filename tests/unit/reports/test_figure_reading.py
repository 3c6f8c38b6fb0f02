"""What a reader of the figures is owed (issue 32, item 9), on the report tests' hand-made sweep: chance marked
at 1/K on every accuracy axis, K counted from the dataset; epoch axes ticked at the checkpoints; figure 8's
numbers those of ``trials.md`` (each configuration at its best layer) on a colour scale that spans them;
figure 5's superclass/class panel; figure 4 without error bars where one seed gives none; and the seeds
note in every figure's title."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.lines import Line2D
from test_report_figures import sweep

from ssl_ray.reports import figures as F
from ssl_ray.reports import hyperparameter_figure as HP
from ssl_ray.reports import layer_figures as L
from ssl_ray.reports import randomness_figures as R
from ssl_ray.reports.chance import chance_levels, chance_line
from ssl_ray.reports.label_free import label_free_figure
from ssl_ray.reports.report import _embedding_figure
from ssl_ray.reports.selection import select
from ssl_ray.reports.source import SweepData
from ssl_ray.reports.tables import config_table


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def chance_at(ax) -> list:
    return [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_label().startswith("chance")]


def title(fig) -> str:
    return fig._suptitle.get_text().replace("\n", " ")


def test_chance_is_counted_from_the_datasets_labels():
    d = sweep()
    assert chance_levels(d) == {"class": 10, "superclass": 3, "random_0.5": 10, "random_1.0": 10, "permuted_1.0": 10}
    for t in d.trials:  # no dataset named: no chance line, rather than a guessed one
        del t.params["data.dataset"]
    assert chance_levels(d) == {}
    assert not chance_at(panels(F.ncc_over_training(d, "block2"))[1])


def test_every_accuracy_axis_marks_chance_at_one_over_k():
    d = sweep()
    sel = select(d)
    layer = sel.layer
    sample, cls, sup = panels(F.ncc_over_training(d, layer))
    assert chance_at(sample) == [] and chance_at(cls) == [pytest.approx(0.1)]
    assert chance_at(sup) == [pytest.approx(1 / 3)]
    assert chance_at(panels(F.loss_and_accuracy(d, layer))[1]) == [pytest.approx(0.1)]
    assert all(chance_at(ax) == [pytest.approx(0.1)] for ax in panels(R.accuracy_vs_randomness(d, layer)))
    c5, s5, ratio = panels(L.accuracy_per_layer(d, sel.best_trial))
    assert chance_at(c5) == [pytest.approx(0.1)] and chance_at(s5) == [pytest.approx(1 / 3)] and chance_at(ratio) == []
    one_key = SweepData(d.uri, d.experiment, d.parent_run_id, {}, d.trials, d.probes, d.train, ["objective.lam"])
    assert chance_at(panels(HP.hyperparameter_view(one_key, None, ["objective.lam"]))[0]) == [pytest.approx(0.1)]
    assert chance_at(panels(label_free_figure(d, sel))[0]) == [pytest.approx(0.1)]


def test_chance_far_below_the_data_keeps_their_scale_and_says_so():
    fig, (near, far) = plt.subplots(1, 2)
    near.plot([0, 1], [0.3, 0.9])
    far.plot([0, 1], [0.95, 0.99])
    chance_line(near, 10)
    chance_line(far, 10)
    assert near.get_ylim()[0] < 0.1 and not near.texts[0].get_text().endswith("below this axis")
    assert 0.9 < far.get_ylim()[0] < 0.95 and far.texts[0].get_text() == "chance 1/10 = 0.10, below this axis"


def test_epoch_axes_are_ticked_at_the_checkpoints():
    d = sweep()
    d.probes = d.probes.assign(epoch=d.probes.epoch.map({0: 0, 1: 4, 2: 20}))  # checkpoints 0, 4 and 20
    layer = select(d).layer
    for fig in (
        F.ncc_over_training(d, layer),
        F.ncc_linear_ratio(d, layer, "A"),
        F.loss_and_accuracy(d, layer),
        L.geometry_over_training(d, layer),
        R.semantic_over_random(d, layer),
    ):
        for ax in panels(fig):
            assert list(ax.get_xticks()) == [0, 4, 20], title(fig)


def test_figure_8_reads_every_configuration_at_its_best_layer_as_trials_md_does():
    d = sweep()
    sel = select(d)
    table = config_table(d, sel).set_index("configuration")
    fig = HP.hyperparameter_view(d, None, ["objective.lam", "model.width"])
    heat, par = panels(fig)
    (im,) = heat.get_images()
    grid = np.ma.filled(im.get_array(), np.nan)
    cell = {d.trial(t).config: grid[i, j] for t, (i, j) in {"A": (0, 0), "B": (1, 1)}.items()}  # rows λ, columns H
    assert table.loc[d.trial("A").config, "best_layer"] != table.loc[d.trial("B").config, "best_layer"]
    for config, value in cell.items():
        assert value == pytest.approx(table.loc[config, "class_linear_test"])
    # the colours span the values: the worst is the bottom of the scale and the best the top, in both panels
    assert (im.norm.vmin, im.norm.vmax) == (pytest.approx(np.nanmin(grid)), pytest.approx(np.nanmax(grid)))
    cmap = plt.get_cmap("viridis")
    colors = {tuple(matplotlib.colors.to_rgba(ln.get_color())) for ln in par.get_lines() if ln.get_marker() == "o"}
    assert tuple(cmap(0.0)) in colors and tuple(cmap(1.0)) in colors
    # --layer: every configuration at that one layer
    fixed = np.ma.filled(
        panels(HP.hyperparameter_view(d, "block1", ["objective.lam", "model.width"]))[0].get_images()[0].get_array(),
        np.nan,
    )
    assert fixed[0, 0] == pytest.approx(d.final("A", "class", "linear_test", "block1"))


def test_figure_5_draws_superclass_over_class():
    d = sweep()
    _, _, ratio = panels(L.accuracy_per_layer(d, "A"))
    last = [ln for ln in ratio.get_lines() if ln.get_marker() == "o"][-1]  # epoch 2, every layer
    p = d.probes[(d.probes.trial_id == "A") & (d.probes.epoch == 2) & (d.probes.metric == "linear_test")]
    at = p.pivot_table(index="layer", columns="target", values="value").loc[d.layers]
    assert list(last.get_ydata()) == pytest.approx(list(at.superclass / at["class"]))
    assert "superclass / class" in ratio.get_title()


@pytest.mark.parametrize("seeds", [1, 2])
def test_figure_4_has_error_bars_only_where_seeds_give_a_spread(seeds):
    d = sweep(seeds=seeds)
    fig = R.accuracy_vs_randomness(d, select(d).layer)
    axes = panels(fig)
    assert all(bool(ax.containers) == (seeds > 1) for ax in axes)
    assert all(isinstance(h, Line2D) for h in fig.legends[0].legend_handles)  # no error-bar glyph in the legend
    w, h = axes[0].get_position().width * fig.get_figwidth(), axes[0].get_position().height * fig.get_figheight()
    assert w > 4.5 and h > 3.0 and len({ax.get_position().x0 for ax in axes}) <= 2  # two panels to a row, each large
    epochs = [ln.get_label() for ln in fig.legends[0].legend_handles if ln.get_label().startswith("epoch")]
    colors = [ln.get_color() for ln in fig.legends[0].legend_handles if ln.get_label().startswith("epoch")]
    assert len(epochs) == 3 and len(set(map(tuple, colors))) == 3


def test_every_figure_names_its_seeds():
    d = sweep()
    sel = select(d)
    layer = sel.layer
    figs = [
        F.ncc_over_training(d, layer),
        F.ncc_linear_ratio(d, layer, "A"),
        F.loss_and_accuracy(d, layer),
        R.accuracy_vs_randomness(d, layer),
        L.accuracy_per_layer(d, "A"),
        L.geometry_over_training(d, layer),
        _embedding_figure(d, layer, sel.best_trial, []),
        HP.hyperparameter_view(d, None, ["objective.lam"]),
        R.semantic_over_random(d, layer),
    ]
    for fig in figs:
        assert "one seed per configuration" in title(fig), title(fig)
    many = sweep(seeds=2)
    assert "the best of N=2 seeds" in title(L.accuracy_per_layer(many, "A0"))
    assert "mean ± std over N=2 seeds" in title(HP.hyperparameter_view(many, None, ["objective.lam"]))
