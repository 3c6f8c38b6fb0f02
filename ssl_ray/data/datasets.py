"""Dataset registry. A dataset is an in-memory :class:`ArrayDataset` of uint8 images ``(N, 3, H, W)``,
integer class labels and, where the dataset has them, superclass labels.

``digits`` is bundled: scikit-learn's 1,797 real 8x8 handwritten digits (10 classes), upsampled to
``image_size`` and repeated to RGB, with a fixed stratified 80/20 train/test split. No download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ssl_ray.registry import Registry

DATASETS = Registry("dataset")

SPLITS = ("train", "test")


@dataclass
class ArrayDataset:
    images: torch.Tensor  # uint8, (N, 3, H, W)
    labels: torch.Tensor  # int64, (N,)
    superclasses: Optional[torch.Tensor] = None  # int64, (N,), where the dataset has them
    num_classes: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def float_images(self) -> torch.Tensor:
        """Images as float32 in [0, 1]."""
        return self.images.float().div_(255.0)


def load_dataset(name: str, split: str, **kw) -> ArrayDataset:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return DATASETS.build(name, split=split, **kw)


@DATASETS.register("digits")
def digits(split: str = "train", image_size: int = 16, data_root: Optional[str] = None, test_fraction: float = 0.2) -> ArrayDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.images.astype(np.float32) / 16.0  # (N, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=test_fraction, random_state=0, stratify=y)
    idx = np.sort(idx_train if split == "train" else idx_test)
    imgs = torch.from_numpy(x[idx]).unsqueeze(1)
    if image_size != 8:
        imgs = F.interpolate(imgs, size=(image_size, image_size), mode="bilinear", align_corners=False)
    imgs = (imgs.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    return ArrayDataset(images=imgs.contiguous(), labels=torch.from_numpy(y[idx]), num_classes=10)
