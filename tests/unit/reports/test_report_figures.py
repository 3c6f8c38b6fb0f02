"""The report's pure parts on hand-made sweep tables: which layer and trial it picks (on validation data
only), the loss split, the tables' values, seeds aggregated, and every figure drawn from tables with and
without superclasses."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssl_ray.probes.choice import layer_order
from ssl_ray.reports import figures as F
from ssl_ray.reports import hyperparameter_figure as HP
from ssl_ray.reports import layer_figures as L
from ssl_ray.reports import plotting as P
from ssl_ray.reports import randomness_figures as R
from ssl_ray.reports.selection import select
from ssl_ray.reports.source import SweepData, Trial, target_order, trial_label
from ssl_ray.reports.tables import config_table, to_markdown, trial_table

LAYERS = ["block1", "block2", "projector"]
SUPERCLASS_MAP = str(Path(__file__).resolve().parents[3] / "configs" / "digits_superclasses.txt")


def sweep(superclass=True, linear=True, seeds=1) -> SweepData:
    """Three configurations: A (λ=10) best at block2, B (λ=25) best at projector, C diverged (huge numbers
    everywhere); with ``seeds`` > 1, each has that many seeds (trial A1 = A + 0.01, ...)."""
    acc = {  # class accuracy at the last epoch (2), per trial and layer
        "A": {"block1": 0.70, "block2": 0.90, "projector": 0.80},
        "B": {"block1": 0.60, "block2": 0.75, "projector": 0.85},
        "C": {"block1": 0.99, "block2": 0.99, "projector": 0.99},
    }
    rows = []
    for tid in acc:
        for epoch in (0, 1, 2):
            for layer in LAYERS:
                a = acc[tid][layer] * (0.5 + 0.25 * epoch)  # grows to its final value at epoch 2
                targets = {"sample": a, "class": a, "random_0.5": a / 2, "random_1.0": 0.2, "permuted_1.0": 0.1}
                if superclass:
                    targets["superclass"] = min(1.0, a * 1.05)
                for target, v in targets.items():
                    metrics = {
                        "ncc_train": v + 0.01,
                        "ncc_val": v - 0.04,
                        "ncc_test": v - 0.05,
                        "cdnv": 1.0 / (1 + epoch),
                        "rankme": 3.0 + epoch,
                    }
                    if linear:
                        metrics.update(
                            linear_train=v + 0.02, linear_val=v - 0.01, linear_test=v, ncc_linear_ratio=(v - 0.05) / v
                        )
                    rows += [(tid, "run" + tid, epoch, layer, target, m, val) for m, val in metrics.items()]
    probes = pd.DataFrame(rows, columns=["trial_id", "run_id", "epoch", "layer", "target", "metric", "value"])
    train = pd.DataFrame(
        [
            (tid, e, m, v)
            for tid in acc
            for e in (1, 2)
            for m, v in (("loss", 20.0 - e), ("invariance", 0.2), ("variance", 0.5), ("covariance", 3.0))
        ],
        columns=["trial_id", "epoch", "metric", "value"],
    )
    params = {
        "A": {
            "objective.name": "vicreg",
            "objective.lam": "10.0",
            "objective.mu": "25.0",
            "objective.nu": "1.0",
            "model.width": "16",
        },
        "B": {
            "objective.name": "vicreg",
            "objective.lam": "25.0",
            "objective.mu": "25.0",
            "objective.nu": "1.0",
            "model.width": "32",
        },
        "C": {
            "objective.name": "vicreg",
            "objective.lam": "25.0",
            "objective.mu": "25.0",
            "objective.nu": "1.0",
            "model.width": "16",
        },
    }
    for p in params.values():  # the bundled digits (10 classes) and their 3 superclasses: chance 1/10 and 1/3
        p.update({"data.dataset": "digits", "data.superclass_map": SUPERCLASS_MAP})
    status = {"A": "finished", "B": "finished", "C": "diverged"}
    varied = ["model.width", "objective.lam"]
    trials = [
        Trial(t, "run" + t, status[t], params[t], None, trial_label(params[t], varied), trial_label(params[t], varied))
        for t in acc
    ]
    if seeds > 1:  # seed k of trial X is X<k>, its values shifted by 0.01 k
        copies, ptab, ttab = [], [probes], [train]
        for k in range(seeds):
            for t in trials:
                tid = f"{t.trial_id}{k}"
                copies.append(
                    Trial(
                        tid,
                        "run" + tid,
                        t.status,
                        {**t.params, "train.seed": str(k)},
                        None,
                        f"{t.label} #{k}",
                        t.config,
                    )
                )
                ptab.append(
                    probes[probes.trial_id == t.trial_id].assign(
                        trial_id=tid, value=probes[probes.trial_id == t.trial_id].value + 0.01 * k
                    )
                )
                ttab.append(train[train.trial_id == t.trial_id].assign(trial_id=tid))
        trials, probes, train = copies, pd.concat(ptab[1:]), pd.concat(ttab[1:])
    return SweepData("sqlite:///x.db", "exp", "parent", {}, trials, probes, train, varied)


def test_orders_and_labels():
    assert sorted(["projector", "block10", "block2", "proj_hidden1", "block1"], key=layer_order) == [
        "block1",
        "block2",
        "block10",
        "proj_hidden1",
        "projector",
    ]
    assert sorted(["random_1.0", "class", "random_0.25", "superclass", "sample"], key=target_order) == [
        "sample",
        "class",
        "superclass",
        "random_0.25",
        "random_1.0",
    ]
    assert trial_label({"objective.lam": "10.0", "model.width": "32"}, ["objective.lam", "model.width"]) == "λ=10 H=32"


def test_layer_and_trial_choice_skip_diverged_trials():
    d = sweep()
    # mean over A and B (C diverged): block1 0.65, block2 0.825, projector 0.825 -> the first maximum is kept
    sel = select(d)
    assert sel.layer in ("block2", "projector") and sel.metric == "linear_val"
    assert sel.trial_layers == {"A": "block2", "B": "projector", "C": "block1"}
    assert sel.best_config == d.trial(sel.best_trial).config and sel.best_trial in ("A", "B")
    assert select(sweep(linear=False)).metric == "ncc_val" and P.score_metric(d) == "linear_test"


def test_selection_never_reads_test_data():
    """Poison every test-split value (the reverse of the truth, and NaN): layers and the best
    configuration do not change."""
    d = sweep()
    before = select(d)
    rng = np.random.default_rng(0)
    for poison in (lambda v: 1.0 - v, lambda v: rng.random(len(v)), lambda v: np.full(len(v), np.nan)):
        p = d.probes.copy()
        test = p.metric.str.endswith("_test")
        p.loc[test, "value"] = poison(p.loc[test, "value"].to_numpy())
        poisoned = SweepData(d.uri, d.experiment, d.parent_run_id, {}, d.trials, p, d.train, d.varied)
        assert select(poisoned) == before
    # while poisoning the validation split does change it
    p = d.probes.copy()
    val = p.metric.str.endswith("_val")
    p.loc[val, "value"] = 1.0 - p.loc[val, "value"]
    assert select(SweepData(d.uri, d.experiment, d.parent_run_id, {}, d.trials, p, d.train, d.varied)) != before


def test_vicreg_loss_parts_are_weighted_by_the_trials_coefficients():
    d = sweep()
    parts = F.loss_parts(d, "A")  # λ=10, µ=25, ν=1: invariance 10*0.2, regularization 25*0.5 + 1*3.0
    (inv_x, inv), (reg_x, reg) = parts["invariance λ·inv"], parts["regularization µ·var+ν·cov"]
    assert list(inv_x) == list(reg_x) == [1, 2] and np.allclose(inv, [2.0, 2.0]) and np.allclose(reg, [15.5, 15.5])
    assert np.allclose(F.loss_parts(d, "B")["invariance λ·inv"][1], [5.0, 5.0])


def test_tables_read_test_numbers_at_the_validation_choice():
    d = sweep()
    sel = select(d)
    df = trial_table(d, sel)
    assert list(df.trial) == ["A", "B", "C"]
    a, b = df.iloc[0], df.iloc[1]
    assert (
        a.best_layer == "block2"
        and a.class_linear_val == pytest.approx(0.89)
        and a.class_linear_test == pytest.approx(0.90)
    )
    assert a.class_ncc_test == pytest.approx(0.85) and a.class_cdnv == pytest.approx(1 / 3)
    assert a.superclass_linear_test == pytest.approx(0.945) and a["permuted_1.0_linear_test"] == pytest.approx(0.1)
    assert a["random_1.0_linear_test"] == pytest.approx(0.2) and a.run_id == "runA"
    assert b.best_layer == "projector" and b.final_loss == 18.0 and b["objective.lam"] == "25" and b.epoch == 2
    md = to_markdown(config_table(d, sel)).splitlines()
    assert len(md) == 5 and "| λ |" in md[0] and "| H |" in md[0] and "| N |" in md[0] and " ± " not in "".join(md)
    no_super = trial_table(sweep(superclass=False), sel)
    assert not any(c.startswith("superclass") for c in no_super.columns)
    nl = sweep(linear=False)
    assert "class_linear_test" not in trial_table(nl, select(nl)).columns


def test_seeds_are_aggregated_with_their_spread():
    d = sweep(seeds=2)
    assert d.seeds_per_config() == 2 and len(d.configs()) == 3
    sel = select(d)
    table = config_table(d, sel)
    a = table[table.configuration == d.trial("A0").config].iloc[0]
    assert a.N == 2 and a.best_layer == "block2"
    assert a.class_linear_test == pytest.approx(0.905) and a.class_linear_test_std == pytest.approx(0.01 / math.sqrt(2))
    assert "0.905 ± 0.0071" in to_markdown(table)
    fig = F.ncc_over_training(d, sel.layer)
    assert any(
        type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection") for ax in fig.axes for c in ax.collections
    )
    assert "(N=2)" in " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "N=2 seeds" in fig._suptitle.get_text().replace("\n", " ")
    one = F.ncc_over_training(sweep(), sel.layer)
    assert not any(
        ax.collections for ax in one.axes
    ) and "one seed per configuration" in one._suptitle.get_text().replace("\n", " ")
    # fig 8 with one varied key: a point per configuration (not per trial) with its spread and N
    lam_only = SweepData(d.uri, d.experiment, d.parent_run_id, {}, d.trials, d.probes, d.train, ["objective.lam"])
    ax = HP.hyperparameter_view(lam_only, None, ["objective.lam"]).axes[0]
    assert len(ax.containers) == 2  # A and B; C diverged is named instead
    notes = [t.get_text() for t in ax.texts]
    assert sum("N=2" in n for n in notes) == 2 and "diverged" in notes
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("superclass,linear", [(True, True), (False, False)])
def test_every_figure_draws(tmp_path, superclass, linear):
    d = sweep(superclass, linear)
    layer = select(d).layer
    figs = {
        "1": F.ncc_over_training(d, layer),
        "2": F.ncc_linear_ratio(d, layer, "A"),
        "3": F.loss_and_accuracy(d, layer),
        "4": R.accuracy_vs_randomness(d, layer),
        "5": L.accuracy_per_layer(d, "A"),
        "6": L.geometry_over_training(d, layer),
        "8": HP.hyperparameter_view(d, None, ["objective.lam", "objective.mu", "objective.nu", "model.width"]),
        "9": R.semantic_over_random(d, layer),
    }
    rng = np.random.default_rng(0)
    pts = {
        (r, lv): (rng.normal(size=(30, 2)), rng.integers(0, 3, 30))
        for r in ("before", "after")
        for lv in ("class", "sample")
    }
    figs["7"] = L.embeddings(pts, "t", {"class": ["a", "b", "c"]})
    visible = {k: [ax for ax in f.axes if ax.get_visible() and ax.get_label() != "<colorbar>"] for k, f in figs.items()}
    assert [ax.get_title() for ax in visible["1"]] == (
        ["sample level", "class level", "superclass level"] if superclass else ["sample level", "class level"]
    )
    # figure 5: class, superclass and superclass/class panels, one legend below them, none on a panel
    assert len(visible["5"]) == (3 if superclass else 1)
    assert not any(ax.get_legend() for ax in visible["5"]) and figs["5"].legends
    # figure 3: both panels on one epoch axis; the log axis of the loss labels more than one tick
    a3, b3 = visible["3"]
    assert a3.get_xlim() == b3.get_xlim()
    figs["3"].canvas.draw()
    assert a3.get_yscale() != "log" or sum(bool(t.get_text()) for t in a3.get_yticklabels()) >= 2
    assert len(visible["7"]) == 4
    # figure 4: one line per checkpoint (test) and its dashed train twin over the bank's r = 0.5, 1 (one seed:
    # lines, no error bars); the true classes as a star at r = 0 per checkpoint; the chance control as a
    # horizontal line at its accuracy
    ax4 = visible["4"][0]
    curves = [ln for ln in ax4.get_lines() if ln.get_marker() == "o"]
    assert not ax4.containers and len(curves) == 2 * 3 and list(curves[0].get_xdata()) == [0.5, 1.0]
    stars = [ln for ln in ax4.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 3 and list(stars[0].get_xdata()) == [0.0]
    (chance,) = [ln for ln in ax4.get_lines() if ln.get_linestyle() == ":"]
    assert chance.get_ydata()[0] == pytest.approx(d.probe("permuted_1.0", P.score_metric(d), layer).value.mean())
    # figure 9: class over the most random target; NCC ratio > 1 here, CDNV ratio = 1 (same CDNV for both)
    ncc9 = visible["9"][0].get_lines()[0].get_ydata()
    assert (np.asarray(ncc9) > 1).all() and "random_1.0" in visible["9"][0].get_title()
    # figure 8: the heatmap's cells are the trials' final class accuracy, each at its best layer (named under
    # it); the diverged trial's cell says so instead of showing its last probe
    texts = sorted(t.get_text() for t in visible["8"][0].texts)
    m = P.score_metric(d)
    assert texts == sorted(
        [
            f"{d.final('A', 'class', m, 'block2'):.3f}\nblock2",
            f"{d.final('B', 'class', m, 'projector'):.3f}\nprojector",
            "diverged",
        ]
    )
    for k, f in figs.items():
        f.savefig(tmp_path / f"{k}.png")
        assert (tmp_path / f"{k}.png").stat().st_size > 10_000
    assert not math.isnan(d.final("A", "class", "ncc_test", layer))


def test_git_commit_names_the_commit_and_code_changes_only(tmp_path):
    import subprocess

    from ssl_ray.provenance import git_commit

    assert git_commit(tmp_path) == "unknown (not a git checkout)"

    def git(*a):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True, capture_output=True
        )

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "results" / "fig.png").write_text("old")
    git("add", "-A")
    git("commit", "-qm", "x")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "results" / "fig.png").write_text("new")  # a report rewritten: still the same code
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == head + " +changes"
