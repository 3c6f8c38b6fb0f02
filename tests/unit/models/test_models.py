import pytest
import torch

from ssl_ray.errors import ConfigError
from ssl_ray.models import build_backbone, build_model


@pytest.mark.parametrize("width", [8, 24])
def test_res_taps_and_shapes(width):
    model = build_model("res", [64, 32], depth=4, width=width)
    assert model.taps == ["block1", "block2", "block3", "block4", "proj_hidden1", "projector"]
    x = torch.randn(5, 3, 16, 16)
    feats = model.forward_features(x, model.taps)
    assert list(feats) == model.taps
    for name in ["block1", "block2", "block3", "block4"]:
        assert feats[name].shape == (5, width)
    assert feats["proj_hidden1"].shape == (5, 64)
    assert feats["projector"].shape == (5, 32)
    model.eval()
    assert torch.allclose(model(x), model.forward_features(x, ["projector"])["projector"], atol=1e-6)
    assert torch.allclose(model.represent(x), model.forward_features(x, ["block4"])["block4"], atol=1e-6)


def test_res_depth_and_downsampling():
    bb = build_backbone("res", depth=3, width=8)
    maps = bb.forward_taps(torch.randn(2, 3, 16, 16), bb.taps)
    assert [m.shape[-1] for m in maps.values()] == [16, 8, 8]  # the middle block halves the map


def test_unknown_tap_and_backbone():
    model = build_model("res", [16], depth=2, width=4)
    with pytest.raises(KeyError, match="block9"):
        model.forward_features(torch.randn(2, 3, 8, 8), ["block9"])
    with pytest.raises(ConfigError, match="unknown backbone 'vit'"):
        build_backbone("vit")


@pytest.mark.parametrize("name,expansion", [("resnet18", 1), ("resnet50", 4)])
@pytest.mark.parametrize("width", [16, 32])
def test_resnet_taps_and_shapes_at_two_widths(name, expansion, width):
    model = build_model(name, [64], width=width, stem="cifar")
    assert model.taps == ["layer1", "layer2", "layer3", "layer4", "projector"]
    feats = model.forward_features(torch.randn(2, 3, 32, 32), model.taps)
    for i in range(4):
        assert feats[f"layer{i + 1}"].shape == (2, width * 2**i * expansion)
    assert feats["projector"].shape == (2, 64)
    maps = model.backbone.forward_taps(torch.randn(2, 3, 32, 32), ["layer1", "layer4"])
    assert maps["layer1"].shape[-1] == 32 and maps["layer4"].shape[-1] == 4  # CIFAR stem keeps 32 px


def test_imagenet_stem_downsamples_by_four():
    bb = build_backbone("resnet18", width=8, stem="imagenet")
    assert bb.forward_taps(torch.randn(1, 3, 64, 64), ["layer1"])["layer1"].shape[-1] == 16


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_parameter_count_matches_torchvision(name):
    import torchvision

    ours = sum(p.numel() for p in build_backbone(name, width=64, stem="imagenet").parameters())
    tv = getattr(torchvision.models, name)(weights=None)
    tv_no_head = sum(p.numel() for p in tv.parameters()) - sum(p.numel() for p in tv.fc.parameters())
    assert ours == tv_no_head


def test_projector_options():
    from ssl_ray.models import Projector

    p = Projector([8, 16, 16, 4], batch_norm=True, last_bias=False)
    assert p.taps == ["proj_hidden1", "proj_hidden2", "projector"]
    assert p.layers[-1].bias is None
    assert isinstance(p.layers[0][1], torch.nn.BatchNorm1d) and isinstance(p.layers[0][2], torch.nn.ReLU)
    q = Projector([8, 16, 4], batch_norm=False, last_bias=True)
    assert q.layers[-1].bias is not None
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in q.modules())
    assert q.layers[0][0].bias is not None  # without BN the hidden Linear keeps its bias
