"""The whole trained network to take away: a trial's backbone and projector as safetensors, and a JSON of what it is.

    ssl-ray export --run-id <trial run id> [--epoch N] --out DIR
    net = ssl_ray.models.load_backbone(DIR)           # eval mode; net.taps: every tap, input to output
    feats = net.forward_features(x, ["block2", "projector"])   # {tap: pooled (B, C)}

``DIR/model.safetensors`` holds the network's weights (backbone and projector, BatchNorm statistics included;
no optimizer: a checkpoint's ``state.pt`` is training state). ``DIR/backbone.json`` says what it is: the
architecture and its arguments, the projector, every tap, the input normalization (read off
:func:`ssl_ray.data.augment.normalize`), the objective, the epoch and the MLflow run id. ``load_backbone``
returns the very :class:`~ssl_ray.models.ssl_model.SSLModel` the probes read (``probes/engine.py`` calls its
``forward_features``), so the features are the probes' own: a backbone tap is its stage's map averaged over
height and width; a projector tap (``proj_hidden<i>``, ``projector``) is that layer's output on the pooled
last stage.

A ResNet-18/50 of base width 64 with the ImageNet stem also gets ``DIR/torchvision.safetensors``: its backbone
under torchvision's names, which loads into ``torchvision.models.resnet18()``/``resnet50()`` with only ``fc``
missing. Other backbones (RES-L-H, the CIFAR stem) have no torchvision equivalent, and ``backbone.json`` says so.

Format 1 (an older export: ``backbone.safetensors``, the backbone alone) is not loaded: ``load_backbone`` says
in one line to export the checkpoint again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ssl_ray.checkpoints import CHECKPOINT_FILE, CorruptCheckpoint, checkpoint_dir, load_state, scan_checkpoints
from ssl_ray.config import ExperimentConfig
from ssl_ray.errors import ConfigError
from ssl_ray.models.build import backbone_kwargs, model_from_config
from ssl_ray.models.ssl_model import SSLModel, build_model

WEIGHTS = "model.safetensors"
DESCRIPTION = "backbone.json"
TORCHVISION = "torchvision.safetensors"
FORMAT = 2
OLD_WEIGHTS = "backbone.safetensors"  # format 1: the backbone alone


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


def torchvision_equivalent(architecture: str, kwargs: Dict[str, Any]) -> Tuple[bool, str]:
    """``(has one, one line saying which or why not)``."""
    if architecture == "res":
        return False, (
            f"no torchvision equivalent: RES-L-H (depth {kwargs.get('depth')}, width {kwargs.get('width')}) "
            "is ssl_ray's own; load it with ssl_ray.models.load_backbone"
        )
    if architecture in ("resnet18", "resnet50") and kwargs.get("stem") == "imagenet" and kwargs.get("width") == 64:
        return True, f"torchvision.models.{architecture}() loads {TORCHVISION} with only fc missing"
    return False, (
        f"no torchvision equivalent: this {architecture} has base width {kwargs.get('width')} and the "
        f"{kwargs.get('stem')} stem (torchvision's has 64 and the ImageNet stem)"
    )


def input_normalization() -> Dict[str, Any]:
    """What the network takes, read off :func:`ssl_ray.data.augment.normalize` itself (the transform of training
    views and probe images alike): it is ``(x - mean) / std`` per channel, so ``normalize(0) = -mean / std`` and
    ``normalize(1) - normalize(0) = 1 / std``."""
    from ssl_ray.data.augment import normalize

    zero, one = (normalize(torch.full((1, 3, 1, 1), v)).flatten().double() for v in (0.0, 1.0))
    std = 1 / (one - zero)
    mean = -zero * std
    mean_l, std_l = ([round(float(v), 6) for v in t] for t in (mean, std))
    lo, hi = float(zero.min()), float(one.max())
    return {
        "input": f"RGB float images in [0, 1] (uint8 / 255), then ssl_ray.data.augment.normalize: (x - mean) / std "
        f"per channel with mean {mean_l} and std {std_l}, i.e. [0, 1] -> [{lo:g}, {hi:g}] (fixed "
        "constants, not the dataset's statistics)",
        "mean": mean_l,
        "std": std_l,
    }


def projector_spec(model: SSLModel) -> Dict[str, Any]:
    """The projector's arguments to :func:`build_model`, read off the built module (a supervised run's last
    layer has one output per class, whatever ``projector_dims`` says)."""
    linears = [m for m in model.projector.modules() if isinstance(m, nn.Linear)]
    return {
        "dims": [linears[0].in_features] + [m.out_features for m in linears],
        "batch_norm": any(isinstance(m, nn.BatchNorm1d) for m in model.projector.modules()),
        "last_bias": linears[-1].bias is not None,
        "taps": list(model.projector.taps),
    }


def check_export_dir(out: str | Path) -> Path:
    """``--out``, absolute: a folder that exists or can be made, and written to (one ConfigError line if not)."""
    from ssl_ray.paths import unwritable

    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    why = unwritable(out)
    if why:
        raise ConfigError(f"--out {out}: cannot write there ({why})")
    return out


def check_checkpoint_arg(ckpt_dir: str | Path) -> None:
    """``--checkpoint`` names one checkpoint (a folder with a state.pt, or the file); a trial's folder, which
    holds several, is refused naming its latest."""
    d = checkpoint_dir(ckpt_dir)
    if (d / CHECKPOINT_FILE).is_file():
        return
    if not d.is_dir():
        raise ConfigError(f"--checkpoint {d}: not a checkpoint (no such directory)")
    found = scan_checkpoints(d)
    hint = (
        (
            f"; it is a trial directory (epochs {', '.join(str(e) for e, _ in found)}): give one of its checkpoints, "
            f"e.g. --checkpoint {found[-1][1]}"
        )
        if found
        else ""
    )
    raise ConfigError(f"{d}: not a checkpoint (no {CHECKPOINT_FILE} in it){hint}")


def export_backbone(ckpt_dir: str | Path, out: str | Path, run_id: Optional[str] = None) -> Tuple[Path, str]:
    """Write the whole network (backbone and projector) of the checkpoint in ``ckpt_dir`` to ``out``; returns
    ``(out, the one-line torchvision statement)``. Bad input (not a checkpoint, ``out`` a file) is a ConfigError."""
    from safetensors.torch import save_file

    out = check_export_dir(out)
    check_checkpoint_arg(ckpt_dir)
    try:
        state = load_state(ckpt_dir, required=("model", "config", "epoch"))
    except CorruptCheckpoint as e:
        raise ConfigError(f"not a readable checkpoint: {e}") from None
    cfg = ExperimentConfig.from_dict(state["config"])
    model = model_from_config(cfg)  # the network the probes read (build.load_model), built the same way
    model.load_state_dict(state["model"])  # strict: the checkpoint holds exactly this network
    kwargs = backbone_kwargs(cfg)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create it ({e.strerror})") from None
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS))
    has_tv, tv_line = torchvision_equivalent(cfg.model.backbone, kwargs)
    stale = [OLD_WEIGHTS] + ([] if has_tv else [TORCHVISION])  # an earlier export's files in the same folder
    if has_tv:
        prefix = "backbone."
        save_file(
            torchvision_names({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}),
            str(out / TORCHVISION),
        )
    for name in stale:
        (out / name).unlink(missing_ok=True)
    description = {
        "format": FORMAT,
        "architecture": cfg.model.backbone,
        "kwargs": kwargs,
        "out_dim": model.backbone.out_dim,
        "projector": projector_spec(model),
        "taps": list(model.taps),
        "features": "forward_features(x, taps) -> {tap: (B, C) float}: a backbone tap is its stage's map averaged "
        "over height and width, a projector tap that layer's output on the pooled last stage (as the probes read them)",
        "image_size": cfg.data.image_size,
        **input_normalization(),
        "dataset": cfg.data.dataset,
        "objective": cfg.objective.to_dict(),
        "mode": cfg.train.mode,
        "epoch": int(state["epoch"]),
        "mlflow_run_id": run_id or state.get("mlflow_run_id") or None,
        "checkpoint": str(Path(ckpt_dir).resolve()),
        "torchvision": tv_line,
        "torchvision_file": TORCHVISION if has_tv else None,
    }
    (out / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
    return out, tv_line


def load_backbone(path: str | Path) -> SSLModel:
    """The whole network ``export_backbone`` wrote to ``path``, in eval mode: ``.taps`` (backbone stages, then
    projector layers) and ``forward_features(x, taps)`` giving the probes' pooled ``(B, C)`` features."""
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not (path / DESCRIPTION).is_file():
        raise ConfigError(f"{path}: not an exported network (no {DESCRIPTION})")
    d = json.loads((path / DESCRIPTION).read_text())
    if d.get("format") == 1:
        raise ConfigError(
            f"{path}: a backbone-only export (format 1, from an older ssl_ray); "
            "export the checkpoint again with ssl-ray export for the whole network"
        )
    if d.get("format") != FORMAT or not (path / WEIGHTS).is_file():
        raise ConfigError(
            f"{path}: not an ssl_ray export of format {FORMAT} (format {d.get('format')}, "
            f"{WEIGHTS} {'present' if (path / WEIGHTS).is_file() else 'missing'})"
        )
    p = d["projector"]
    model = build_model(
        d["architecture"],
        p["dims"][1:],
        projector_bn=p["batch_norm"],
        projector_last_bias=p["last_bias"],
        **d["kwargs"],
    )
    model.load_state_dict(load_file(str(path / WEIGHTS)))  # strict: every weight of the network
    return model.eval()
