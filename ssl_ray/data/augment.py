"""Batched, device-agnostic augmentations that turn a batch of images into V views.

An augmentation protocol is a module called as ``aug(x, views, generator) -> (B, V, C, H, W)``
on float images in [0, 1]. All randomness comes from the ``torch.Generator`` passed in, so a seed
fixes every view of every epoch. Geometry (random resized crop, rotation, flip) is one batched
``affine_grid``/``grid_sample`` call; photometric jitter is per-sample arithmetic. The output is
normalized to zero mean and unit scale per channel (``(x - 0.5) / 0.5``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssl_ray.registry import Registry

AUGMENTATIONS = Registry("augmentation protocol")


def build_augment(name: str, **kw) -> "BatchAugment":
    return AUGMENTATIONS.build(name, **kw)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """The deterministic input transform shared by training views and probes."""
    return (x - 0.5) / 0.5


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


@dataclass
class BatchAugment:
    scale: tuple = (0.2, 1.0)  # area fraction of the random resized crop
    ratio: tuple = (3 / 4, 4 / 3)
    max_rotation_deg: float = 0.0
    hflip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    grayscale_p: float = 0.2
    noise_std: float = 0.0

    def geometry(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        area = _uniform(n, *self.scale, g, dev)
        log_r = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), g, dev)
        aspect = torch.exp(log_r)
        sw = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width / image width
        sh = torch.sqrt(area / aspect).clamp(max=1.0)
        tx = (torch.rand(n, generator=g, device=dev) * 2 - 1) * (1 - sw)
        ty = (torch.rand(n, generator=g, device=dev) * 2 - 1) * (1 - sh)
        ang = (torch.rand(n, generator=g, device=dev) * 2 - 1) * math.radians(self.max_rotation_deg)
        flip = torch.where(torch.rand(n, generator=g, device=dev) < self.hflip_p, -1.0, 1.0)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack(
            [torch.stack([sw * cos * flip, -sh * sin, tx], 1), torch.stack([sw * sin * flip, sh * cos, ty], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def photometric(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        on = (torch.rand(n, generator=g, device=dev) < self.jitter_p).float().view(n, 1, 1, 1)
        b = _uniform(n, 1 - self.brightness, 1 + self.brightness, g, dev).view(n, 1, 1, 1)
        c = _uniform(n, 1 - self.contrast, 1 + self.contrast, g, dev).view(n, 1, 1, 1)
        s = _uniform(n, 1 - self.saturation, 1 + self.saturation, g, dev).view(n, 1, 1, 1)
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]) if x.shape[1] == 3 else x
        y = x * b
        y = (y - y.mean(dim=(1, 2, 3), keepdim=True)) * c + y.mean(dim=(1, 2, 3), keepdim=True)
        y_gray = gray * b
        y = (y - y_gray) * s + y_gray
        x = on * y.clamp(0, 1) + (1 - on) * x
        to_gray = (torch.rand(n, generator=g, device=dev) < self.grayscale_p).float().view(n, 1, 1, 1)
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x) if x.shape[1] == 3 else x
        x = to_gray * gray + (1 - to_gray) * x
        if self.noise_std > 0:
            x = x + self.noise_std * torch.randn(x.shape, generator=g, device=dev)
        return x

    def __call__(self, x: torch.Tensor, views: int, g: torch.Generator) -> torch.Tensor:
        """``x``: (B, C, H, W) floats in [0, 1] -> (B, V, C, H, W) normalized views."""
        out = [normalize(self.photometric(self.geometry(x, g), g)) for _ in range(views)]
        return torch.stack(out, dim=1)


@AUGMENTATIONS.register("digits")
def digits_protocol() -> BatchAugment:
    """For handwritten digits: crops that keep most of the digit, small rotations, no flips
    (a mirrored 2 is not a 2), brightness/contrast jitter and pixel noise."""
    return BatchAugment(scale=(0.5, 1.0), max_rotation_deg=15.0, hflip_p=0.0, jitter_p=0.8,
                        brightness=0.4, contrast=0.4, saturation=0.0, grayscale_p=0.0, noise_std=0.05)


@AUGMENTATIONS.register("simclr")
def simclr_protocol() -> BatchAugment:
    """SimCLR's protocol for small images: crop scale (0.2, 1), flip, color jitter 0.4/0.4/0.4 (p=0.8), grayscale (p=0.2)."""
    return BatchAugment(scale=(0.2, 1.0), hflip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.4, grayscale_p=0.2)


class NoAugment:
    """The identity protocol: every view is the normalized image itself (supervised without augmentation)."""

    def __call__(self, x: torch.Tensor, views: int, g: torch.Generator) -> torch.Tensor:
        return normalize(x).unsqueeze(1).expand(-1, views, -1, -1, -1).contiguous()


@AUGMENTATIONS.register("none")
def no_augment() -> NoAugment:
    return NoAugment()
