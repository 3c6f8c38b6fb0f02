"""Backbone + projector, with every layer tappable as a globally pooled ``(B, C)`` feature."""

from __future__ import annotations

from typing import Dict, Iterable, Sequence

import torch
from torch import nn

from ssl_ray.models.backbones import build_backbone
from ssl_ray.models.heads import Projector


class SSLModel(nn.Module):
    def __init__(self, backbone: nn.Module, projector: Projector):
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    @property
    def taps(self) -> list[str]:
        """Ordered tap names: the backbone's, then the projector's."""
        return list(self.backbone.taps) + list(self.projector.taps)

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled output of the last backbone layer: the representation, ``(B, C)``."""
        return self.backbone(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding ``z = projector(representation)``, ``(B, D)``."""
        return self.projector(self.represent(x))

    def forward_features(self, x: torch.Tensor, layers: Iterable[str]) -> Dict[str, torch.Tensor]:
        """Globally average-pooled ``(B, C)`` features for each requested tap, in one pass."""
        layers = list(layers)
        unknown = set(layers) - set(self.taps)
        if unknown:
            raise KeyError(f"unknown taps {sorted(unknown)}; this model has {self.taps}")
        bb = [t for t in layers if t in self.backbone.taps]
        pj = [t for t in layers if t in self.projector.taps]
        if pj:  # projector taps need the full backbone
            bb_run = list(dict.fromkeys(bb + [self.backbone.taps[-1]]))
        else:
            bb_run = bb
        maps = self.backbone.forward_taps(x, bb_run) if bb_run else {}
        out = {name: maps[name].mean(dim=(2, 3)) for name in bb}
        if pj:
            h = maps[self.backbone.taps[-1]].mean(dim=(2, 3))
            for name, layer in zip(self.projector.taps, self.projector.layers):
                h = layer(h)
                if name in pj:
                    out[name] = h
                if not set(pj) - out.keys():
                    break
        return {name: out[name] for name in layers}


def build_model(
    backbone: str,
    projector_dims: Sequence[int],
    projector_bn: bool = True,
    projector_last_bias: bool = False,
    **backbone_kw,
) -> SSLModel:
    """Build ``backbone`` from the registry and a projector ``(backbone.out_dim, *projector_dims)``."""
    bb = build_backbone(backbone, **backbone_kw)
    return SSLModel(
        bb, Projector([bb.out_dim, *projector_dims], batch_norm=projector_bn, last_bias=projector_last_bias)
    )
