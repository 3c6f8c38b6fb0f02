"""The report's pure parts on hand-made sweep tables: which layer and trial it picks, the loss split,
the comparison table's values, and every figure drawn from tables with and without superclasses."""

import math

import numpy as np
import pandas as pd
import pytest

from ssl_ray.reports import figures as F
from ssl_ray.reports.source import SweepData, Trial, layer_order, target_order, trial_label
from ssl_ray.reports.tables import comparison_table, to_markdown

LAYERS = ["block1", "block2", "projector"]


def sweep(superclass=True, linear=True) -> SweepData:
    """Three trials: A (λ=10) best at block2, B (λ=25) best at projector, C diverged (huge numbers everywhere)."""
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
                targets = {"sample": a, "class": a, "random_0.5": a / 2, "random_1.0": 0.1}
                if superclass:
                    targets["superclass"] = min(1.0, a * 1.05)
                for target, v in targets.items():
                    metrics = {"ncc_train": v + 0.01, "ncc_test": v - 0.05, "cdnv": 1.0 / (1 + epoch), "rankme": 3.0 + epoch}
                    if linear:
                        metrics.update(linear_train=v + 0.02, linear_test=v, ncc_linear_ratio=(v - 0.05) / v)
                    rows += [(tid, "run" + tid, epoch, layer, target, m, val) for m, val in metrics.items()]
    probes = pd.DataFrame(rows, columns=["trial_id", "run_id", "epoch", "layer", "target", "metric", "value"])
    train = pd.DataFrame([(tid, e, m, v) for tid in acc for e in (1, 2) for m, v in
                          (("loss", 20.0 - e), ("invariance", 0.2), ("variance", 0.5), ("covariance", 3.0))],
                         columns=["trial_id", "epoch", "metric", "value"])
    params = {"A": {"objective.name": "vicreg", "objective.lam": "10.0", "objective.mu": "25.0", "objective.nu": "1.0", "model.width": "16"},
              "B": {"objective.name": "vicreg", "objective.lam": "25.0", "objective.mu": "25.0", "objective.nu": "1.0", "model.width": "32"},
              "C": {"objective.name": "vicreg", "objective.lam": "25.0", "objective.mu": "25.0", "objective.nu": "1.0", "model.width": "16"}}
    status = {"A": "finished", "B": "finished", "C": "diverged"}
    varied = ["model.width", "objective.lam"]
    trials = [Trial(t, "run" + t, status[t], params[t], None, trial_label(params[t], varied)) for t in acc]
    return SweepData("sqlite:///x.db", "exp", "parent", {}, trials, probes, train, varied)


def test_orders_and_labels():
    assert sorted(["projector", "block10", "block2", "proj_hidden1", "block1"], key=layer_order) == \
        ["block1", "block2", "block10", "proj_hidden1", "projector"]
    assert sorted(["random_1.0", "class", "random_0.25", "superclass", "sample"], key=target_order) == \
        ["sample", "class", "superclass", "random_0.25", "random_1.0"]
    assert trial_label({"objective.lam": "10.0", "model.width": "32"}, ["objective.lam", "model.width"]) == "λ=10 H=32"


def test_layer_and_trial_choice_skip_diverged_trials():
    d = sweep()
    # mean over A and B (C diverged): block1 0.65, block2 0.825, projector 0.825 -> the first maximum is kept
    assert F.report_layer(d) in ("block2", "projector")
    assert F.best_trial(d, "projector") == "B" and F.best_trial(d, "block2") == "A"
    assert F.score_metric(d) == "linear_test" and F.score_metric(sweep(linear=False)) == "ncc_test"


def test_vicreg_loss_parts_are_weighted_by_the_trials_coefficients():
    d = sweep()
    parts = F.loss_parts(d, "A")  # λ=10, µ=25, ν=1: invariance 10*0.2, regularization 25*0.5 + 1*3.0
    (inv_x, inv), (reg_x, reg) = parts["invariance λ·inv"], parts["regularization µ·var+ν·cov"]
    assert list(inv_x) == [1, 2] and np.allclose(inv, [2.0, 2.0]) and np.allclose(reg, [15.5, 15.5])
    assert np.allclose(F.loss_parts(d, "B")["invariance λ·inv"][1], [5.0, 5.0])


def test_comparison_table_rows():
    df = comparison_table(sweep())
    assert list(df.trial) == ["A", "B", "C"]
    a, b = df.iloc[0], df.iloc[1]
    assert a.best_layer == "block2" and a.class_linear_test == pytest.approx(0.90)
    assert a.class_ncc_test == pytest.approx(0.85) and a.class_cdnv == pytest.approx(1 / 3)
    assert a.superclass_linear_test == pytest.approx(0.945)
    assert b.best_layer == "projector" and b.final_loss == 18.0 and b["objective.lam"] == "25" and b.epoch == 2
    md = to_markdown(df).splitlines()
    assert len(md) == 5 and "| λ |" in md[0] and "| H |" in md[0]
    no_super = comparison_table(sweep(superclass=False))
    assert not any(c.startswith("superclass") for c in no_super.columns)
    assert "class_linear_test" not in comparison_table(sweep(linear=False), "ncc_test").columns


@pytest.mark.parametrize("superclass,linear", [(True, True), (False, False)])
def test_every_figure_draws(tmp_path, superclass, linear):
    d = sweep(superclass, linear)
    layer = F.report_layer(d)
    figs = {"1": F.ncc_over_training(d, layer), "2": F.ncc_linear_ratio(d, layer, "A"), "3": F.loss_and_accuracy(d, layer),
            "4": F.accuracy_vs_randomness(d, layer), "5": F.accuracy_per_layer(d, "A"), "6": F.geometry_over_training(d, layer),
            "8": F.hyperparameter_view(d, layer, ["objective.lam", "objective.mu", "objective.nu", "model.width"])}
    rng = np.random.default_rng(0)
    pts = {(r, lv): (rng.normal(size=(30, 2)), rng.integers(0, 3, 30)) for r in ("before", "after") for lv in ("class", "sample")}
    figs["7"] = F.embeddings(pts, "t", {"class": ["a", "b", "c"]})
    visible = {k: [ax for ax in f.axes if ax.get_visible() and ax.get_label() != "<colorbar>"] for k, f in figs.items()}
    assert [ax.get_title() for ax in visible["1"]] == (["sample level", "class level", "superclass level"] if superclass
                                                       else ["sample level", "class level"])
    assert len(visible["5"]) == (3 if superclass else 1)
    assert len(visible["7"]) == 4
    # figure 4: one line per checkpoint (test) and its dashed train twin, over r = 0, 0.5, 1
    ax4 = visible["4"][0]
    assert len(ax4.get_lines()) == 2 * 3 and list(ax4.get_lines()[0].get_xdata()) == [0.0, 0.5, 1.0]
    # figure 8: the heatmap's cells are the trials' final class accuracy at the layer; the diverged trial's
    # cell says so instead of showing its last probe
    texts = sorted(t.get_text() for t in visible["8"][0].texts)
    m = F.score_metric(d)
    assert texts == sorted([f"{d.final('A', 'class', m, layer):.3f}", f"{d.final('B', 'class', m, layer):.3f}", "diverged"])
    for k, f in figs.items():
        f.savefig(tmp_path / f"{k}.png")
        assert (tmp_path / f"{k}.png").stat().st_size > 10_000
    assert not math.isnan(d.final("A", "class", "ncc_test", layer))


def test_git_commit_names_the_commit_and_code_changes_only(tmp_path):
    import subprocess

    from ssl_ray.provenance import git_commit

    assert git_commit(tmp_path) == "unknown (not a git checkout)"
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True,  # noqa: E731
                                    capture_output=True)
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
