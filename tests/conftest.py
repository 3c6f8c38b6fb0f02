import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def pytest_configure(config):
    """Sweeps run by tests write their reports (results/<experiment>/) and default stores under a temporary
    results folder, never into the checkout's results/."""
    if "SSL_RAY_RESULTS" not in os.environ:
        import tempfile

        os.environ["SSL_RAY_RESULTS"] = str(Path(tempfile.mkdtemp(prefix="ssl_ray_test_results_")) / "results")


@pytest.fixture
def mlflow_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def clean_env(tmp_path):
    """Environment for subprocesses: no inherited tracking URI, results under tmp_path."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["SSL_RAY_RESULTS"] = str(tmp_path / "results")
    env["PYTHONUNBUFFERED"] = "1"
    return env

# Sweeps that test training, not the probe suite, probe lightly: NCC/CDNV on class and random labels.
LIGHT_PROBES = ["--set", "probe.metrics=[ncc,cdnv]", "--set", "probe.targets=[class,permuted_1.0]"]
