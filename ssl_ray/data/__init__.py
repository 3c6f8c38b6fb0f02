"""Datasets (registry) and view-making augmentations. No ray, no mlflow."""

from ssl_ray.data.augment import AUGMENTATIONS, build_augment
from ssl_ray.data.datasets import DATASETS, ArrayDataset, load_dataset

__all__ = ["AUGMENTATIONS", "build_augment", "DATASETS", "ArrayDataset", "load_dataset"]
