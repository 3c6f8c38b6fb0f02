"""The torchvision backend: per-sample torchvision v2 transforms in a ``torch.utils.data.DataLoader``.

This is the fallback for file datasets (ImageFolder/ImageNet) when no ``.beton`` is given, and the
baseline the FFCV loader is benchmarked against. Each view follows its :class:`ViewSpec` in the
order fixed by ``protocols.py``; color jitter applies brightness, contrast, saturation and hue in a
random order drawn per image, as ``v2.ColorJitter`` does and as the other backends do.

Determinism: the augmentation of sample ``i`` at epoch ``e`` is drawn from torch's RNG seeded with
``(seed, epoch, i)``, so it does not depend on the number of DataLoader workers or on which worker
gets the sample.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import List, Optional, Sequence

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ssl_ray.data.protocols import ViewSpec, blur_kernel_size


class RandomOrderJitter(torch.nn.Module):
    """With probability p: brightness, contrast, saturation and hue, in a random order drawn per image (the
    ``torch.randperm(4)`` of ``v2.ColorJitter``), from torch's RNG: a coin and four factors, then the order,
    drawn whether or not the coin applies the jitter."""

    def __init__(self, spec: ViewSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        s = self.spec
        r = torch.rand(5)
        order = torch.randperm(4).tolist()  # 0 brightness, 1 contrast, 2 saturation, 3 hue
        if r[0] >= s.jitter_p:
            return img
        return jitter_in_order(img, r, order, s)


def jitter_in_order(img: torch.Tensor, r: torch.Tensor, order, s: ViewSpec) -> torch.Tensor:
    """The four adjustments in ``order`` (0 brightness, 1 contrast, 2 saturation, 3 hue), with factors from the
    uniforms ``r[1:5]`` scaled to the spec's ranges."""
    for k in order:
        if k == 0:
            img = TF.adjust_brightness(img, float(1 - s.brightness + 2 * s.brightness * r[1]))
        elif k == 1:
            img = TF.adjust_contrast(img, float(1 - s.contrast + 2 * s.contrast * r[2]))
        elif k == 2:
            img = TF.adjust_saturation(img, float(1 - s.saturation + 2 * s.saturation * r[3]))
        elif s.hue > 0:
            img = TF.adjust_hue(img, float(-s.hue + 2 * s.hue * r[4]))
    return img


def view_transform(spec: ViewSpec, out_size: int) -> v2.Compose:
    """(3, H, W) uint8 -> (3, out_size, out_size) float32, normalized to [-1, 1]."""
    if spec.identity:
        ops: List[torch.nn.Module] = [v2.Resize(out_size, antialias=True), v2.CenterCrop(out_size)]
    else:
        ops = [v2.RandomResizedCrop(out_size, scale=spec.crop_scale, ratio=spec.crop_ratio, antialias=True)]
        if spec.rotation_deg > 0:
            ops.append(v2.RandomRotation(spec.rotation_deg, interpolation=v2.InterpolationMode.BILINEAR))
        if spec.hflip_p > 0:
            ops.append(v2.RandomHorizontalFlip(spec.hflip_p))
        if spec.jitter_p > 0:
            ops.append(RandomOrderJitter(spec))
        if spec.grayscale_p > 0:
            ops.append(v2.RandomGrayscale(spec.grayscale_p))
        if spec.blur_p > 0:
            ops.append(v2.RandomApply([v2.GaussianBlur(blur_kernel_size(out_size), spec.blur_sigma)], p=spec.blur_p))
        if spec.solarize_p > 0:
            ops.append(v2.RandomSolarize(128, p=spec.solarize_p))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    if not spec.identity and spec.noise_std > 0:
        ops.append(v2.GaussianNoise(sigma=spec.noise_std, clip=False))
    ops.append(v2.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]))
    return v2.Compose(ops)


class MultiViewDataset(Dataset):
    """``ds[i] -> (views (V, 3, S, S) float32, label, superclass or -1, i)``."""

    def __init__(self, ds, specs: Sequence[ViewSpec], out_size: int, seed: int = 0) -> None:
        self.ds, self.seed, self.epoch = ds, seed, 0
        self.transforms = [view_transform(s, out_size) for s in specs]

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        img = torch.from_numpy(self.ds.image(i)).permute(2, 0, 1)
        # torch takes seeds below 2**64: every seed of train.seed's range (and the bank's, from 2**31) folds into it;
        # a seed already below is unchanged, so runs of small seeds repeat exactly as before
        seed = ((self.seed * 1_000_003 + self.epoch) * 2_147_483_647 + int(i)) % (1 << 64)
        # A worker process owns its RNG; in the main process the caller's RNG state is preserved.
        with nullcontext() if get_worker_info() is not None else torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            views = torch.stack([t(img) for t in self.transforms])
        sup = int(self.ds.superclasses[i]) if self.ds.superclasses is not None else -1
        return views, int(self.ds.labels[i]), sup, int(i)


class TorchvisionViews:
    """Epochs of multi-view batches for one rank: ``set_epoch(e)`` then iterate ->
    ``(views (B, V, 3, S, S), labels, superclasses, indices)``; the order is ``order_fn(epoch)``."""

    def __init__(
        self,
        ds,
        specs: Sequence[ViewSpec],
        out_size: int,
        batch_size: int,
        order_fn,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = True,
        device: Optional[torch.device] = None,
    ) -> None:
        self.data = MultiViewDataset(ds, specs, out_size, seed)
        self.batch_size, self.order_fn, self.num_workers = batch_size, order_fn, num_workers
        self.drop_last, self.device = drop_last, device
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.data.epoch = epoch

    def __len__(self) -> int:
        n = len(self.order_fn(self.epoch))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = self.order_fn(self.epoch).tolist()
        pin = self.device is not None and self.device.type == "cuda"
        loader = DataLoader(
            self.data,
            batch_size=self.batch_size,
            sampler=order,
            num_workers=self.num_workers,
            drop_last=self.drop_last,
            pin_memory=pin,
        )
        for views, y, sup, idx in loader:
            if self.device is not None:
                views, y = views.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield views, y, sup, idx
