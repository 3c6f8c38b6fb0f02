"""The whole trained network to take away: an export loads back into the network the probes read (backbone and
projector, the probes' own pooled features), states the input normalization the code really applies, and, for
ResNets with the ImageNet stem, loads strictly (but for ``fc``) into torchvision's."""

import json

import pytest
import torch
from conftest import PY, ROOT, run_many

RES = {"backbone": "res", "depth": 3, "width": 8, "projector_dims": [16, 12]}
RES_TAPS = ["block1", "block2", "block3", "proj_hidden1", "projector"]


def trained_checkpoint(tmp_path, model_cfg, image_size=16, epoch=3, **sections):
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.models.build import model_from_config
    from ssl_ray.train.optim import build_optimizer, build_scheduler
    from ssl_ray.train.state import save_state

    cfg = ExperimentConfig.from_dict({"model": model_cfg, "data": {"image_size": image_size}, **sections})
    torch.manual_seed(0)
    model = model_from_config(cfg)
    for p in model.parameters():  # not the initialization: weights a load could not get right by chance
        p.data.add_(torch.randn_like(p) * 0.1)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    d = tmp_path / "trial" / f"epoch_{epoch:04d}"
    d.mkdir(parents=True)
    save_state(
        str(d),
        model=model,
        optimizer=opt,
        scheduler=build_scheduler(opt, 0, 10),
        epoch=epoch,
        cfg=cfg.to_dict(),
        mlflow_run_id="abc123",
    )
    return d, model.eval()


@pytest.fixture(scope="module")
def res_export(tmp_path_factory):
    """A RES-L-H checkpoint (probed on the class target only) and its export."""
    from ssl_ray.models.export import export_backbone

    tmp = tmp_path_factory.mktemp("res")
    ckpt, model = trained_checkpoint(tmp, RES, probe={"targets": ["class"]})
    out, line = export_backbone(ckpt, tmp / "export")
    return ckpt, model, out, line, json.loads((out / "backbone.json").read_text())


def test_res_export_describes_the_whole_network(res_export):
    _, _, out, line, d = res_export
    assert (
        d["format"] == 2 and d["architecture"] == "res" and d["kwargs"] == {"depth": 3, "width": 8} and d["epoch"] == 3
    )
    assert d["taps"] == RES_TAPS and d["mlflow_run_id"] == "abc123" and d["objective"]["name"] == "vicreg"
    assert d["projector"] == {"dims": [8, 16, 12], "batch_norm": True, "last_bias": False, "taps": RES_TAPS[3:]}
    assert sorted(p.name for p in out.iterdir()) == ["backbone.json", "model.safetensors"]
    assert d["torchvision"] == line and d["torchvision_file"] is None
    assert line.startswith("no torchvision equivalent: RES-L-H (depth 3, width 8)") and "\n" not in line


def test_the_stated_normalization_is_the_codes(res_export):
    from ssl_ray.data.augment import normalize

    d = res_export[4]
    assert d["mean"] == [0.5] * 3 and d["std"] == [0.5] * 3
    x = torch.rand(2, 3, 5, 5)
    mean, std = (torch.tensor(d[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    assert torch.allclose(normalize(x), (x - mean) / std, atol=1e-6)
    assert "[0, 1] -> [-1, 1]" in d["input"] and "not the dataset's statistics" in d["input"]


def test_loaded_network_gives_the_probe_engines_features(res_export):
    """Against the engine's own path (load_model, its probe data, extract_features) on the same checkpoint."""
    from ssl_ray.checkpoints import load_state
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.models import load_backbone
    from ssl_ray.probes.engine import cached_probe_data, checkpoint_features

    ckpt, _, out, _, _ = res_export
    net = load_backbone(out)
    assert net.taps == RES_TAPS and not net.training
    engine = checkpoint_features(ckpt, layers=RES_TAPS)
    data = cached_probe_data(ExperimentConfig.from_dict(load_state(ckpt, required=("config",))["config"]))
    x = torch.cat(list(data.clean_batches("train", 512)))
    with torch.no_grad():
        ours = net.forward_features(x, RES_TAPS)
    assert list(ours) == RES_TAPS
    for tap, width in zip(RES_TAPS, [8, 8, 8, 16, 12]):
        ref = engine.layers[tap]["clean_train"]
        assert ours[tap].shape == (len(x), width) and ours[tap].dtype == torch.float32, tap
        assert torch.allclose(ours[tap], ref, atol=1e-5), (tap, (ours[tap] - ref).abs().max())


def test_a_supervised_export_keeps_its_classifier(tmp_path):
    from ssl_ray.models import load_backbone
    from ssl_ray.models.export import export_backbone

    ckpt, model = trained_checkpoint(tmp_path, RES, train={"mode": "supervised"})
    out, _ = export_backbone(ckpt, tmp_path / "export")
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        ours, ref = load_backbone(out).forward_features(x, ["projector"]), model.forward_features(x, ["projector"])
    assert ours["projector"].shape == (3, 10) and torch.equal(ours["projector"], ref["projector"])


def test_a_backbone_only_export_is_refused_in_one_line(res_export, tmp_path):
    from ssl_ray.errors import ConfigError
    from ssl_ray.models import load_backbone

    d = dict(res_export[4], format=1)
    (tmp_path / "backbone.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"format 1.*export the checkpoint again") as e:
        load_backbone(tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not an exported network"):
        load_backbone(tmp_path / "nothing")


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_resnet_loads_strictly_into_torchvision(tmp_path, arch):
    import torchvision
    from safetensors.torch import load_file

    from ssl_ray.models import load_backbone
    from ssl_ray.models.export import export_backbone

    ckpt, model = trained_checkpoint(tmp_path, {"backbone": arch, "width": 64, "projector_dims": [32]}, image_size=64)
    out, line = export_backbone(ckpt, tmp_path / "export")
    assert line == f"torchvision.models.{arch}() loads torchvision.safetensors with only fc missing"
    assert json.loads((out / "backbone.json").read_text())["torchvision_file"] == "torchvision.safetensors"
    tv = getattr(torchvision.models, arch)()
    result = tv.load_state_dict(load_file(str(out / "torchvision.safetensors")), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    tv.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        t = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        t = tv.layer4(tv.layer3(tv.layer2(tv.layer1(t))))
        ours = model.backbone(x)
        net = load_backbone(out)
        feats = net.forward_features(x, net.taps)
    assert torch.allclose(t, ours, atol=1e-5), (t - ours).abs().max()
    assert net.taps == ["layer1", "layer2", "layer3", "layer4", "projector"]
    assert torch.allclose(feats["layer4"], t.mean(dim=(2, 3)), atol=1e-5) and feats["projector"].shape == (2, 32)


def test_torchvision_statement_names_why_not():
    from ssl_ray.models.export import torchvision_equivalent

    assert torchvision_equivalent("resnet18", {"width": 64, "stem": "cifar"}) == (
        False,
        (
            "no torchvision equivalent: this resnet18 has base width 64 and the cifar stem "
            "(torchvision's has 64 and the ImageNet stem)"
        ),
    )
    assert not torchvision_equivalent("resnet50", {"width": 128, "stem": "imagenet"})[0]


def test_export_command_finds_the_checkpoint_from_the_run_id(tmp_path):
    from ssl_ray.tracking import TAG_TRIAL_DIR, client, ensure_experiment

    ckpt, _ = trained_checkpoint(tmp_path, {"backbone": "res", "depth": 2, "width": 8}, epoch=5)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    run = c.create_run(ensure_experiment(c, "x", uri), tags={TAG_TRIAL_DIR: str(ckpt.parent)})
    (tmp_path / "a_file").write_text("x")
    cli = [PY, "-m", "ssl_ray.cli", "export", "--mlflow-uri", uri, "--out", str(tmp_path / "out")]
    local = [PY, "-m", "ssl_ray.cli", "export"]
    found, no_epoch, no_run, out_file, not_ckpt, epoch_too = run_many(
        [
            [*cli, "--run-id", run.info.run_id],
            [*cli, "--run-id", run.info.run_id, "--epoch", "7"],
            [*cli, "--run-id", "nope"],
            [*local, "--checkpoint", str(ckpt), "--out", str(tmp_path / "a_file")],
            [*local, "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o2")],
            [*local, "--checkpoint", str(ckpt), "--epoch", "5", "--out", str(tmp_path / "o3")],
        ],
        cwd=ROOT,
    )
    assert found.returncode == 0, found.stderr
    assert "(backbone and projector)" in found.stdout
    assert "no torchvision equivalent: RES-L-H (depth 2, width 8)" in found.stdout.splitlines()[-1]
    d = json.loads((tmp_path / "out" / "backbone.json").read_text())
    assert d["epoch"] == 5 and d["mlflow_run_id"] == run.info.run_id and "projector" in d["taps"]
    assert no_epoch.returncode == 2
    assert no_epoch.stderr.strip() == f"error: run {run.info.run_id}: no checkpoint of epoch 7 (epochs: 5)"
    assert no_run.returncode == 2 and "run nope: not found" in no_run.stderr
    for bad, says in (
        (out_file, "exists and is not a folder"),
        (not_ckpt, "not a checkpoint"),
        (epoch_too, "--epoch goes with --run-id"),
    ):
        err = bad.stderr.strip()
        assert bad.returncode == 2 and says in err and err.startswith("error: ") and "\n" not in err, bad.stderr
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
