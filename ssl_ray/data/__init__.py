"""Datasets, augmentation protocols and the three loaders (in-memory tensors, torchvision, FFCV)."""

from ssl_ray.data.augment import AUGMENTATIONS, build_augment
from ssl_ray.data.datasets import DATASETS, ArrayDataset, FileDataset, load_dataset
from ssl_ray.data.protocols import PROTOCOLS, ViewSpec, view_specs

__all__ = ["AUGMENTATIONS", "build_augment", "DATASETS", "ArrayDataset", "FileDataset", "load_dataset", "PROTOCOLS",
           "ViewSpec", "view_specs"]
