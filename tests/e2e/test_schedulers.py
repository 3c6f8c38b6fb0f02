"""``--scheduler asha``: Ray Tune's ASHA stops the worse trials early; they are recorded as stopped and
their kept checkpoints are still probed."""

import pytest
from conftest import probe_table_steps, run_sweep_script

from ssl_ray.probes.scoring import expected_keys

LAYERS = ["block1", "block2", "proj_hidden1", "projector"]


@pytest.mark.slow
def test_asha_stops_trials_early_and_probes_what_they_kept(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tmp_path / "asha.yaml"
    cfg.write_text("scheduler: asha\nasha_grace_period: 1\nasha_reduction_factor: 2\n")
    run = run_sweep_script(
        "sweep_vicreg.py",
        "asha",
        tmp_path,
        "--config",
        str(cfg),
        "--epochs",
        "4",
        "--set",
        "model.depth=2",
        "--search",
        "model.width=[8]",
        "--search",
        "objective.lam=[25]",
        "--search",
        "objective.mu=[25]",
        "--search",
        "objective.nu=[1]",
        "--search",
        "optim.lr=[1e-5,2e-3,4e-3,1e-4]",
        "--max-concurrent-trials",
        "2",
        "--cpus-per-worker",
        "0.95",
        "--set",
        "probe.metrics=[ncc]",
        "--set",
        "probe.targets=[class]",
        uri=uri,
    )
    c, runs, proc = run.client, run.trials, run.proc
    assert len(runs) == 4
    stopped = [r for r in runs if r.data.tags["ssl_ray.status"] == "stopped"]
    finished = [r for r in runs if r.data.tags["ssl_ray.status"] == "finished"]
    assert stopped and finished and len(stopped) + len(finished) == 4
    for r in stopped:
        assert r.data.tags["ssl_ray.stop_reason"].startswith("stopped by the scheduler after epoch")
        last = max(m.step for m in c.get_metric_history(r.info.run_id, "train/loss"))
        assert last < 4
        probed = sorted(m.step for m in c.get_metric_history(r.info.run_id, "probe/class/ncc_test/block1"))
        assert probed and probed == sorted(set(probed)) and probed[0] == 0
        table = probe_table_steps(c, r.info.run_id)  # every value: MLflow holds a curated few
        for k in expected_keys(["class"], LAYERS, ["ncc"]):
            assert table.get(k, []) == probed, k
    assert "stopped by the scheduler" in proc.stdout
