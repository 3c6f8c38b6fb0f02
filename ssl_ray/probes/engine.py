"""Compute probe metrics of one checkpoint: load it, extract features, score every target.

Engine-free: the Ray fan-out (``fanout.py``) and the CLI both call :func:`probe_checkpoint`.
Metric keys follow the MLflow naming contract: ``probe/<target>/<metric>/<layer>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional

import torch

from ssl_ray.config import ExperimentConfig
from ssl_ray.data.augment import normalize, to_unit_float
from ssl_ray.data.datasets import dataset_meta, load_dataset
from ssl_ray.models import SSLModel, build_model
from ssl_ray.probes.metrics import cdnv, ncc_accuracy
from ssl_ray.probes.targets import make_targets

CHECKPOINT_FILE = "state.pt"


def model_from_config(cfg: ExperimentConfig) -> SSLModel:
    """The model an experiment trains. ``res`` takes depth and width; ResNets take width (their base
    channel count) and a stem chosen by image size (the CIFAR stem below 64 px)."""
    m = cfg.model
    if m.backbone == "res":
        kw = {"depth": m.depth, "width": m.width}
    else:
        kw = {"width": m.width, "stem": "cifar" if cfg.data.image_size < 64 else "imagenet"}
    dims = list(m.projector_dims)
    if cfg.train.mode == "supervised":  # the projector's last layer is the classifier
        dims[-1] = dataset_meta(cfg.data.dataset, cfg.data.data_root, cfg.data.superclass_map)["num_classes"]
    return build_model(m.backbone, dims, projector_bn=m.projector_bn, projector_last_bias=m.projector_last_bias, **kw)


def load_checkpoint_state(ckpt_dir: str | Path) -> dict:
    """The training state saved in a checkpoint directory. Data only: ``weights_only=True``."""
    path = Path(ckpt_dir) / CHECKPOINT_FILE
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model(ckpt_dir: str | Path) -> tuple[SSLModel, ExperimentConfig, int]:
    state = load_checkpoint_state(ckpt_dir)
    cfg = ExperimentConfig.from_dict(state["config"])
    model = model_from_config(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    return model, cfg, int(state["epoch"])


@torch.no_grad()
def extract_features(model: SSLModel, images: torch.Tensor, layers: Iterable[str], batch_size: int = 512) -> Dict[str, torch.Tensor]:
    """One forward pass over ``images`` (uint8) for every requested layer: ``{layer: (N, C)}``."""
    layers = list(layers)
    chunks: Dict[str, list] = {name: [] for name in layers}
    for i in range(0, images.shape[0], batch_size):
        x = normalize(to_unit_float(images[i : i + batch_size]))
        feats = model.forward_features(x, layers)
        for name in layers:
            chunks[name].append(feats[name])
    return {name: torch.cat(c) for name, c in chunks.items()}


def score_layer(train_f: torch.Tensor, test_f: torch.Tensor, y_train: torch.Tensor, y_test: torch.Tensor,
                layer: str, targets: Iterable[str], seed: int = 0) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for target in targets:
        ytr, yte = make_targets(target, y_train, y_test, seed)
        out[f"probe/{target}/ncc_train/{layer}"] = ncc_accuracy(train_f, ytr, train_f, ytr)
        out[f"probe/{target}/ncc_test/{layer}"] = ncc_accuracy(train_f, ytr, test_f, yte)
        out[f"probe/{target}/cdnv/{layer}"] = cdnv(train_f, ytr)
    return out


def probe_checkpoint(ckpt_dir: str | Path, layers: Optional[Iterable[str]] = None,
                     targets: Optional[Iterable[str]] = None, seed: Optional[int] = None) -> tuple[int, Dict[str, float]]:
    """Probe one checkpoint at ``layers`` (default: every tap) -> ``(epoch, {metric key: value})``."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, cfg, epoch = load_model(ckpt_dir)
    layers = list(layers) if layers is not None else (cfg.probe.layers or model.taps)
    targets = list(targets) if targets is not None else cfg.probe.targets
    seed = cfg.probe.seed if seed is None else seed
    d = cfg.data
    train = load_dataset(d.dataset, "train", d.image_size, d.data_root, d.superclass_map).to_array(d.image_size)
    test = load_dataset(d.dataset, "test", d.image_size, d.data_root, d.superclass_map).to_array(d.image_size)
    ftr = extract_features(model, train.images, layers)
    fte = extract_features(model, test.images, layers)
    out: Dict[str, float] = {}
    for layer in layers:
        out.update(score_layer(ftr[layer], fte[layer], train.labels, test.labels, layer, targets, seed))
    return epoch, out
