"""The ImageNet path at toy scale, through the real topology, in one test (slow: 2.5-4 minutes here).

An ImageNet-layout folder of real JPEGs (10 classes, varied sizes, ``train/`` and ``val/``, a superclass
map) is written to a ``.beton`` by ``ssl-ray data write-beton --write-mode jpg``; the fake multi-node
cluster of ``cluster-local.yaml`` (a head with no CPUs for work, autoscaled ``train`` and ``probe`` node
types) and an ``mlflow server`` on 127.0.0.1 are started; and the ImageNet recipe
(``configs/imagenet_resnet50.yaml``) runs with ``--address auto`` and an HTTP tracking URI that carries a
password: a narrow ResNet-50 at 64 px, the SimCLR view protocol, FFCV, 2 DDP workers per trial placed on
two different nodes (STRICT_SPREAD), 2 trials, probes of ``layer1..layer4`` and the projector at every
kept checkpoint against sample, class and superclass, then the report. Everything is read back from
MLflow over HTTP; the password appears in no file, tag or console line.

    .venv/bin/python -m pytest -m slow tests/e2e/test_imagenet_cluster.py
"""

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PY, ROOT, mlflow_server, probe_table_steps

SECRET = "s3cret-pw"
CLASSES = [f"n0{i:07d}" for i in range(10)]  # ImageNet's wnid-shaped class folders
LAYERS = ["layer1", "layer2", "layer3", "layer4", "projector"]
TARGETS = ["sample", "class", "superclass"]
EPOCHS = 2


def write_imagenet(root: Path, train_per_class: int = 12, val_per_class: int = 4) -> Path:
    """Real JPEGs of varied sizes: each class a colour and a stripe orientation, so classes are learnable."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for k, wnid in enumerate(CLASSES):
            (root / split / wnid).mkdir(parents=True)
            for i in range(n):
                h, w = int(rng.integers(48, 160)), int(rng.integers(48, 160))
                yy, xx = np.mgrid[0:h, 0:w]
                stripes = np.sin((xx if k % 2 else yy) * (0.2 + 0.05 * k)) > 0
                img = np.zeros((h, w, 3), np.uint8)
                img[...] = (np.array([25 * k, 255 - 25 * k, (80 * k) % 256]) * (0.5 + 0.5 * stripes[..., None])).astype(
                    np.uint8
                )
                img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / wnid / f"{wnid}_{i}.JPEG", quality=90)
    supers = root / "superclasses.txt"
    supers.write_text("".join(f"{wnid} {'animal' if k < 5 else 'object'}\n" for k, wnid in enumerate(CLASSES)))
    return supers


@pytest.fixture
def mlflow_server_port(tmp_path):
    with mlflow_server(tmp_path) as base:
        yield int(base.rsplit(":", 1)[1])


@pytest.mark.slow
def test_imagenet_at_toy_scale_through_the_cluster_topology(tmp_path, mlflow_server_port, fake_autoscaling_cluster):
    from mlflow.tracking import MlflowClient
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    from ssl_ray.probes.scoring import expected_keys

    t0 = time.time()
    data = tmp_path / "imagenet"
    supers = write_imagenet(data)
    env = dict(os.environ, PYTHONUNBUFFERED="1", SSL_RAY_RESULTS=str(tmp_path / "results"))
    env.pop("MLFLOW_TRACKING_URI", None)
    beton = tmp_path / "imagenet_train.beton"
    w = subprocess.run(
        [
            PY,
            "-m",
            "ssl_ray.cli",
            "data",
            "write-beton",
            "--dataset",
            "imagenet",
            "--split",
            "train",
            "--data-root",
            str(data),
            "--superclass-map",
            str(supers),
            "--out",
            str(beton),
            "--write-mode",
            "jpg",
            "--max-resolution",
            "96",
            "--num-workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert w.returncode == 0, w.stderr[-3000:]
    assert "120 samples, 10 classes, 2 superclasses" in w.stdout

    uri = f"http://ssl:{SECRET}@127.0.0.1:{mlflow_server_port}"
    cmd = [
        PY,
        "-m",
        "ssl_ray.cli",
        "sweep",
        "--config",
        str(ROOT / "configs" / "imagenet_resnet50.yaml"),
        "--name",
        "imagenet_toy",
        "--address",
        "auto",
        "--mlflow-uri",
        uri,
        "--storage-path",
        str(tmp_path / "sweeps"),
        "--data-root",
        str(data),
        "--beton",
        str(beton),
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "16",
        "--workers",
        "2",
        "--cpus-per-worker",
        "0.9",
        "--gpus-per-worker",
        "0",
        "--set",
        f"data.superclass_map={supers}",
        "--set",
        "data.image_size=64",
        "--set",
        "data.loader=ffcv",
        "--set",
        "data.num_workers=1",
        "--set",
        "model.width=8",
        "--set",
        "model.projector_dims=[64,64]",
        "--set",
        "optim.warmup_epochs=0",
        "--set",
        "optim.lr=0.05",
        "--set",
        "train.placement_strategy=STRICT_SPREAD",
        "--set",
        f"probe.layers={LAYERS}".replace("'", ""),
        "--set",
        f"probe.targets={TARGETS}".replace("'", ""),
        "--set",
        "probe.metrics=[ncc,cdnv,linear]",
        "--set",
        "probe.num_gpus=0",
        "--set",
        "probe.max_train_images=1000",
        "--set",
        "probe.sample_images=20",
        "--set",
        "probe.sample_train_views=4",
        "--set",
        "probe.sample_test_views=2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, cwd=tmp_path)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-5000:]

    c = MlflowClient(f"http://127.0.0.1:{mlflow_server_port}")  # over HTTP, as a researcher reads it
    exp = c.get_experiment_by_name("imagenet_toy")
    runs = c.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("ssl_ray.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("ssl_ray.kind") == "trial"]
    assert len(trials) == 2 and sorted(t.data.params["objective.lam"] for t in trials) == ["10.0", "25.0"]
    keys = expected_keys(TARGETS, LAYERS, ["ncc", "cdnv", "linear"])
    for t in trials:
        tags = t.data.tags
        assert tags["ssl_ray.status"] == "finished" and tags["ssl_ray.probe.status"] == "complete", tags
        assert tags["ssl_ray.loader"] == "FFCVViews" and tags["ssl_ray.world_size"] == "2"
        nodes = tags["ssl_ray.train.nodes"].split(",")
        assert len(nodes) == 2 and len(set(nodes)) == 2 and FAKE_HEAD_NODE_ID not in nodes  # two worker nodes
        assert FAKE_HEAD_NODE_ID not in tags["ssl_ray.probe.nodes"].split(",")
        assert t.data.params["model.backbone"] == "resnet50" and t.data.params["data.image_size"] == "64"
        table = probe_table_steps(c, t.info.run_id)  # every value: MLflow holds a curated few
        for key in keys:  # every probe key at every kept epoch, once
            steps = table.get(key, [])
            assert steps == list(range(EPOCHS + 1)), (key, steps)
        assert 0.0 <= t.data.metrics["probe/superclass/linear_test/layer4"] <= 1.0
        assert sorted(m.step for m in c.get_metric_history(t.info.run_id, "train/loss")) == [1, 2]
    report = {Path(a.path).name for a in c.list_artifacts(parent.info.run_id, "report")}
    assert {"trials.csv", "trials.md", "README.md", "fig1_ncc.png"} <= report, report

    # the password is used, never written or printed
    assert SECRET not in console
    assert (
        parent.data.tags["ssl_ray.command"].count("ssl:***@") == 1 and SECRET not in parent.data.tags["ssl_ray.command"]
    )
    for f in [
        *(tmp_path / "sweeps").rglob("*.yaml"),
        *(tmp_path / "sweeps").rglob("*.json"),
        *(tmp_path / "results").rglob("*.md"),
    ]:
        assert SECRET not in f.read_text(errors="replace"), f
    print(f"ImageNet-shaped sweep on the fake cluster: {time.time() - t0:.0f} s")
