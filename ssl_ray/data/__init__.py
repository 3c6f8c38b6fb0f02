"""Datasets, augmentation protocols and the three loaders (in-memory tensors, torchvision, FFCV).

The names below load on first use (PEP 562), so that ``ssl-ray data --help`` answers without torch.
"""

import importlib

_HOMES = {
    "AUGMENTATIONS": "augment",
    "build_augment": "augment",
    "DATASETS": "datasets",
    "ArrayDataset": "datasets",
    "FileDataset": "datasets",
    "load_dataset": "datasets",
    "PROTOCOLS": "protocols",
    "ViewSpec": "protocols",
    "view_specs": "protocols",
}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"ssl_ray.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'ssl_ray.data' has no attribute {name!r}")
