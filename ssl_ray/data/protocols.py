"""Augmentation protocols: what each of the V views of an image goes through.

A protocol is data -- a list of :class:`ViewSpec`, cycled over the views -- and three backends
apply it with the same semantics and the same order of operations:

1. random resized crop (area ``crop_scale``, aspect ``crop_ratio``) to the output size,
2. rotation by an angle uniform in ``[-rotation_deg, rotation_deg]``,
3. horizontal flip with probability ``hflip_p``,
4. with probability ``jitter_p``: brightness, contrast, saturation, hue, in a random order drawn per
   sample (as torchvision's ``ColorJitter`` and SimCLR), with factors uniform in ``[1-b, 1+b]``,
   ``[1-c, 1+c]``, ``[1-s, 1+s]`` and hue shift in ``[-h, h]``,
5. grayscale with probability ``grayscale_p``,
6. Gaussian blur with probability ``blur_p``, sigma uniform in ``blur_sigma``, kernel ~10% of the size,
7. solarization (pixels >= 128 of 255 inverted) with probability ``solarize_p``,
8. additive Gaussian pixel noise of std ``noise_std`` (in units of the [0, 1] range).

Backends: ``augment.BatchAugment`` (batched torch, for in-memory datasets), ``torchvision_loader``
(per-sample torchvision v2 in a DataLoader) and ``ffcv_loader`` (FFCV pipelines, one per view).

Protocols (the name and ``data.views`` are sweep parameters). Every number below follows a paper or the
authors' code, cited where it is set; "ImageNet size" is ``image_size >= IMAGENET_SIZE`` (64 px, where
the model also switches to the ImageNet stem), smaller images get the CIFAR recipe.

- ``simclr`` (Chen et al. 2020, SimCLR, arXiv:2002.05709, Appendix A and B.9): crop scale (0.08, 1),
  flip, colour jitter of strength s with p=0.8 (brightness, contrast, saturation 0.8 s, hue 0.2 s),
  grayscale p=0.2. ImageNet size: s = 1.0 and Gaussian blur p=0.5, sigma in [0.1, 2.0]. CIFAR size:
  s = 0.5 and no blur (B.9; also solo-learn's CIFAR configs, min_scale 0.08).
- ``byol`` (Grill et al. 2020, BYOL, arXiv:2006.07733, Table 6): the asymmetric pair -- view 1 blur
  p=1.0 and no solarization, view 2 blur p=0.1 and solarization p=0.2; jitter 0.4/0.4/0.2/0.1 with
  p=0.8, grayscale p=0.2, crop scale (0.08, 1). More than 2 views alternate the pair.
- ``mmcr`` (Yerxa et al. 2023, MMCR, arXiv:2303.03307; official code ThomasYerxa/mmcr): at ImageNet
  size, BYOL's pair alternated over the views (``mmcr/imagenet/data.py``, ``Barlow_Transform``: view
  2i is the first of the pair, 2i+1 the second); at CIFAR size, SimCLR's CIFAR recipe -- crop (0.08, 1),
  flip, jitter 0.4/0.4/0.4/0.1 with p=0.8, grayscale p=0.2, no blur (``mmcr/cifar_stl/data.py``,
  ``CifarBatchTransform``).
- ``digits``: for handwritten digits (ours; no paper trains on them) -- crops that keep most of the digit,
  +-15 degree rotations, no flips (a mirrored 2 is not a 2), brightness/contrast jitter, pixel noise.
- ``none``: every view is the image itself (supervised training without augmentation, probes).

``PAPER_TABLE`` in ``tests`` restates these numbers from the papers; a test compares every protocol to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Tuple

from ssl_ray.registry import Registry

PROTOCOLS = Registry("augmentation protocol")

IMAGENET_SIZE = 64  # at or above this size the ImageNet recipes apply, below it the CIFAR ones


def is_imagenet_size(image_size: int) -> bool:
    return image_size >= IMAGENET_SIZE


@dataclass(frozen=True)
class ViewSpec:
    crop_scale: Tuple[float, float] = (0.08, 1.0)
    crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    rotation_deg: float = 0.0
    hflip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    noise_std: float = 0.0
    identity: bool = False  # no augmentation at all: the image, resized to the output size


def blur_kernel_size(image_size: int) -> int:
    """The odd kernel size SimCLR/BYOL use: about 10% of the image side, at least 3."""
    k = max(3, int(round(0.1 * image_size)))
    return k if k % 2 == 1 else k + 1


def view_specs(name: str, views: int, image_size: int) -> List[ViewSpec]:
    """The spec of each of the ``views`` views under protocol ``name`` at ``image_size``."""
    base = PROTOCOLS.build(name, image_size=image_size)
    return [base[i % len(base)] for i in range(views)]


def simclr_view(strength: float, blur_p: float) -> ViewSpec:
    """SimCLR's view: crop (0.08, 1) (torchvision's default, SimCLR App. A), flip 0.5, colour jitter of
    ``strength`` s -- brightness/contrast/saturation 0.8 s, hue 0.2 s -- with p=0.8, grayscale p=0.2
    (App. A), Gaussian blur with p ``blur_p``, sigma [0.1, 2.0] (App. A)."""
    return ViewSpec(
        crop_scale=(0.08, 1.0),
        hflip_p=0.5,
        jitter_p=0.8,
        brightness=0.8 * strength,
        contrast=0.8 * strength,
        saturation=0.8 * strength,
        hue=0.2 * strength,
        grayscale_p=0.2,
        blur_p=blur_p,
        blur_sigma=(0.1, 2.0),
    )


@PROTOCOLS.register("simclr")
def simclr(image_size: int) -> List[ViewSpec]:
    if is_imagenet_size(image_size):
        return [simclr_view(strength=1.0, blur_p=0.5)]  # ImageNet: s = 1.0, blur p = 0.5 (App. A)
    return [simclr_view(strength=0.5, blur_p=0.0)]  # CIFAR-10: s = 0.5, no blur (App. B.9)


def _byol_pair() -> List[ViewSpec]:
    """BYOL Table 6: crop (0.08, 1), flip 0.5, jitter 0.4/0.4/0.2/0.1 with p=0.8, grayscale 0.2;
    blur 1.0 / 0.1, solarization 0.0 / 0.2 for the two views."""
    v1 = ViewSpec(
        crop_scale=(0.08, 1.0),
        hflip_p=0.5,
        jitter_p=0.8,
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        grayscale_p=0.2,
        blur_p=1.0,
        blur_sigma=(0.1, 2.0),
        solarize_p=0.0,
    )
    return [v1, replace(v1, blur_p=0.1, solarize_p=0.2)]


@PROTOCOLS.register("byol")
def byol(image_size: int) -> List[ViewSpec]:
    return _byol_pair()


@PROTOCOLS.register("mmcr")
def mmcr(image_size: int) -> List[ViewSpec]:
    if is_imagenet_size(image_size):  # mmcr/imagenet/data.py: Barlow_Transform alternates BYOL's pair
        return _byol_pair()
    # mmcr/cifar_stl/data.py, CifarBatchTransform: RandomResizedCrop(32) (scale 0.08-1), flip 0.5,
    # ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale 0.2, no blur -- SimCLR's CIFAR recipe
    return [simclr_view(strength=0.5, blur_p=0.0)]


@PROTOCOLS.register("digits")
def digits(image_size: int) -> List[ViewSpec]:
    return [
        ViewSpec(
            crop_scale=(0.5, 1.0),
            rotation_deg=15.0,
            hflip_p=0.0,
            jitter_p=0.8,
            brightness=0.4,
            contrast=0.4,
            saturation=0.0,
            hue=0.0,
            grayscale_p=0.0,
            noise_std=0.05,
        )
    ]


@PROTOCOLS.register("none")
def none(image_size: int) -> List[ViewSpec]:
    return [ViewSpec(identity=True)]
