"""Training reads each loader under Ray Train: a .beton through FFCV with 2 DDP workers (each on its
own shard), and CIFAR-100 pickles through the torchvision DataLoader with the BYOL protocol."""

import subprocess

from mlflow.tracking import MlflowClient

from conftest import LIGHT_PROBES, PY, ROOT
from fakedata import write_cifar100


def run_sweep(tmp_path, name, *extra):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [PY, str(ROOT / "experiments" / "sweep_vicreg.py"), "--name", name, "--epochs", "1", "--num-cpus", "2",
           "--search", "objective.lam=[25]", "--search", "model.width=[8]", "--set", "model.depth=2",
           "--storage-path", str(tmp_path / "sweeps"), "--mlflow-uri", uri, "--no-report", *LIGHT_PROBES, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    trials = [r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get("ssl_ray.kind") == "trial"]
    assert len(trials) == 1
    t = trials[0]
    assert t.data.metrics["train/loss"] == t.data.metrics["train/loss"]  # finite
    assert "probe/class/ncc_test/projector" in t.data.metrics
    return t


def test_ffcv_beton_with_two_ddp_workers(tmp_path):
    beton = tmp_path / "digits_train.beton"
    w = subprocess.run([PY, "-m", "ssl_ray.cli", "data", "write-beton", "--dataset", "digits", "--split", "train",
                        "--out", str(beton), "--write-mode", "raw", "--num-workers", "1"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert w.returncode == 0, w.stderr
    assert "1437 samples, 10 classes" in w.stdout
    t = run_sweep(tmp_path, "ffcv", "--beton", str(beton), "--augment", "simclr", "--workers", "2",
                  "--cpus-per-worker", "0.95", "--batch-size", "64")
    tags = t.data.tags
    assert tags["ssl_ray.loader"] == "FFCVViews" and tags["ssl_ray.world_size"] == "2"
    # 1437 images, trimmed to 1436, split over 2 ranks, 64 per rank per step
    assert tags["ssl_ray.steps_per_epoch"] == str(1436 // 2 // 64)


def test_cifar100_through_torchvision_with_byol(tmp_path):
    root = write_cifar100(tmp_path / "data", n_train=96, n_test=40)
    t = run_sweep(tmp_path, "tv", "--dataset", "cifar100", "--data-root", str(root), "--augment", "byol",
                  "--set", "data.image_size=32", "--set", "data.loader=torchvision", "--batch-size", "32",
                  "--set", "probe.targets=[class,superclass,permuted_1.0]")
    assert t.data.tags["ssl_ray.loader"] == "TorchvisionViews" and t.data.tags["ssl_ray.steps_per_epoch"] == "3"
    assert t.data.params["data.augment"] == "byol"
    assert "probe/superclass/ncc_test/projector" in t.data.metrics  # CIFAR-100's 20 coarse labels
