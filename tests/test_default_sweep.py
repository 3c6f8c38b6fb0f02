"""Acceptance: the default sweep (no arguments) on the bundled dataset shows what the
reverse-engineering study found, within 15 minutes on 2 CPU cores.

* at the best layer of the best trial, class NCC test accuracy >= 0.8;
* the same accuracy against random labels <= 0.25;
* class NCC rises from the first checkpoint to the last, across at least 3 checkpoints.
"""

import subprocess
import time

from conftest import PY, ROOT
from ssl_ray.reports.tables import best_trial, trial_rows
from ssl_ray.tracking import TAG_KIND, client


def test_default_sweep_reproduces_the_study(clean_env, tmp_path):
    t0 = time.time()
    proc = subprocess.run([PY, str(ROOT / "experiments" / "sweep_vicreg.py")], capture_output=True, text=True,
                          env=clean_env, cwd=tmp_path, timeout=15 * 60)
    wall = time.time() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert wall < 15 * 60
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    c = client(uri)
    exp = c.get_experiment_by_name("vicreg_digits")
    parent = [r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get(TAG_KIND) == "sweep"][0]
    rows = trial_rows(uri, parent.info.run_id)
    assert len(rows) >= 4
    best = best_trial(rows)
    print(f"wall {wall:.0f}s; best {best}")
    assert best["class_ncc_test"] >= 0.8
    assert best["random_ncc_test"] <= 0.25
    traj = best["ncc_by_epoch"]
    epochs = sorted(traj)
    assert len(epochs) >= 3
    assert traj[epochs[-1]] > traj[epochs[0]]
    assert "browse in MLflow" in proc.stdout and "--host 127.0.0.1" in proc.stdout
