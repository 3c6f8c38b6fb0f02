"""Image folders (ImageNet's layout) and class -> superclass map files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from ssl_ray.config.io import read_text
from ssl_ray.data.containers import DATASETS, IMAGE_EXTENSIONS, SPLITS, DatasetSource, FileDataset
from ssl_ray.errors import ConfigError

# ------------------------------------------------------------------------------------------------
# ImageFolder / ImageNet


def read_superclass_map(path: str) -> Dict[str, str]:
    """``{class name: superclass name}`` from a JSON object or ``<class> <superclass>`` lines."""
    text = read_text(Path(path).expanduser(), "superclass map")
    if text.lstrip().startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"superclass map {path}: invalid JSON ({e})") from None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise ConfigError(f"superclass map {path}: expected a JSON object of class name -> superclass name")
        return mapping
    mapping = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"superclass map {path}: line {n} should be '<class> <superclass>', got {line!r}")
        mapping[parts[0]] = parts[1]
    return mapping


def superclass_labels(superclass_map: str, classes: Sequence[str], labels: Sequence[int]) -> Tuple[torch.Tensor, int]:
    """``(superclass label per sample, number of superclasses)`` from a map file; superclasses are
    numbered in sorted name order. Every class must have a superclass."""
    mapping = read_superclass_map(superclass_map)
    missing = [c for c in classes if c not in mapping]
    if missing:
        raise ConfigError(f"superclass map {superclass_map}: no superclass for class {missing[0]!r}")
    names = sorted(set(mapping[c] for c in classes))
    sid = {s: i for i, s in enumerate(names)}
    by_class = torch.tensor([sid[mapping[c]] for c in classes], dtype=torch.int64)
    return by_class[torch.as_tensor(labels, dtype=torch.int64)], len(names)


def _folder_split(data_root: str, split: str, val_name: str) -> Path:
    root = Path(data_root)
    if split == "test":
        for cand in (val_name, "test", "val"):
            if (root / cand).is_dir():
                return root / cand
        return root / val_name
    return root / split


def _folder_check(val_name: str) -> Callable:
    def check(data_root: Optional[str], superclass_map: Optional[str] = None) -> None:
        for split in SPLITS:
            d = _folder_split(data_root, split, val_name)
            if not d.is_dir():
                raise ConfigError(f"data root {data_root}: missing {d.name}/ (expected <root>/<split>/<class>/<image>)")
            if not any(c.is_dir() for c in d.iterdir()):
                raise ConfigError(f"data root {data_root}: {d.name}/ has no class folders")
        if superclass_map is not None:
            read_superclass_map(superclass_map)

    return check


def _folder_load(val_name: str) -> Callable:
    def load(split: str, image_size: Optional[int] = None, data_root=None, superclass_map=None):
        split_dir = _folder_split(data_root, split, val_name)
        # Classes come from the train split, so both splits share one label space.
        classes = sorted(c.name for c in _folder_split(data_root, "train", val_name).iterdir() if c.is_dir())
        index = {c: i for i, c in enumerate(classes)}
        paths, labels = [], []
        for c in sorted(d.name for d in split_dir.iterdir() if d.is_dir()):
            if c not in index:
                raise ConfigError(f"{split_dir / c}: class folder not present in the train split")
            for f in sorted((split_dir / c).iterdir()):
                if f.suffix.lower() in IMAGE_EXTENSIONS:
                    paths.append(str(f))
                    labels.append(index[c])
        if not paths:
            raise ConfigError(f"{split_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        supers, n_super = (
            superclass_labels(superclass_map, classes, labels) if superclass_map is not None else (None, 0)
        )
        return FileDataset(paths, torch.tensor(labels, dtype=torch.int64), supers, len(classes), n_super, classes)

    return load


for _name, _val in (("imagefolder", "test"), ("imagenet", "val")):
    DATASETS.register(_name)(
        DatasetSource(
            _folder_load(_val), _folder_check(_val), needs_root=True, in_memory=False, takes_superclass_map=True
        )
    )
