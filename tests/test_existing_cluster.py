"""`--address` runs the sweep on an existing Ray cluster (here a real ray.cluster_utils.Cluster)."""

import subprocess

import pytest
from mlflow.tracking import MlflowClient

from conftest import LIGHT_PROBES, PY, ROOT


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    yield c
    c.shutdown()


def test_sweep_on_existing_cluster(cluster, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [PY, str(ROOT / "experiments" / "sweep_vicreg.py"), "--address", cluster.address, "--name", "remote",
           "--epochs", "1", "--set", "model.depth=1", "--search", "model.width=[4]", "--search", "objective.lam=[25]",
           "--storage-path", str(tmp_path / "sweeps"), "--mlflow-uri", uri, *LIGHT_PROBES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("remote").experiment_id])
    trials = [r for r in runs if r.data.tags.get("ssl_ray.kind") == "trial"]
    assert len(trials) == 1
    assert "probe/class/ncc_test/block1" in trials[0].data.metrics
