"""Backbones to take away: exported weights load back into the same network and, for ResNets with the
ImageNet stem, strictly (but for ``fc``) into torchvision's."""

import json

import pytest
import torch

from conftest import PY, ROOT, run_many


def trained_checkpoint(tmp_path, model_cfg, image_size=16, epoch=3):
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.models.build import model_from_config
    from ssl_ray.train.optim import build_optimizer, build_scheduler
    from ssl_ray.train.state import save_state

    cfg = ExperimentConfig.from_dict({"model": model_cfg, "data": {"image_size": image_size}})
    torch.manual_seed(0)
    model = model_from_config(cfg)
    for p in model.parameters():  # not the initialization: weights a load could not get right by chance
        p.data.add_(torch.randn_like(p) * 0.1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    d = tmp_path / "trial" / f"epoch_{epoch:04d}"
    d.mkdir(parents=True)
    save_state(str(d), model=model, optimizer=opt, scheduler=build_scheduler(opt, 0, 10), epoch=epoch, cfg=cfg.to_dict(),
               mlflow_run_id="abc123")
    return d, model.eval()


def test_res_backbone_round_trip(tmp_path):
    from ssl_ray.models import load_backbone
    from ssl_ray.models.export import export_backbone

    ckpt, model = trained_checkpoint(tmp_path, {"backbone": "res", "depth": 3, "width": 8})
    out = export_backbone(ckpt, tmp_path / "export")
    d = json.loads((out / "backbone.json").read_text())
    assert d["architecture"] == "res" and d["kwargs"] == {"depth": 3, "width": 8} and d["epoch"] == 3
    assert d["layers"] == ["block1", "block2", "block3"] and d["mlflow_run_id"] == "abc123" and d["torchvision"] is None
    assert d["objective"]["name"] == "vicreg"
    backbone = load_backbone(out)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        ours = backbone.forward_taps(x, backbone.taps)
        ref = model.backbone.forward_taps(x, backbone.taps)
    for layer in backbone.taps:
        assert torch.equal(ours[layer], ref[layer]), layer
    assert not (out / "torchvision.safetensors").exists()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_resnet_loads_strictly_into_torchvision(tmp_path, arch):
    import torchvision
    from safetensors.torch import load_file

    from ssl_ray.models.export import export_backbone

    ckpt, model = trained_checkpoint(tmp_path, {"backbone": arch, "width": 64, "projector_dims": [32]}, image_size=64)
    out = export_backbone(ckpt, tmp_path / "export")
    tv = getattr(torchvision.models, arch)()
    result = tv.load_state_dict(load_file(str(out / "torchvision.safetensors")), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    tv.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        t = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        t = tv.layer4(tv.layer3(tv.layer2(tv.layer1(t))))
        ours = model.backbone(x)
    assert torch.allclose(t, ours, atol=1e-5), (t - ours).abs().max()


def test_export_command_finds_the_checkpoint_from_the_run_id(tmp_path):
    from ssl_ray.tracking import TAG_TRIAL_DIR, client, ensure_experiment

    ckpt, _ = trained_checkpoint(tmp_path, {"backbone": "res", "depth": 2, "width": 8}, epoch=5)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    run = c.create_run(ensure_experiment(c, "x", uri), tags={TAG_TRIAL_DIR: str(ckpt.parent)})
    cli = [PY, "-m", "ssl_ray.cli", "export", "--mlflow-uri", uri, "--out", str(tmp_path / "out")]
    found, no_epoch, no_run = run_many([[*cli, "--run-id", run.info.run_id], [*cli, "--run-id", run.info.run_id, "--epoch", "7"],
                                        [*cli, "--run-id", "nope"]], cwd=ROOT)
    assert found.returncode == 0, found.stderr
    d = json.loads((tmp_path / "out" / "backbone.json").read_text())
    assert d["epoch"] == 5 and d["mlflow_run_id"] == run.info.run_id
    assert no_epoch.returncode == 2
    assert no_epoch.stderr.strip() == f"error: run {run.info.run_id}: no checkpoint of epoch 7 (epochs: 5)"
    assert no_run.returncode == 2 and "run nope: not found" in no_run.stderr
