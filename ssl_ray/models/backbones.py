"""Backbones with named layer taps.

A backbone is an ``nn.Module`` with

* ``taps``: the ordered names of the layers whose output can be probed;
* ``forward_taps(x, layers) -> dict[name, (B, C, H, W) feature map]`` that runs only as deep as the
  deepest requested tap;
* ``out_dim``: the channel count of the last tap (the representation fed to the projector).

RES-L-H follows the architecture family of Ben-Shaul et al., "Reverse Engineering Self-Supervised
Learning" (NeurIPS 2023): a stem, then L residual blocks of width H.
"""

from __future__ import annotations

from typing import Dict, Iterable, List

import torch
from torch import nn

from ssl_ray.registry import Registry

BACKBONES = Registry("backbone")


def build_backbone(name: str, **kw) -> nn.Module:
    return BACKBONES.build(name, **kw)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 strided) shortcut, as in ResNet-18."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class TappedSequential(nn.Module):
    """Named stages run in order; ``forward_taps`` stops after the deepest requested stage."""

    def __init__(self, stages: "Dict[str, nn.Module]", out_dim: int):
        super().__init__()
        self.stages = nn.ModuleDict(stages)
        self.out_dim = out_dim

    @property
    def taps(self) -> List[str]:
        return list(self.stages.keys())

    def forward_taps(self, x: torch.Tensor, layers: Iterable[str]) -> Dict[str, torch.Tensor]:
        wanted = set(layers)
        unknown = wanted - set(self.taps)
        if unknown:
            raise KeyError(f"unknown taps {sorted(unknown)}; this backbone has {self.taps}")
        out: Dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            if not wanted - out.keys():
                break
            x = stage(x)
            if name in wanted:
                out[name] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return x


@BACKBONES.register("res")
def res(
    depth: int = 4, width: int = 32, in_channels: int = 3, downsample_at: Iterable[int] | None = None
) -> TappedSequential:
    """RES-L-H: a 3x3 conv stem of width H, then L = ``depth`` residual blocks of width H.

    Taps: ``block1`` ... ``blockL``. Blocks listed in ``downsample_at`` (1-based) halve the spatial
    size; by default the block in the middle of the stack does, so deeper blocks see coarser maps.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"RES-L-H needs depth >= 1 and width >= 1; got depth={depth}, width={width}")
    if downsample_at is None:
        downsample_at = (depth // 2 + 1,) if depth >= 2 else ()
    stride_blocks = set(downsample_at)
    stem = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
    )
    stages: Dict[str, nn.Module] = {}
    for i in range(1, depth + 1):
        block = BasicBlock(width, width, stride=2 if i in stride_blocks else 1)
        stages[f"block{i}"] = nn.Sequential(stem, block) if i == 1 else block
    return TappedSequential(stages, out_dim=width)


def _resnet(block, layers, width: int, stem: str, in_channels: int) -> TappedSequential:
    """A ResNet built from torchvision's own blocks, with every stage ``width * 2^i`` channels wide.

    ``width`` is the base width (64 for the standard ResNet; 128 is "ResNet-2x"). ``stem`` is
    ``imagenet`` (7x7/2 conv and 3x3/2 max-pool) or ``cifar`` (3x3/1 conv, no pool) for small images.
    Taps: ``layer1`` ... ``layer4``.
    """
    if width < 1:
        raise ValueError(f"resnet width must be >= 1, got {width}")
    if stem == "imagenet":
        stem_mod = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
    elif stem == "cifar":
        stem_mod = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
    else:
        raise ValueError(f"unknown stem {stem!r} (expected 'imagenet' or 'cifar')")
    stages: Dict[str, nn.Module] = {}
    c_in = width
    for i, n_blocks in enumerate(layers):
        planes = width * 2**i
        stride = 1 if i == 0 else 2
        blocks = []
        for j in range(n_blocks):
            down = None
            if j == 0 and (stride != 1 or c_in != planes * block.expansion):
                down = nn.Sequential(
                    nn.Conv2d(c_in, planes * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            blocks.append(block(c_in, planes, stride if j == 0 else 1, down))
            c_in = planes * block.expansion
        stage = nn.Sequential(*blocks)
        stages[f"layer{i + 1}"] = nn.Sequential(stem_mod, stage) if i == 0 else stage
    return TappedSequential(stages, out_dim=c_in)


@BACKBONES.register("resnet18")
def resnet18(width: int = 64, stem: str = "cifar", in_channels: int = 3) -> TappedSequential:
    from torchvision.models.resnet import BasicBlock as TVBasicBlock

    return _resnet(TVBasicBlock, [2, 2, 2, 2], width, stem, in_channels)


@BACKBONES.register("resnet50")
def resnet50(width: int = 64, stem: str = "imagenet", in_channels: int = 3) -> TappedSequential:
    from torchvision.models.resnet import Bottleneck

    return _resnet(Bottleneck, [3, 4, 6, 3], width, stem, in_channels)
