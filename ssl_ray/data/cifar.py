"""CIFAR-10/100 in their python-version pickles (read as data, never as code)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ssl_ray.data.containers import DATASETS, ArrayDataset, DatasetSource
from ssl_ray.errors import ConfigError

# ------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python-version pickles)


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR's files are pickles; a pickle can name any callable. Only what the CIFAR files need
    (numpy arrays and dtypes) may be constructed, so a tampered file is an error, not code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not a CIFAR python-version pickle ({e})") from None
    if not isinstance(d, dict) or b"data" not in d:
        raise ConfigError(f"{path}: not a CIFAR python-version pickle (no b'data' entry)")
    return d


_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}),
}


def _cifar_check(name: str) -> Callable:
    folder, files = _CIFAR_LAYOUT[name]

    def check(data_root: Optional[str], superclass_map=None) -> None:
        base = Path(data_root).expanduser() / folder
        for split_files in files.values():
            for fname in split_files:
                if not (base / fname).is_file():
                    raise ConfigError(
                        f"data root {data_root}: missing {folder}/{fname} ({name} python-version pickles; "
                        f"`ssl-ray data download --dataset {name} --data-root {data_root}` fetches them)"
                    )

    return check


def _cifar_load(name: str) -> Callable:
    folder, files = _CIFAR_LAYOUT[name]

    def load(split: str, image_size: Optional[int] = None, data_root=None, superclass_map=None) -> ArrayDataset:
        parts = [_read_cifar_pickle(Path(data_root) / folder / f) for f in files[split]]
        fine_key = b"fine_labels" if name == "cifar100" else b"labels"
        for p, f in zip(parts, files[split]):
            if fine_key not in p or len(p[fine_key]) != len(p[b"data"]):
                raise ConfigError(f"{Path(data_root) / folder / f}: no {fine_key.decode()} entry matching its images")
        data = np.concatenate([np.asarray(p[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for p in parts])
        labels = np.concatenate([np.asarray(p[fine_key], dtype=np.int64) for p in parts])
        coarse = (
            np.concatenate([np.asarray(p[b"coarse_labels"], dtype=np.int64) for p in parts])
            if name == "cifar100"
            else None
        )
        ds = ArrayDataset(
            torch.from_numpy(data).contiguous(),
            torch.from_numpy(labels),
            torch.from_numpy(coarse) if coarse is not None else None,
            num_classes=100 if name == "cifar100" else 10,
            num_superclasses=20 if name == "cifar100" else 0,
        )
        return ds.to_array(image_size)

    return load


for _name in _CIFAR_LAYOUT:
    DATASETS.register(_name)(DatasetSource(_cifar_load(_name), _cifar_check(_name), needs_root=True))


def download_cifar(name: str, data_root: str) -> None:
    """Fetch CIFAR's python-version archive into ``data_root`` with torchvision (needs internet)."""
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}.get(name)
    if cls is None:
        raise ConfigError(f"--download supports cifar10 and cifar100, not {name!r}")
    Path(data_root).mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            cls(data_root, train=train, download=True)
    except (OSError, RuntimeError) as e:  # no network, a bad checksum, a full disk
        raise ConfigError(f"could not download {name} into {data_root}: {e}") from None
