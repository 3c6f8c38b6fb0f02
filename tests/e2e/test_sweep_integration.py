"""A tiny sweep (2 trials x 2 epochs) through a real local Ray -- Tune, Train, probe fan-out -- read
back through MLflow's client.

Faults are injected into the probe fan-out's Ray workers (``SSL_RAY_FAULTS``): one score task fails on
its first attempt (the retry must fill the gap), and the features of epoch 2 fail on every attempt in
both trials (the sweep must finish anyway, record the failure, and ``ssl-ray probe`` must fill it later).
"""

import json
import os
import subprocess
from collections import Counter

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import PY, ROOT, SweepRun, run_sweep_script
from ssl_ray.faults import fired
from ssl_ray.probes.scoring import PROBES, expected_keys

TAPS = ["block1", "block2", "proj_hidden1", "projector"]
TARGETS = ["sample", "class", "superclass", "random_0.0", "random_0.25", "random_0.5", "random_0.75", "random_1.0",
           "permuted_1.0"]  # the defaults: random_<r> from the bank the sweep trains first
KEYS = expected_keys(TARGETS, TAPS, PROBES.names())
RETRIES = 2


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    faults = tmp / "faults.json"
    faults.write_text(json.dumps([
        {"site": "probe.score", "match": {"epoch": 1, "layer": "block1"}, "times": 1},
        {"site": "probe.features", "match": {"epoch": 2}, "times": 2 * (RETRIES + 1)},
    ]))
    run = run_sweep_script("sweep_vicreg.py", "tiny", tmp, "--epochs", "2",
                           "--set", "model.depth=2", "--search", "model.width=[8]", "--search", "objective.lam=[10,25]",
                           "--search", "objective.mu=[25]", "--search", "objective.nu=[1]", "--set", f"probe.max_retries={RETRIES}",
                           "--set", "probe.sample_images=10", "--set", "probe.sample_train_views=10",
                           "--set", "probe.sample_test_views=4", env=dict(os.environ, SSL_RAY_FAULTS=str(faults)), uri=uri)
    assert fired(faults) == 1 + 2 * (RETRIES + 1)
    return tmp, uri, run.proc


def trial_runs(uri):
    run = SweepRun(None, uri, "tiny", None)
    return run.client, run.trials


def probe_steps(c, run_id):
    """{key: Counter(step)} for every expected probe key."""
    return {key: Counter(h.step for h in c.get_metric_history(run_id, key)) for key in KEYS}


def test_parent_and_child_runs(tiny_sweep):
    tmp, uri, _ = tiny_sweep
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("tiny")
    assert exp is not None
    runs = c.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ssl_ray.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("ssl_ray.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(ch.data.tags["mlflow.parentRunId"] == parent.info.run_id for ch in children)
    assert sorted(ch.data.params["objective.lam"] for ch in children) == ["10", "25"]
    assert all(ch.data.params["model.width"] == "8" and ch.data.params["objective.name"] == "vicreg" for ch in children)
    assert len({ch.data.tags["ssl_ray.trial_id"] for ch in children}) == 2


def test_train_and_probe_histories(tiny_sweep):
    tmp, uri, _ = tiny_sweep
    c, children = trial_runs(uri)
    for ch in children:
        rid = ch.info.run_id
        for key in ["train/loss", "train/invariance", "train/variance", "train/covariance"]:
            hist = c.get_metric_history(rid, key)
            assert sorted(m.step for m in hist) == [1, 2], key
        for key, steps in probe_steps(c, rid).items():
            # epochs 0 and 1 are complete; epoch 2's features failed on every attempt
            assert sorted(steps) == [0, 1], key
            assert max(steps.values()) == 1, key  # one value per (key, step)
        # permuted labels cannot be predicted on held-out data
        for layer in TAPS:
            assert ch.data.metrics[f"probe/permuted_1.0/ncc_test/{layer}"] < 0.3


def test_the_sweep_trains_its_own_target_bank(tiny_sweep):
    """No bank given: the sweep trains a supervised classifier through Ray Train first, logs its curve
    and every bank target's label entropy (all >= 0.8), caches the bank, and its trials probe against it."""
    from ssl_ray.probes.targets import TargetBank
    from ssl_ray.tracking import child_runs

    tmp, uri, proc = tiny_sweep
    c, children = trial_runs(uri)
    (bank,) = child_runs(c, children[0].data.tags["mlflow.parentRunId"], kind="bank")
    entropy = c.get_metric_history(bank.info.run_id, "bank/label_entropy")
    assert len(entropy) >= 6 and min(h.value for h in entropy) >= 0.8
    assert len(c.get_metric_history(bank.info.run_id, "train/loss")) >= 5
    saved = TargetBank.load(tmp / "sweeps" / "tiny" / "bank" / "target_bank.npz")
    assert bank.data.tags["ssl_ray.bank.path"].endswith("tiny/bank/target_bank.npz") and len(saved.epochs) >= 6
    assert all(ch.data.params["probe.target_bank"] == bank.data.tags["ssl_ray.bank.path"] for ch in children)
    assert "[bank] training the supervised classifier" in proc.stderr


def test_failed_probe_task_is_retried_and_recorded(tiny_sweep):
    _, uri, proc = tiny_sweep
    c, children = trial_runs(uri)
    tags = [ch.data.tags for ch in children]
    retried = [t["ssl_ray.probe.failure.e0001.block1"] for t in tags if "ssl_ray.probe.failure.e0001.block1" in t]
    assert retried == ["failed 1 time(s), then succeeded on attempt 2"]  # one trial, one task, first attempt
    for t in tags:
        for layer in TAPS:  # epoch 2 gave up after 1 + RETRIES attempts, and says so
            assert t[f"ssl_ray.probe.failure.e0002.{layer}"].startswith(f"attempt {RETRIES + 1} failed: ")
            assert "InjectedFault" in t[f"ssl_ray.probe.failure.e0002.{layer}"]
        assert t["ssl_ray.probe.status"].startswith("incomplete: ") and "e2/block1" in t["ssl_ray.probe.status"]
    parent = c.get_run(children[0].data.tags["mlflow.parentRunId"])
    assert parent.data.tags["ssl_ray.probe.status"].startswith("incomplete: ")
    assert "attempt 1: " in proc.stdout and "-- retried" in proc.stdout and "GAVE UP" in proc.stdout


def test_tidy_probe_table_artifact(tiny_sweep):
    tmp, uri, _ = tiny_sweep
    c, children = trial_runs(uri)
    for ch in children:
        path = c.download_artifacts(ch.info.run_id, "probes/probes.csv", str(tmp / ch.info.run_id))
        df = pd.read_csv(path)
        assert list(df.columns) == ["trial_id", "run_id", "epoch", "layer", "target", "metric", "value"]
        assert len(df) == len(KEYS) * 2  # epochs 0 and 1
        assert not df.duplicated(["epoch", "layer", "target", "metric"]).any()
        row = df[(df.epoch == 1) & (df.layer == "projector") & (df.target == "class") & (df.metric == "ncc_test")]
        (at_epoch_1,) = [h.value for h in c.get_metric_history(ch.info.run_id, "probe/class/ncc_test/projector") if h.step == 1]
        assert row.value.item() == pytest.approx(at_epoch_1)


def test_backfill_fills_the_gap_and_rerun_is_idempotent(tiny_sweep):
    tmp, uri, _ = tiny_sweep
    c, children = trial_runs(uri)
    a, b = sorted(children, key=lambda r: r.data.tags["ssl_ray.trial_id"])
    env = {k: v for k, v in os.environ.items() if k != "SSL_RAY_FAULTS"}
    # by run id: only epoch 2 is missing, so only its 4 layers are probed
    proc = subprocess.run([PY, "-m", "ssl_ray.cli", "probe", "--run-id", a.info.run_id, "--mlflow-uri", uri, "--num-cpus", "2"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 checkpoint x layer tasks run; probes complete" in proc.stdout
    assert "[probes] 4/4 checkpoint x layer tasks done" in proc.stderr  # the progress display
    # by trial directory, everything again: every value is recomputed and none is logged twice
    proc = subprocess.run([PY, "-m", "ssl_ray.cli", "probe", "--trial-dir", b.data.tags["ssl_ray.trial_dir"], "--all",
                           "--mlflow-uri", uri, "--num-cpus", "2"], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "12 checkpoint x layer tasks run; probes complete" in proc.stdout
    for run in (a, b):
        for key, steps in probe_steps(c, run.info.run_id).items():
            assert sorted(steps) == [0, 1, 2], key
            assert max(steps.values()) == 1, key
        assert c.get_run(run.info.run_id).data.tags["ssl_ray.probe.status"] == "complete"
        df = pd.read_csv(c.download_artifacts(run.info.run_id, "probes/probes.csv", str(tmp / ("after-" + run.info.run_id))))
        assert sorted(df.epoch.unique()) == [0, 1, 2]


def test_summary_table_printed(tiny_sweep):
    _, uri, proc = tiny_sweep
    out = proc.stdout
    assert "ssl_ray sweep summary: tiny" in out
    table = out.split("ssl_ray sweep summary: tiny ===")[1]
    for col in ("class_linear_val", "class_linear_test", "random_1.0_linear_test", "permuted_1.0_linear_test", "final_loss"):
        assert col in table
    assert "best configuration, chosen on class linear val:" in table and "one seed per configuration" in table
    c, children = trial_runs(uri)
    assert all(f"run {ch.info.run_id}" in table for ch in children)
    assert f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1" in out
    # the report is written although epoch 2's probes gave up: it shows what MLflow holds
    assert "report: 12 files in " in out and "report not written" not in out
    readme = out.split("report: 12 files in ")[1].split()[0]
    from pathlib import Path

    assert "**one seed per configuration**: no error bars" in (Path(readme) / "README.md").read_text()
