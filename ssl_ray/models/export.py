"""Backbones to take away: a trained trial's backbone as safetensors and a JSON of what it is.

    ssl-ray export --run-id <trial run id> [--epoch N] --out DIR
    backbone = ssl_ray.models.load_backbone(DIR)      # an nn.Module; backbone.forward_taps(x, ["block2"])

``DIR/backbone.safetensors`` holds the backbone's weights (no projector, no optimizer: a checkpoint's
``state.pt`` is training state), ``DIR/backbone.json`` the architecture, its arguments, its layers, the
objective, the epoch and the MLflow run id. A ResNet with the ImageNet stem also gets
``DIR/torchvision.safetensors``: the same weights under torchvision's names, which load into
``torchvision.models.resnet18()``/``resnet50()`` (base width 64) with only ``fc`` missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import nn

from ssl_ray.checkpoints import load_state
from ssl_ray.config import ExperimentConfig
from ssl_ray.errors import ConfigError
from ssl_ray.models.backbones import build_backbone
from ssl_ray.models.build import backbone_kwargs

WEIGHTS = "backbone.safetensors"
DESCRIPTION = "backbone.json"
TORCHVISION = "torchvision.safetensors"
FORMAT = 1


def torchvision_names(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A ResNet backbone's weights under torchvision's names: the stem (``layer1.0``) becomes ``conv1``/``bn1``,
    ``layer1``'s blocks (``layer1.1.<j>``) become ``layer1.<j>``; deeper stages keep their names."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")[1:]  # drop "stages"
        if parts[0] == "layer1" and parts[1] == "0":
            out[{"0": "conv1", "1": "bn1"}[parts[2]] + "." + ".".join(parts[3:])] = v
        elif parts[0] == "layer1":
            out[".".join(["layer1", *parts[2:]])] = v
        else:
            out[".".join(parts)] = v
    return out


def export_backbone(ckpt_dir: str | Path, out: str | Path, run_id: Optional[str] = None) -> Path:
    """Write the backbone of the checkpoint in ``ckpt_dir`` to ``out``; returns ``out``."""
    from safetensors.torch import save_file

    state = load_state(ckpt_dir, required=("model", "config", "epoch"))
    cfg = ExperimentConfig.from_dict(state["config"])
    kwargs = backbone_kwargs(cfg)
    backbone = build_backbone(cfg.model.backbone, **kwargs)
    prefix = "backbone."
    weights = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    backbone.load_state_dict(weights)  # strict: the checkpoint holds exactly this backbone
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in backbone.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS))
    torchvision_ok = cfg.model.backbone in ("resnet18", "resnet50") and kwargs.get("stem") == "imagenet"
    if torchvision_ok:
        save_file(torchvision_names(tensors), str(out / TORCHVISION))
    description = {
        "format": FORMAT, "architecture": cfg.model.backbone, "kwargs": kwargs, "layers": backbone.taps,
        "out_dim": backbone.out_dim, "image_size": cfg.data.image_size, "dataset": cfg.data.dataset,
        "objective": cfg.objective.to_dict(), "mode": cfg.train.mode, "epoch": int(state["epoch"]),
        "mlflow_run_id": run_id or state.get("mlflow_run_id") or None, "checkpoint": str(Path(ckpt_dir).resolve()),
        "torchvision": f"torchvision.models.{cfg.model.backbone}() (base width 64): {TORCHVISION}" if torchvision_ok else None,
        "input": "RGB images scaled to [0, 1], then normalized with the dataset's mean and std (ssl_ray.data.augment.normalize)",
    }
    (out / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
    return out


def load_backbone(path: str | Path) -> nn.Module:
    """The backbone ``export_backbone`` wrote to ``path``, in eval mode (``.taps`` names its layers)."""
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not (path / DESCRIPTION).is_file() or not (path / WEIGHTS).is_file():
        raise ConfigError(f"{path}: not an exported backbone (no {DESCRIPTION} and {WEIGHTS})")
    d = json.loads((path / DESCRIPTION).read_text())
    backbone = build_backbone(d["architecture"], **d["kwargs"])
    backbone.load_state_dict(load_file(str(path / WEIGHTS)))
    return backbone.eval()
