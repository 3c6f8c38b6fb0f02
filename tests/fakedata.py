"""Small datasets written in the true on-disk formats of CIFAR-10/100 (python-version pickles) and
ImageFolder/ImageNet (one folder per class of JPEG/PNG files)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np


def smooth_images(rng, n: int, h: int, w: int) -> np.ndarray:
    """(n, h, w, 3) uint8: random 4x4 color fields upsampled bilinearly, plus mild noise -- photo-like
    enough that JPEG keeps them close to the source."""
    import torch
    import torch.nn.functional as F

    low = torch.from_numpy(rng.uniform(0, 255, (n, 3, 4, 4)).astype(np.float32))
    x = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=True) + torch.from_numpy(
        rng.normal(0, 4, (n, 3, h, w)).astype(np.float32)
    )
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _cifar_dict(rng, n, label_key, n_classes, coarse=False):
    data = smooth_images(rng, n, 32, 32).transpose(0, 3, 1, 2).reshape(n, 3072)  # CIFAR rows: R plane, G plane, B plane
    d = {
        b"batch_label": b"testing batch 1 of 1",
        b"data": np.ascontiguousarray(data),
        label_key: [int(v) for v in rng.integers(0, n_classes, n)],
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if coarse:
        d[b"coarse_labels"] = [int(v) // 5 for v in d[label_key]]  # 100 fine -> 20 coarse, as CIFAR-100's grouping size
    return d


def write_cifar10(root: Path, n_per_batch: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / name, "wb") as f:
            pickle.dump(_cifar_dict(rng, n_per_batch, b"labels", 10), f, protocol=2)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump(
            {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": n_per_batch}, f, protocol=2
        )
    return Path(root)


def write_cifar100(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        with open(base / name, "wb") as f:
            pickle.dump(_cifar_dict(rng, n, b"fine_labels", 100, coarse=True), f, protocol=2)
    with open(base / "meta", "wb") as f:
        pickle.dump(
            {
                b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"s{i}".encode() for i in range(20)],
            },
            f,
            protocol=2,
        )
    return Path(root)


CLASSES = {"cat": "animal", "dog": "animal", "car": "vehicle"}


def write_imagefolder(
    root: Path, per_class=(3, 2), size=(24, 24), fmt="PNG", val_name="test", seed: int = 0, varied_sizes: bool = False
) -> Path:
    """``root/{train,<val_name>}/<class>/<i>.<fmt>`` with photo-like random images, plus ``superclasses.json``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in zip(("train", val_name), per_class):
        for c in CLASSES:
            d = Path(root) / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (size[0] + 4 * i, size[1] + 2 * i) if varied_sizes else size
                img = smooth_images(rng, 1, h, w)[0]
                Image.fromarray(img).save(
                    d / f"{i}.{fmt.lower()}", format=fmt, **({"quality": 100} if fmt == "JPEG" else {})
                )
    (Path(root) / "superclasses.json").write_text(json.dumps(CLASSES))
    return Path(root)
