"""The pixel baseline and information figures (4, 10, 11) and the report's findings, on hand-made tables whose
every value is known: what is drawn is what the tables hold, the pixels are never a candidate layer, and the
findings say "not monotone" or "unreliable" when the numbers do."""

import math

import pandas as pd
import pytest
from test_report_figures import sweep

from ssl_ray.reports import baseline_figures as B
from ssl_ray.reports import randomness_figures as R
from ssl_ray.reports.findings import information_findings, monotone_verdict, randomness_findings
from ssl_ray.reports.selection import select

PIXELS = {"random_0.5": 0.30, "random_1.0": 0.55, "class": 0.85, "permuted_1.0": 0.1, "sample": 0.2}


def with_baselines():
    """The report tests' sweep plus: every trial's pixel baseline (layer ``input``, epoch 0, higher at r = 1 than at
    r = 0.5, as the digits' bank is), the exact information per layer and epoch, and MINE at epochs 0 and 2
    (reliable at block1, unreliable elsewhere)."""
    d = sweep()
    rows = []
    for t in d.trials:
        for target, v in PIXELS.items():
            rows.append((t.trial_id, "run" + t.trial_id, 0, "input", target, "linear_test", v))
        for e in (0, 1, 2):
            for i, layer in enumerate(d.layers):
                rows.append((t.trial_id, "run" + t.trial_id, e, layer, "class", "mi_exact", 1.0 + i + 0.1 * e))
                rows.append((t.trial_id, "run" + t.trial_id, e, layer, "class", "mi_gaussian", 1.5 + i + 0.1 * e))
                if e != 1:
                    flagged = 0.0 if layer == "block1" else 1.0
                    rows += [
                        (t.trial_id, "run" + t.trial_id, e, layer, "class", m, v)
                        for m, v in (("mine", 0.9 + 0.1 * e), ("mine_std", 0.05), ("mine_unreliable", flagged))
                    ]
    d.probes = pd.concat([d.probes, pd.DataFrame(rows, columns=d.probes.columns)], ignore_index=True)
    return d


def test_the_input_is_a_baseline_not_a_layer():
    d = with_baselines()
    assert "input" not in d.layers and "input" in set(d.probes.layer)
    assert d.pixel_baseline("random_1.0", "linear_test") == pytest.approx(0.55)
    assert math.isnan(d.pixel_baseline("superclass", "linear_test"))
    assert select(d).layer != "input" and "input" not in select(d).trial_layers.values()


def test_figure_4_draws_the_pixel_baseline_and_figure_10_subtracts_it():
    d = with_baselines()
    layer = select(d).layer
    ax4 = R.accuracy_vs_randomness(d, layer).axes[0]
    (pix,) = [ln for ln in ax4.get_lines() if ln.get_linestyle() == "-."]
    assert list(pix.get_xdata()) == [0.5, 1.0] and list(pix.get_ydata()) == pytest.approx([0.30, 0.55])
    hollow = [ln for ln in ax4.get_lines() if ln.get_marker() == "*" and ln.get_markerfacecolor() == "none"]
    assert len(hollow) == 1 and hollow[0].get_ydata()[0] == pytest.approx(0.85)

    fig = B.above_pixels(d)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(d.configs()) and len({ax.get_ylim() for ax in panels}) == 1  # one y scale
    lines = [ln for ln in panels[0].get_lines() if ln.get_marker() == "o"]
    assert len(lines) == 2 * len(d.layers)  # first and last checkpoint, per layer
    trial = d.configs()[list(d.configs())[0]][0].trial_id
    for ln in lines:  # each point is the layer's accuracy minus the pixels', at the same r
        for r, y in zip(ln.get_xdata(), ln.get_ydata()):
            acc = d.probes[
                (d.probes.trial_id == trial) & (d.probes.target == f"random_{r}") & (d.probes.metric == "linear_test")
            ]
            assert any(abs(v - PIXELS[f"random_{r}"] - y) < 1e-9 for v in acc.value)


def test_figure_11_draws_exact_information_and_only_reliable_mine():
    d = with_baselines()
    fig = B.information_over_training(d)
    ax = [a for a in fig.axes if a.get_visible()][0]
    ids = [t.trial_id for t in d.configs()[list(d.configs())[0]]]
    assert "MINE unreliable at 4 of 6 readings (not drawn)" in ax.get_title()  # 2 layers x 2 epochs flagged
    (bars,) = ax.containers  # one error-bar series: block1, the reliable layer
    assert list(bars.lines[0].get_xdata()) == [0, 2] and list(bars.lines[0].get_ydata()) == pytest.approx([0.9, 1.1])
    exact = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 3 and ln.get_linestyle() == "-"]
    bound = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 3 and ln.get_linestyle() == "--"]
    assert len(exact) == len(bound) == len(d.layers) and list(exact[0].get_ydata()) == pytest.approx([1.0, 1.1, 1.2])
    assert list(bound[0].get_ydata()) == pytest.approx([1.5, 1.6, 1.7])
    assert len(ids) == 1


def test_findings_say_what_the_numbers_say():
    assert monotone_verdict(pd.Series({0.0: 0.9, 0.5: 0.6, 1.0: 0.5})) == (True, None)
    ok, rise = monotone_verdict(pd.Series({0.0: 0.9, 0.5: 0.4, 1.0: 0.55}))
    assert not ok and rise == (0.5, 1.0, pytest.approx(0.15))
    d = with_baselines()
    sel = select(d)
    text = "\n".join(randomness_findings(d, sel))
    # the pixels rise from r = 0.5 (0.30) to r = 1 (0.55): the report must say the baseline is not monotone
    assert "The pixel baseline itself: **not monotone** in r (it rises by 0.250 from r = 0.5 to r = 1)" in text
    assert "| 1 |" in text and "one seed per configuration" in text
    info = "\n".join(information_findings(d, sel))
    assert "| block1 | 1.20 | 1.70 | 0.50 | 1.10 ± 0.05 |" in info  # reliable: shown, beside its Gaussian bound
    assert "| projector | " in info and "unreliable |" in info  # flagged: no number
    assert "MINE was reliable at" in info
