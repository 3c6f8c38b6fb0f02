"""``--scheduler asha``: Ray Tune's ASHA stops the worse trials early; they are recorded as stopped and
their kept checkpoints are still probed."""

import subprocess

import pytest
from mlflow.tracking import MlflowClient

from conftest import PY, ROOT
from ssl_ray.probes.scoring import expected_keys

LAYERS = ["block1", "block2", "proj_hidden1", "projector"]


@pytest.mark.slow
def test_asha_stops_trials_early_and_probes_what_they_kept(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tmp_path / "asha.yaml"
    cfg.write_text("scheduler: asha\nasha_grace_period: 1\nasha_reduction_factor: 2\n")
    cmd = [PY, str(ROOT / "experiments" / "sweep_vicreg.py"), "--config", str(cfg), "--name", "asha", "--epochs", "4",
           "--set", "model.depth=2", "--search", "model.width=[8]", "--search", "objective.lam=[25]",
           "--search", "objective.mu=[25]", "--search", "objective.nu=[1]", "--search", "optim.lr=[1e-5,2e-3,4e-3,1e-4]",
           "--max-concurrent-trials", "2", "--cpus-per-worker", "0.95", "--set", "probe.metrics=[ncc]",
           "--set", "probe.targets=[class]", "--storage-path", str(tmp_path / "sweeps"), "--mlflow-uri", uri, "--num-cpus", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("asha")
    runs = [r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get("ssl_ray.kind") == "trial"]
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
        for k in expected_keys(["class"], LAYERS, ["ncc"]):
            assert sorted(m.step for m in c.get_metric_history(r.info.run_id, k)) == probed
    assert "stopped by the scheduler" in proc.stdout
