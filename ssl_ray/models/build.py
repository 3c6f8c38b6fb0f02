"""The network an experiment config describes, built the same way for training, probing and export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from ssl_ray.checkpoints import load_state
from ssl_ray.config import ExperimentConfig
from ssl_ray.data.datasets import dataset_meta
from ssl_ray.data.protocols import is_imagenet_size
from ssl_ray.models.ssl_model import SSLModel, build_model


def backbone_kwargs(cfg: ExperimentConfig) -> Dict[str, Any]:
    """``res`` takes depth and width; ResNets take width (their base channel count) and a stem chosen by
    image size (the CIFAR stem below 64 px)."""
    m = cfg.model
    if m.backbone == "res":
        return {"depth": m.depth, "width": m.width}
    return {"width": m.width, "stem": "imagenet" if is_imagenet_size(cfg.data.image_size) else "cifar"}


def model_from_config(cfg: ExperimentConfig) -> SSLModel:
    """The model an experiment trains: its backbone (:func:`backbone_kwargs`) and projector. A supervised
    run's projector ends in the classifier: its last layer has one output per class."""
    m = cfg.model
    kw = backbone_kwargs(cfg)
    dims = list(m.projector_dims)
    if cfg.train.mode == "supervised":
        dims[-1] = dataset_meta(cfg.data.dataset, cfg.data.data_root, cfg.data.superclass_map)["num_classes"]
    return build_model(m.backbone, dims, projector_bn=m.projector_bn, projector_last_bias=m.projector_last_bias, **kw)


def load_model(ckpt_dir: str | Path) -> Tuple[SSLModel, ExperimentConfig, int]:
    """A checkpoint's model in eval mode, the config it was trained with, and its epoch."""
    state = load_state(ckpt_dir, required=("model", "config", "epoch"))
    cfg = ExperimentConfig.from_dict(state["config"])
    model = model_from_config(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    return model, cfg, int(state["epoch"])
