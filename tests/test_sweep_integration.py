"""A tiny sweep (2 trials x 2 epochs) through a real local Ray -- Tune, Train, probe fan-out -- read
back through MLflow's client."""

import subprocess
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from conftest import PY, ROOT

TAPS = ["block1", "block2", "proj_hidden1", "projector"]
METRICS = ["ncc_train", "ncc_test", "cdnv"]
TARGETS = ["class", "random_1.0"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cmd = [PY, str(ROOT / "experiments" / "sweep_vicreg.py"), "--name", "tiny", "--epochs", "2",
           "--set", "model.depth=2", "--search", "model.width=[8]", "--search", "objective.lam=[10,25]",
           "--search", "objective.mu=[25]", "--search", "objective.nu=[1]",
           "--storage-path", str(tmp / "sweeps"), "--mlflow-uri", uri, "--num-cpus", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, uri, proc


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
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("tiny")
    children = [r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get("ssl_ray.kind") == "trial"]
    for ch in children:
        rid = ch.info.run_id
        for key in ["train/loss", "train/invariance", "train/variance", "train/covariance"]:
            hist = c.get_metric_history(rid, key)
            assert sorted(m.step for m in hist) == [1, 2], key
        assert sorted(m.step for m in c.get_metric_history(rid, "train/loss")) == [1, 2]
        for target in TARGETS:
            for metric in METRICS:
                for layer in TAPS:
                    key = f"probe/{target}/{metric}/{layer}"
                    hist = c.get_metric_history(rid, key)
                    steps = Counter(m.step for m in hist)
                    assert sorted(steps) == [0, 1, 2], key  # every kept checkpoint
                    assert max(steps.values()) == 1, key  # one value per (key, step)
        # random labels cannot be predicted on held-out data
        for layer in TAPS:
            assert ch.data.metrics[f"probe/random_1.0/ncc_test/{layer}"] < 0.3


def test_summary_table_printed(tiny_sweep):
    _, uri, proc = tiny_sweep
    out = proc.stdout
    assert "ssl_ray sweep summary: tiny" in out
    table = out.split("ssl_ray sweep summary: tiny ===")[1]
    assert "class_ncc_test" in table and "random_ncc_test" in table and "final_loss" in table
    assert f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1" in out
