"""The other experiment scripts end to end on tiny settings: every SSL objective and the supervised
baseline train under Ray Train, and each trial gets its probe metrics in MLflow."""

import pytest
from conftest import LIGHT_PROBES, run_sweep_script

TINY = ["--epochs", "1", "--set", "model.depth=2", *LIGHT_PROBES]


def run_script(script, name, tmp_path, *extra):
    run = run_sweep_script(script, name, tmp_path, *TINY, *extra)
    return run.client, run.trials


@pytest.mark.slow  # ~2 min; each objective is also checked against its official code and under DDP in the default suite
def test_sweep_objectives_all_five(tmp_path):
    c, trials = run_script("sweep_objectives.py", "objs", tmp_path, "--search", "model.width=[8]", "--seeds", "1")
    names = sorted(t.data.params["objective.name"] for t in trials)
    assert names == ["arb", "barlow", "mmcr", "simclr", "vicreg"]
    for t in trials:
        m = t.data.metrics
        assert {"train/loss"} <= set(m)
        assert m["train/loss"] == m["train/loss"]  # finite, not NaN
        for layer in ["block1", "block2", "proj_hidden1", "projector"]:
            steps = sorted(x.step for x in c.get_metric_history(t.info.run_id, f"probe/class/ncc_test/{layer}"))
            assert steps == [0, 1], (t.data.params["objective.name"], layer)


@pytest.mark.slow
def test_supervised_baseline(tmp_path):
    c, trials = run_script("supervised_baseline.py", "sup", tmp_path, "--set", "model.width=8")
    assert sorted(t.data.params["data.augment"] for t in trials) == ["digits", "none"]
    for t in trials:
        assert t.data.params["train.mode"] == "supervised"
        assert "train/cross_entropy" in t.data.metrics and "train/accuracy" in t.data.metrics
        assert "probe/class/ncc_test/projector" in t.data.metrics


@pytest.mark.slow
def test_mmcr_with_momentum_and_many_views(tmp_path):
    c, trials = run_script(
        "sweep_objectives.py",
        "mmcr_m",
        tmp_path,
        "--search",
        "objective.name=[mmcr]",
        "--seeds",
        "1",
        "--search",
        "model.width=[8]",
        "--search",  # an mmcr key: searched, as the objective is (the base objective is vicreg)
        "objective.momentum=[0.9]",
        "--set",
        "data.views=4",
    )
    assert len(trials) == 1
    t = trials[0]
    assert t.data.params["objective.momentum"] == "0.9" and t.data.params["data.views"] == "4"
    assert "train/centroid_nuclear" in t.data.metrics
    assert "probe/class/ncc_test/projector" in t.data.metrics
