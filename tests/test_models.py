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
