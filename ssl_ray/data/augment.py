"""The batched torch backend of the augmentation protocols (``protocols.py``): a batch of images in,
V views out, for datasets held in memory.

``aug(x, views, generator) -> (B, V, C, S, S)`` on float images in [0, 1]. All randomness comes from
the ``torch.Generator`` passed in, so a seed fixes every view of every epoch. Geometry (random
resized crop, rotation, flip) is one ``affine_grid``/``grid_sample`` call for the whole batch;
photometric operations are per-sample arithmetic in the order ``protocols.py`` fixes, each clamped
to [0, 1] as torchvision's are; color jitter's four adjustments run in a random order drawn per sample
(:func:`color_jitter`). The output is :func:`normalize`-d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F

from ssl_ray.data.protocols import PROTOCOLS, ViewSpec, blur_kernel_size

# The augmentation registry is the protocol registry: a name there is valid for every backend.
AUGMENTATIONS = PROTOCOLS


def normalize(x: torch.Tensor) -> torch.Tensor:
    """The deterministic input transform shared by training views and probes: [0, 1] -> [-1, 1]."""
    return (x - 0.5) / 0.5


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return x.float().div_(255.0)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _coin(n: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=device) < p).float().view(n, 1, 1, 1)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, the grayscale torchvision and FFCV use: (B, 3, H, W) -> (B, 1, H, W)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images in [0, 1] by ``shift`` (B,) turns, through HSV (as torchvision)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / torch.where(eqc, torch.ones_like(maxc), maxc)
    crd = torch.where(eqc, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    h = (
        (maxc == r) * (bc - gc)
        + ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
        + ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    )
    h = torch.remainder(h / 6.0 + 1.0 + shift.view(-1, 1, 1), 1.0)
    v = maxc
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack(
        [torch.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 0
    )
    return table.gather(0, i[None, :, None].expand(1, -1, 3, -1, -1))[0]


JITTER_OPS = ("brightness", "contrast", "saturation", "hue")  # the op indices of color_jitter's ``order``


def color_jitter(
    x: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    sat: Optional[torch.Tensor],
    hue: Optional[torch.Tensor],
    order: torch.Tensor,
) -> torch.Tensor:
    """Brightness, contrast, saturation and hue adjustments of images in [0, 1], each clamped to [0, 1], in a
    per-sample order (as torchvision's ``ColorJitter``, which shuffles them per image).

    ``b``, ``c``, ``sat``: (B, 1, 1, 1) factors (``sat`` None: no saturation step); ``hue``: (B,) shifts in
    turns, or None for no hue step;
    ``order``: (B, 4) int, row i a permutation of the op indices of :data:`JITTER_OPS` (sample i's order).
    Saturation and hue apply to RGB images only. Every step runs on the whole batch and ``torch.where`` keeps
    it for the samples whose op it is at that position: no host sync, and each sample gets exactly the
    arithmetic a fixed order would give it."""
    n, rgb = x.shape[0], x.shape[1] == 3

    def brightness(y):
        return (y * b).clamp(0, 1)

    def contrast(y):
        gray_mean = (luminance(y) if rgb else y).mean(dim=(1, 2, 3), keepdim=True)
        return ((y - gray_mean) * c + gray_mean).clamp(0, 1)

    def saturation(y):
        return ((y - luminance(y)) * sat + luminance(y)).clamp(0, 1)

    def hue_shift(y):
        return shift_hue(y, hue)

    ops = (
        brightness,
        contrast,
        saturation if rgb and sat is not None else None,
        hue_shift if rgb and hue is not None else None,
    )
    y = x
    for pos in range(len(ops)):
        at = order[:, pos].view(n, 1, 1, 1)
        nxt = y
        for k, op in enumerate(ops):
            if op is not None:
                nxt = torch.where(at == k, op(y), nxt)
        y = nxt
    return y


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample, reflect padding (torchvision's)."""
    n, c, h, w = x.shape
    r = torch.arange(k, device=x.device, dtype=x.dtype) - (k - 1) / 2
    ker = torch.exp(-(r[None] ** 2) / (2 * sigma.view(-1, 1) ** 2))
    ker = (ker / ker.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, k)
    y = F.pad(x.reshape(1, n * c, h, w), (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    y = F.conv2d(y, ker.view(n * c, 1, k, 1), groups=n * c)
    y = F.conv2d(y, ker.view(n * c, 1, 1, k), groups=n * c)
    return y.view(n, c, h, w)


def crop_fractions(n: int, scale, ratio, g: torch.Generator, device, tries: int = 10):
    """Random-resized-crop sizes as fractions of the image side, by torchvision's rule: up to
    ``tries`` draws of area ~ U(scale) and log-aspect ~ U(log ratio), the first that fits wins;
    if none fits, the whole image. -> (width fraction, height fraction), each (n,)."""
    area = torch.rand(n, tries, generator=g, device=device) * (scale[1] - scale[0]) + scale[0]
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(n, tries, generator=g, device=device) * (hi - lo) + lo)
    w, h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (w <= 1) & (h <= 1)
    first = fits.float().argmax(1, keepdim=True)
    ok = fits.any(1)
    w = torch.where(ok, w.gather(1, first)[:, 0], torch.ones(n, device=device))
    h = torch.where(ok, h.gather(1, first)[:, 0], torch.ones(n, device=device))
    return w, h


@dataclass
class ViewAugment:
    """One view's augmentation on a batch, following one :class:`ViewSpec`."""

    spec: ViewSpec
    out_size: Optional[int] = None

    def geometry(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        s, n, dev = self.spec, x.shape[0], x.device
        size = self.out_size or x.shape[-1]
        sw, sh = crop_fractions(n, s.crop_scale, s.crop_ratio, g, dev)
        tx = (torch.rand(n, generator=g, device=dev) * 2 - 1) * (1 - sw)
        ty = (torch.rand(n, generator=g, device=dev) * 2 - 1) * (1 - sh)
        ang = (torch.rand(n, generator=g, device=dev) * 2 - 1) * math.radians(s.rotation_deg)
        flip = torch.where(torch.rand(n, generator=g, device=dev) < s.hflip_p, -1.0, 1.0)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack(
            [torch.stack([sw * cos * flip, -sh * sin, tx], 1), torch.stack([sw * sin * flip, sh * cos, ty], 1)], 1
        )
        grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def photometric(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        s, n, dev = self.spec, x.shape[0], x.device
        rgb = x.shape[1] == 3
        on = _coin(n, s.jitter_p, g, dev)
        b = _uniform(n, 1 - s.brightness, 1 + s.brightness, g, dev).view(n, 1, 1, 1)
        c = _uniform(n, 1 - s.contrast, 1 + s.contrast, g, dev).view(n, 1, 1, 1)
        sat = _uniform(n, 1 - s.saturation, 1 + s.saturation, g, dev).view(n, 1, 1, 1)
        hue = _uniform(n, -s.hue, s.hue, g, dev) if s.hue > 0 else None
        # each sample's order of the four jitter ops (torchvision's per-image randperm(4)), drawn for every view
        order = torch.rand(n, 4, generator=g, device=dev).argsort(1)
        y = color_jitter(x, b, c, sat if s.saturation > 0 else None, hue, order)  # a 0-strength step is the identity
        x = on * y + (1 - on) * x
        to_gray = _coin(n, s.grayscale_p, g, dev)
        if rgb:
            x = to_gray * luminance(x).expand_as(x) + (1 - to_gray) * x
        if s.blur_p > 0:
            blur_on = _coin(n, s.blur_p, g, dev)
            sigma = _uniform(n, *s.blur_sigma, g, dev)
            x = blur_on * gaussian_blur(x, sigma, blur_kernel_size(x.shape[-1])) + (1 - blur_on) * x
        if s.solarize_p > 0:
            sol = _coin(n, s.solarize_p, g, dev)
            x = sol * torch.where(x >= 128 / 255, 1 - x, x) + (1 - sol) * x
        if s.noise_std > 0:
            x = x + s.noise_std * torch.randn(x.shape, generator=g, device=dev)
        return x

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.spec.identity:
            size = self.out_size or x.shape[-1]
            if size != x.shape[-1]:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            return x
        return self.photometric(self.geometry(x, g), g)


@dataclass
class BatchAugment:
    """A protocol's views on a batch: view ``v`` follows ``specs[v % len(specs)]``."""

    specs: List[ViewSpec]
    out_size: Optional[int] = None

    def __call__(self, x: torch.Tensor, views: int, g: torch.Generator) -> torch.Tensor:
        """``x``: (B, C, H, W) floats in [0, 1] -> (B, V, C, S, S) normalized views."""
        out = [normalize(ViewAugment(self.specs[v % len(self.specs)], self.out_size)(x, g)) for v in range(views)]
        return torch.stack(out, dim=1)


def build_augment(name: str, image_size: int = 16, out_size: Optional[int] = None) -> BatchAugment:
    """The batched backend of protocol ``name`` for images of ``image_size`` (output ``out_size``)."""
    return BatchAugment(PROTOCOLS.build(name, image_size=out_size or image_size), out_size)
