"""The FFCV backend: a multi-view ``ffcv.loader.Loader`` over a ``.beton`` file.

One ``PipelineSpec`` per view reads the single ``image`` field, so an image is read once and
decoded/augmented V times. Each view's pipeline is its :class:`ViewSpec` in the order fixed by
``protocols.py``: FFCV's own decoders, ``ToTensor``, ``ToDevice`` (non-blocking) and
``ToTorchImage``, and ``ffcv_ops`` for what FFCV lacks or cannot seed. Under Ray Train with
several workers the loader runs with ``distributed=True`` (FFCV's DistributedSampler order, seeded
per epoch), on indices trimmed to a multiple of the world size so that the shards are disjoint.

Determinism: the order of epoch ``e`` is fixed by ``(seed, e)`` and the augmentations by
``(seed, e, view, batch)``; ``set_epoch(k)`` before iterating reproduces epoch k after a resume.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch

from ssl_ray.data.augment import normalize, to_unit_float
from ssl_ray.data.beton import inspect_beton
from ssl_ray.data.protocols import ViewSpec, blur_kernel_size


def view_pipeline(spec: ViewSpec, out_size: int, cell, salt: int, info, device: Optional[torch.device]) -> list:
    """Decoder + transforms of one view, ending in a (B, 3, S, S) uint8 torch tensor."""
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder, SimpleRGBImageDecoder
    from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

    from ssl_ray.data.ffcv_color import RandomColorJitter, RandomGaussianBlur, RandomGrayscale, RandomSolarize
    from ssl_ray.data.ffcv_crop import SeededRandomResizedCrop
    from ssl_ray.data.ffcv_ops import GaussianNoise, RandomHorizontalFlip, RandomRotate

    if spec.identity:
        same = info.max_height == info.max_width == out_size
        chain: List = [SimpleRGBImageDecoder() if same else CenterCropRGBImageDecoder((out_size, out_size), ratio=1.0)]
    else:
        chain = [SeededRandomResizedCrop((out_size, out_size), spec.crop_scale, spec.crop_ratio, cell, salt * 64)]
        random_ops = []
        if spec.rotation_deg > 0:
            random_ops.append(RandomRotate(spec.rotation_deg))
        if spec.hflip_p > 0:
            random_ops.append(RandomHorizontalFlip(spec.hflip_p))
        if spec.jitter_p > 0:
            random_ops.append(
                RandomColorJitter(spec.jitter_p, spec.brightness, spec.contrast, spec.saturation, spec.hue)
            )
        if spec.grayscale_p > 0:
            random_ops.append(RandomGrayscale(spec.grayscale_p))
        if spec.blur_p > 0:
            random_ops.append(RandomGaussianBlur(spec.blur_p, spec.blur_sigma, blur_kernel_size(out_size)))
        if spec.solarize_p > 0:
            random_ops.append(RandomSolarize(spec.solarize_p))
        if spec.noise_std > 0:
            random_ops.append(GaussianNoise(spec.noise_std))
        chain += [op.bind(cell, salt * 64 + k + 1) for k, op in enumerate(random_ops)]
    chain.append(ToTensor())
    if device is not None and device.type == "cuda":
        chain.append(ToDevice(device, non_blocking=True))
    chain.append(ToTorchImage(channels_last=False))
    return chain


def _int_pipeline(device: Optional[torch.device]) -> list:
    from ffcv.fields.basics import IntDecoder
    from ffcv.transforms import Squeeze, ToDevice, ToTensor

    chain = [IntDecoder(), ToTensor(), Squeeze(-1)]
    if device is not None and device.type == "cuda":
        chain.append(ToDevice(device, non_blocking=True))
    return chain


class FFCVViews:
    """Epochs of multi-view batches from a ``.beton`` for one rank: ``set_epoch(e)`` then iterate ->
    ``(views (B, V, 3, S, S) float normalized, labels, superclasses, indices)``."""

    def __init__(
        self,
        path: str,
        specs: Sequence[ViewSpec],
        out_size: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
        device: Optional[torch.device] = None,
    ) -> None:
        from ffcv.loader import Loader, OrderOption
        from ffcv.pipeline import PipelineSpec

        from ssl_ray.data.ffcv_seeding import EpochCell

        self.info = inspect_beton(path)
        self.views, self.device = len(specs), device
        # Ranks see disjoint samples, so they share one seed; the view salt tells views apart.
        self.cell = EpochCell(seed)
        pipelines = {}
        for v, spec in enumerate(specs):
            chain = view_pipeline(spec, out_size, self.cell, v, self.info, device)
            pipelines[f"view_{v}"] = PipelineSpec("image", decoder=chain[0], transforms=chain[1:])
        pipelines["image"] = None  # read only through the view pipelines
        for name in ("label", "superclass", "index"):
            if name in self.info.fields:
                pipelines[name] = _int_pipeline(device)
        n = self.info.num_samples
        distributed = world > 1
        indices = np.arange(n - n % world) if distributed else None
        self.loader = Loader(
            path,
            batch_size=batch_size,
            num_workers=max(1, int(num_workers)),
            order=OrderOption.RANDOM if shuffle else OrderOption.SEQUENTIAL,
            distributed=distributed,
            seed=seed,
            indices=indices,
            pipelines=pipelines,
            drop_last=drop_last,
            os_cache=True,
        )
        self.fields = list(self.loader.pipeline_specs)  # the order the loader yields its outputs in
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.cell.set_epoch(self.epoch)
        self.loader.next_epoch = self.epoch
        for batch in self.loader:
            out = dict(zip(self.fields, batch))
            views = torch.stack([normalize(to_unit_float(out[f"view_{v}"])) for v in range(self.views)], 1)
            # FFCV reuses its output buffers batches_ahead batches later: the small int fields are copied
            # (the views already are, by the stack).
            ints = [out[f].clone() if f in out else None for f in ("label", "superclass", "index")]
            yield views, *ints
