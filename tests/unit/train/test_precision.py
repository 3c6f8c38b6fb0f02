"""The GPU path's settings, checked where they can be on the CPU: which settings ``auto`` picks per
device, SyncBatchNorm conversion that keeps checkpoints loadable, and a bf16 + channels-last training
step whose objective still runs in fp32 (MMCR's SVD has no bf16 kernel)."""

import pytest
import torch

from ssl_ray.config import ExperimentConfig
from ssl_ray.models.build import model_from_config
from ssl_ray.objectives import build_objective
from ssl_ray.train.precision import Precision, prepare_module, resolve
from ssl_ray.train.steps import ssl_step
from ssl_ray.validation import validate_experiment


def test_auto_means_bf16_channels_last_and_syncbn_on_cuda_only():
    cpu = resolve("auto", "auto", "auto", torch.device("cpu"), world=2)
    assert cpu == Precision(amp=None, channels_last=False, sync_batchnorm=False)
    cuda = resolve("auto", "auto", "auto", torch.device("cuda"), world=2)
    assert cuda == Precision(amp=torch.bfloat16, channels_last=True, sync_batchnorm=True)
    assert not resolve("auto", "auto", "auto", torch.device("cuda"), world=1).sync_batchnorm  # nothing to sync
    forced = resolve("bf16", "on", "off", torch.device("cpu"), world=1)
    assert forced.amp == torch.bfloat16 and forced.channels_last and not forced.sync_batchnorm
    assert resolve("off", "off", "off", torch.device("cuda"), world=8) == Precision(None, False, False)
    assert cuda.describe() == "bf16, channels_last, SyncBatchNorm"


def small_model():
    cfg = validate_experiment(
        ExperimentConfig.from_dict(
            {
                "model": {"backbone": "res", "depth": 2, "width": 8, "projector_dims": [32, 32]},
                "data": {"dataset": "digits", "image_size": 16},
            }
        )
    )
    torch.manual_seed(0)
    return model_from_config(cfg)


def test_syncbn_conversion_keeps_the_checkpoint_format():
    model = small_model()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert n_bn > 0
    synced = prepare_module(small_model(), Precision(None, channels_last=False, sync_batchnorm=True))
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) >= n_bn
    assert not any(type(m) is torch.nn.BatchNorm2d for m in synced.modules())
    # same keys and shapes: a checkpoint of a SyncBatchNorm run loads into the plain model the probes build
    model.load_state_dict(synced.state_dict())


@pytest.mark.parametrize("objective", ["vicreg", "mmcr"])
def test_bf16_channels_last_step_matches_fp32(objective):
    torch.manual_seed(1)
    views = torch.rand(32, 2, 3, 16, 16)
    obj = build_objective(objective)
    ref_model = small_model()
    ref, _ = ssl_step(ref_model, obj, views)
    ref.loss.backward()

    p = Precision(amp=torch.bfloat16, channels_last=True, sync_batchnorm=False)
    model = prepare_module(small_model(), p)
    assert next(p for p in model.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    out, z = ssl_step(model, obj, views, precision=p)
    assert z.dtype == torch.float32 and out.loss.dtype == torch.float32  # the objective ran in fp32
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert abs(float(out.loss.detach()) - float(ref.loss.detach())) <= 0.05 * abs(float(ref.loss.detach())) + 1e-2
    cos = torch.nn.functional.cosine_similarity
    for (name, a), b in zip(model.named_parameters(), ref_model.parameters()):
        assert a.grad.dtype == torch.float32, name  # master weights and gradients stay fp32
        assert cos(a.grad.flatten(), b.grad.flatten(), dim=0) > 0.7, name  # unrelated gradients would give ~0
    whole = cos(
        torch.cat([a.grad.flatten() for a in model.parameters()]),
        torch.cat([b.grad.flatten() for b in ref_model.parameters()]),
        dim=0,
    )
    assert whole > 0.95, float(whole)
