"""Dataset registry. Every dataset exposes images, integer class labels and, where it has them,
superclass labels, through one of two containers:

- :class:`ArrayDataset`: uint8 images ``(N, 3, H, W)`` held in memory (``digits``, ``cifar10``,
  ``cifar100``).
- :class:`FileDataset`: one image file per sample, decoded on demand (``imagefolder``,
  ``imagenet``).

Both give ``image(i) -> (H, W, 3) uint8``, which is what the ``.beton`` writer and the torchvision
loader read. A dataset entry is a :class:`DatasetSource` with ``check(root)`` (run by config
validation, so that a missing or incomplete data root fails before Ray starts) and
``load(split, ...)``.

On-disk formats:

- ``digits``: bundled with scikit-learn (1,797 real 8x8 handwritten digits, 10 classes), upsampled
  to ``image_size`` and repeated to RGB; a fixed stratified 80/20 train/test split. No download.
  It has no superclasses of its own; ``data.superclass_map`` (classes ``0``..``9``) gives some, e.g.
  ``configs/digits_superclasses.txt``, the shape grouping the default sweep uses.
- ``cifar10``: ``<root>/cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch``, the
  python-version pickles (dicts with ``b"data"`` (N, 3072) uint8 in CHW order and ``b"labels"``).
- ``cifar100``: ``<root>/cifar-100-python/train`` and ``test``, with ``b"fine_labels"`` (100
  classes) and ``b"coarse_labels"`` (the 20 superclasses).
- ``imagefolder``: ``<root>/<split>/<class>/<image>``, classes in sorted order (torchvision's
  convention). ``imagenet`` is the same with the ``test`` split read from ``val/``. An optional
  class -> superclass mapping file (JSON object, or lines ``<class> <superclass>``) gives superclass
  labels.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ssl_ray.data import cifar  # noqa: F401  (registers cifar10, cifar100)
from ssl_ray.data.containers import DATASETS, SPLITS, ArrayDataset, DatasetSource
from ssl_ray.data.folders import superclass_labels  # (and registers imagefolder, imagenet)


def load_dataset(
    name: str,
    split: str,
    image_size: Optional[int] = None,
    data_root: Optional[str] = None,
    superclass_map: Optional[str] = None,
):
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    src: DatasetSource = DATASETS.get(name)
    src.check(name, data_root, superclass_map)
    root = str(Path(data_root).expanduser()) if data_root is not None else None
    return src.load_fn(split=split, image_size=image_size, data_root=root, superclass_map=superclass_map)


@functools.lru_cache(maxsize=16)
def dataset_meta(name: str, data_root: Optional[str] = None, superclass_map: Optional[str] = None) -> Dict[str, int]:
    """``{"num_classes", "num_superclasses", "num_train"}`` without decoding any image (file datasets) or
    from the in-memory arrays."""
    ds = load_dataset(name, "train", data_root=data_root, superclass_map=superclass_map)
    return {"num_classes": ds.num_classes, "num_superclasses": ds.num_superclasses, "num_train": len(ds)}


@functools.lru_cache(maxsize=16)
def split_sizes(
    name: str, data_root: Optional[str] = None, superclass_map: Optional[str] = None
) -> Tuple[int, int, int]:
    """``(train images, test images, classes)``: what a target bank made for this dataset holds."""
    meta = dataset_meta(name, data_root, superclass_map)
    test = load_dataset(name, "test", data_root=data_root, superclass_map=superclass_map)
    return meta["num_train"], len(test), meta["num_classes"]


# ------------------------------------------------------------------------------------------------
# digits


def _digits(split: str, image_size: Optional[int] = 16, data_root=None, superclass_map=None) -> ArrayDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    image_size = image_size or 16
    bunch = load_digits()
    x = bunch.images.astype(np.float32) / 16.0  # (N, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    idx = np.sort(idx_train if split == "train" else idx_test)
    imgs = torch.from_numpy(x[idx]).unsqueeze(1)
    if image_size != 8:
        imgs = F.interpolate(imgs, size=(image_size, image_size), mode="bilinear", align_corners=False)
    imgs = (imgs.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    labels = torch.from_numpy(y[idx])
    supers, n_super = (
        superclass_labels(superclass_map, DIGIT_CLASSES, labels) if superclass_map is not None else (None, 0)
    )
    return ArrayDataset(
        images=imgs.contiguous(), labels=labels, superclasses=supers, num_classes=10, num_superclasses=n_super
    )


DIGIT_CLASSES = [str(d) for d in range(10)]  # the class names a superclass map uses


def _digits_check(data_root: Optional[str], superclass_map: Optional[str] = None) -> None:
    if superclass_map is not None:
        superclass_labels(superclass_map, DIGIT_CLASSES, [])


DATASETS.register("digits")(
    DatasetSource(
        _digits, _digits_check, sample_probe=(20, 100, 20), sample_augment="digits", takes_superclass_map=True
    )
)
