"""Training reads CIFAR-100 pickles through the torchvision DataLoader with the BYOL protocol under Ray Train.
(A .beton through FFCV with 2 DDP workers, on two nodes, is tests/e2e/test_cluster.py's sweep.)"""

import pytest
from conftest import LIGHT_PROBES, run_sweep_script
from fakedata import write_cifar100


# 45 s: the CIFAR-100 reader is tested in tests/unit/data/test_data_formats.py, BYOL in tests/unit/objectives
@pytest.mark.slow
def test_cifar100_through_torchvision_with_byol(tmp_path):
    root = write_cifar100(tmp_path / "data", n_train=96, n_test=40)
    run = run_sweep_script(
        "sweep_vicreg.py",
        "tv",
        tmp_path,
        "--epochs",
        "1",
        "--search",
        "objective.lam=[25]",
        "--search",
        "model.width=[8]",
        "--set",
        "model.depth=2",
        "--no-report",
        *LIGHT_PROBES[:2],
        "--dataset",
        "cifar100",
        "--data-root",
        str(root),
        "--augment",
        "byol",
        "--set",
        "data.image_size=32",
        "--set",
        "data.loader=torchvision",
        "--batch-size",
        "32",
        "--set",
        "probe.targets=[class,superclass,permuted_1.0]",
    )
    (t,) = run.trials
    assert t.data.metrics["train/loss"] == t.data.metrics["train/loss"]  # finite
    assert t.data.tags["ssl_ray.loader"] == "TorchvisionViews" and t.data.tags["ssl_ray.steps_per_epoch"] == "3"
    assert t.data.params["data.augment"] == "byol"
    assert "probe/superclass/ncc_test/projector" in t.data.metrics  # CIFAR-100's 20 coarse labels
