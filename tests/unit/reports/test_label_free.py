"""Label-free selection (RankMe, alpha-ReQ) on hand-made trials whose ranking is known: Spearman's rho is +1, -1,
+-0.6 or 0 where the ranks say so, alpha is read as -|alpha - 1|, the argmax of RankMe is picked among the usable
trials only, fewer than 3 trials give no rho; and the figure, the report and the sweep summary carry it."""

import math

import pandas as pd
import pytest
from test_baseline_figures import with_baselines
from test_report_figures import sweep

from ssl_ray.reports.label_free import (
    STEM,
    Reading,
    label_free_choice,
    label_free_figure,
    label_free_line,
    readings,
    representation_layer,
    rho_text,
    spearman,
)
from ssl_ray.reports.selection import select
from ssl_ray.reports.source import SweepData, Trial


def r(tid, rankme, acc, alpha=1.0, status="finished"):
    return Reading(tid, status, rankme, alpha, acc)


def test_rho_known_answers():
    up = [
        r(f"t{i}", rk, acc) for i, (rk, acc) in enumerate([(10, 0.10), (20, 0.15), (30, 0.50), (40, 0.51), (55, 0.90)])
    ]
    assert label_free_choice(up).rho_rankme == pytest.approx(1.0) and label_free_choice(up).n_rankme == 5
    down = [r(x.trial_id, x.rankme, 1.0 - x.accuracy) for x in up]
    assert label_free_choice(down).rho_rankme == pytest.approx(-1.0)  # negative, as computed: no sign flipped
    # by hand: ranks (1,2,3,4) against (2,1,4,3): sum d^2 = 4, rho = 1 - 6*4/(4*15) = 0.6; reversed -0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == (pytest.approx(0.6), 4)
    assert spearman([1, 2, 3, 4], [3, 4, 1, 2]) == (pytest.approx(-0.6), 4)
    # a null relation: ranks (1..5) against (2,5,3,1,4): sum d^2 = 20, rho = 1 - 6*20/(5*24) = 0
    null = [r(f"t{i}", rk, acc) for i, (rk, acc) in enumerate(zip([1, 2, 3, 4, 5], [0.2, 0.5, 0.3, 0.1, 0.4]))]
    assert label_free_choice(null).rho_rankme == pytest.approx(0.0, abs=1e-12)


def test_alpha_is_read_as_its_distance_from_one():
    alphas = [0.2, 0.6, 0.9, 1.05, 1.5, 2.5]
    acc = [1.0 - 0.3 * abs(a - 1.0) for a in alphas]  # the closer to 1, the better: alpha-ReQ's claim, exactly
    lf = label_free_choice([r(f"t{i}", 10.0 + i, y, alpha=a) for i, (a, y) in enumerate(zip(alphas, acc))])
    assert lf.rho_alpha == pytest.approx(1.0) and lf.n_alpha == 6
    assert spearman(alphas, acc)[0] < 0.5  # alpha itself does not rank them: the transform is what is tested
    worse = label_free_choice([r(f"t{i}", 1.0, 1.0 - y, alpha=a) for i, (a, y) in enumerate(zip(alphas, acc))])
    assert worse.rho_alpha == pytest.approx(-1.0)


def test_the_choice_is_the_highest_rankme_among_usable_trials():
    rs = [
        r("A", 10, 0.5),
        r("B", 1000, 0.1, status="diverged"),
        r("C", 900, 0.05, status="collapsed"),
        r("D", 800, 0.0, status="errored"),
        r("E", 50, 0.9, status="stopped"),
        r("F", 40, 0.8, status="running"),
        r("G", math.nan, 0.95),
    ]
    lf = label_free_choice(rs)
    assert (lf.trial_id, lf.rankme) == ("E", 50)
    # over A, E, F only (G has no RankMe): rho 1; with B, C, D counted it would be far below
    assert lf.rho_rankme == pytest.approx(1.0) and lf.n_rankme == 3 and lf.n_alpha == 4
    assert spearman([10, 1000, 900, 800, 50, 40], [0.5, 0.1, 0.05, 0.0, 0.9, 0.8])[0] < 0
    assert label_free_choice([r("X", 5, 0.1), r("Y", 5, 0.9), r("Z", 1, 0.3)]).trial_id == "X"  # the first of equals


def test_fewer_than_three_trials_or_constant_values_give_no_rho():
    two = label_free_choice([r("A", 10, 0.5), r("B", 20, 0.4), r("C", 99, 0.9, status="diverged")])
    assert two.trial_id == "B" and math.isnan(two.rho_rankme) and two.n_rankme == 2 and math.isnan(two.rho_alpha)
    assert rho_text(two.rho_rankme, two.n_rankme) == "Spearman rho: too few trials (n=2)"
    for none in ([], [r("A", 10, 0.5, status="diverged")]):
        lf = label_free_choice(none)
        assert lf.trial_id is None and math.isnan(lf.rankme) and lf.n_rankme == 0
    flat = label_free_choice([r(t, 7.0, y) for t, y in (("A", 0.1), ("B", 0.5), ("C", 0.9))])
    assert math.isnan(flat.rho_rankme) and "undefined" in rho_text(flat.rho_rankme, flat.n_rankme)
    assert rho_text(0.714, 8) == "Spearman rho = +0.71 (n=8)" and rho_text(-0.5, 3) == "Spearman rho = -0.50 (n=3)"


LAYERS = ("input", "block1", "block2", "proj_hidden1", "projector")


def geometry_sweep(trials) -> SweepData:
    """``trials``: id -> (status, rankme, alpha, class linear_val), the values at the representation (``block2``)
    at the last epoch (2). Everywhere else (epochs 0 and 1, the input, block1, the projector's taps, the ``sample``
    target) the values rank the other way, so a reading from the wrong place changes every answer."""
    rows = []
    for tid, (_, rk, al, acc) in trials.items():
        for epoch in (0, 1, 2):
            for layer in LAYERS:
                if layer == "input" and epoch:
                    continue
                for target in ("class", "sample"):
                    here = epoch == 2 and layer == "block2" and target == "class"
                    vals = {
                        "rankme": rk if here else 1000.0 - rk,
                        "alpha": al if here else al + 5.0,
                        "linear_val": acc if here else 1.0 - acc,
                    }
                    vals["linear_test"] = vals["linear_val"]
                    rows += [(tid, "run" + tid, epoch, layer, target, m, v) for m, v in vals.items()]
    probes = pd.DataFrame(rows, columns=["trial_id", "run_id", "epoch", "layer", "target", "metric", "value"])
    train = pd.DataFrame([(t, 2, "loss", 1.0) for t in trials], columns=["trial_id", "epoch", "metric", "value"])
    ts = [Trial(t, "run" + t, s, {}, None, f"T{t}", f"T{t}") for t, (s, *_) in trials.items()]
    return SweepData("sqlite:///x.db", "exp", "parent", {}, ts, probes, train, [])


# RankMe ranks the usable trials exactly backwards (rho -1); alpha agrees with alpha-ReQ (|alpha - 1| grows as accuracy
# falls: rho +1)
KNOWN = {
    "A": ("finished", 10.0, 1.0, 0.90),
    "B": ("finished", 20.0, 1.2, 0.80),
    "C": ("finished", 30.0, 0.6, 0.70),
    "D": ("stopped", 40.0, 2.0, 0.60),
    "E": ("finished", 50.0, 3.5, 0.50),
    "X": ("diverged", 999.0, 1.0, 0.99),
}


def test_the_representation_is_the_backbones_last_tap_read_at_the_last_checkpoint():
    d = geometry_sweep(KNOWN)
    assert representation_layer(d) == "block2"  # not proj_hidden1, projector or input
    assert readings(d, "block2") == [Reading(t, s, rk, al, acc) for t, (s, rk, al, acc) in KNOWN.items()]
    no_backbone = SweepData(
        d.uri,
        d.experiment,
        d.parent_run_id,
        {},
        d.trials,
        d.probes[~d.probes.layer.str.startswith("block")],
        d.train,
        [],
    )
    assert representation_layer(no_backbone) is None
    assert label_free_line(no_backbone, select(d)).startswith("label-free choice: none")


def test_figure_draws_usable_trials_with_their_rho_and_both_choices():
    d = geometry_sweep(KNOWN)
    sel = select(d)
    assert sel.best_trial == "A"  # the labeled choice; the label-free one is E (highest RankMe), the worst here
    fig = label_free_figure(d, sel)
    p1, p2 = [ax for ax in fig.axes if ax.get_visible()]
    usable = [v for v in KNOWN.values() if v[0] != "diverged"]
    assert [tuple(o) for o in p1.collections[0].get_offsets()] == [(v[1], v[3]) for v in usable]
    assert [tuple(o) for o in p2.collections[0].get_offsets()] == [(v[2], v[3]) for v in usable]
    assert "Spearman rho = -1.00 (n=5)" in p1.get_title() and "Spearman rho = +1.00 (n=5)" in p2.get_title()
    assert "rho of −|α − 1|" in p2.get_title() and any(list(ln.get_xdata()) == [1.0, 1.0] for ln in p2.get_lines())
    # ringed: the labeled choice A, then the label-free choice E
    assert [tuple(c.get_offsets()[0]) for c in p1.collections[1:]] == [(10.0, 0.90), (50.0, 0.50)]
    assert "1 unusable trial(s) left out" in fig._suptitle.get_text().replace("\n", " ")
    assert label_free_line(d, sel) == (
        "label-free choice (highest RankMe at block2): TE (RankMe 50.0); labeled choice: TA; "
        "Spearman rho(RankMe, class linear val) = -1.00 over 5 trials"
    )
    few = geometry_sweep({k: KNOWN[k] for k in ("A", "B", "X")})
    fig = label_free_figure(few, select(few))
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert all(
        "rho: too few trials (n=2)" in ax.get_title() and len(ax.collections[0].get_offsets()) == 2 for ax in panels
    )
    assert label_free_line(few, select(few)).endswith("Spearman rho(RankMe, class linear val): too few trials (n=2)")
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_report_writes_the_figure_and_its_section(tmp_path):
    from ssl_ray.reports.report import FIGURES, write_report

    rep = write_report(
        "exp", data=with_baselines(), log=False, out_dir=str(tmp_path), stream=open(tmp_path / "log", "w")
    )
    assert STEM in FIGURES and (tmp_path / f"{STEM}.png") in rep.files
    assert (tmp_path / f"{STEM}.png").stat().st_size > 10_000
    readme = (tmp_path / "README.md").read_text()
    # the report tests' sweep (with the information readings fig 11 needs): A and B usable (C diverged), RankMe read
    # at block2 (not the projector)
    assert (
        "## Label-free selection" in readme
        and "highest RankMe at block2" in readme
        and "too few trials (n=2)" in readme
    )


def test_the_sweep_summary_names_both_choices(tmp_path):
    import io

    from ssl_ray.config import SweepConfig
    from ssl_ray.sweep.summary import print_summary
    from ssl_ray.tracking import client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    parent = c.create_run(c.create_experiment("exp", artifact_location=str(tmp_path / "artifacts"))).info.run_id
    out = io.StringIO()
    print_summary(
        {"mlflow_uri": uri, "parent_run_id": parent, "sweep_dir": str(tmp_path), "results": None},
        SweepConfig(name="exp"),
        stream=out,
        data=sweep(),
    )
    text = out.getvalue()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("label-free choice")]
    d = sweep()
    assert f"labeled choice: {d.trial(select(d).best_trial).label}" in text and "(highest RankMe at block2)" in line
