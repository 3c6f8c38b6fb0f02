"""What every dataset is made of: the two containers (images in memory, image files), the registry
entry (:class:`DatasetSource`) and the registry itself. The datasets register in ``datasets.py``
(digits), ``cifar.py`` and ``folders.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ssl_ray.data.augment import to_unit_float
from ssl_ray.errors import ConfigError
from ssl_ray.registry import Registry

DATASETS = Registry("dataset")

SPLITS = ("train", "test")
IMAGE_SIZES = (4, 1024)  # the side, in pixels, a dataset is resized to: data.image_size, write-beton --image-size
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class ArrayDataset:
    images: torch.Tensor  # uint8, (N, 3, H, W)
    labels: torch.Tensor  # int64, (N,)
    superclasses: Optional[torch.Tensor] = None  # int64, (N,), where the dataset has them
    num_classes: int = 0
    num_superclasses: int = 0

    in_memory = True

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def float_images(self) -> torch.Tensor:
        """Images as float32 in [0, 1]."""
        return to_unit_float(self.images)

    def image(self, i: int) -> np.ndarray:
        return self.images[i].permute(1, 2, 0).numpy()

    def to_array(self, image_size: Optional[int] = None) -> "ArrayDataset":
        if image_size is None or image_size == self.images.shape[-1]:
            return self
        return ArrayDataset(
            resize_uint8(self.images, image_size),
            self.labels,
            self.superclasses,
            self.num_classes,
            self.num_superclasses,
        )


@dataclass
class FileDataset:
    paths: List[str]
    labels: torch.Tensor
    superclasses: Optional[torch.Tensor] = None
    num_classes: int = 0
    num_superclasses: int = 0
    class_names: List[str] = field(default_factory=list)

    in_memory = False

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                return np.array(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{self.paths[i]}: cannot read image ({e})") from None

    def check_images(self, chunk: int = 4096) -> None:
        """Every file opens as an image (its header read, nothing decoded), in threads: a file that is no image
        is one ConfigError before anything is written. A file damaged past its header still fails later."""
        from concurrent.futures import ThreadPoolExecutor

        from PIL import Image

        def problem(path: str) -> Optional[str]:
            try:
                with Image.open(path) as im:
                    im.size  # noqa: B018 - read from the header
            except Exception as e:  # noqa: BLE001 - PIL raises many types for a file it cannot take
                return f"{path}: cannot read image ({type(e).__name__}: {e})"
            return None

        with ThreadPoolExecutor(16) as pool:
            for start in range(0, len(self.paths), chunk):
                bad = next((p for p in pool.map(problem, self.paths[start : start + chunk]) if p), None)
                if bad:
                    raise ConfigError(bad)

    def to_array(self, image_size: int) -> ArrayDataset:
        """Every image resized (shorter side) and center-cropped to ``image_size``, in memory --
        for probe sets and small folders."""
        imgs = torch.empty((len(self), 3, image_size, image_size), dtype=torch.uint8)
        for i in range(len(self)):
            imgs[i] = center_resize(torch.from_numpy(self.image(i)).permute(2, 0, 1), image_size)
        return ArrayDataset(imgs, self.labels, self.superclasses, self.num_classes, self.num_superclasses)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def center_resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, size, size): resize the shorter side to ``size``, then center crop."""
    h, w = img.shape[-2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    x = F.interpolate(img[None].float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[:, top : top + size, left : left + size].round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: ``load(split, image_size, data_root, superclass_map)`` and
    ``check(data_root, superclass_map)`` (raises ConfigError naming the missing file)."""

    load_fn: Callable[..., object]
    check_fn: Optional[Callable[[Optional[str], Optional[str]], None]] = None
    needs_root: bool = False
    in_memory: bool = True  # loads as an ArrayDataset (else a FileDataset)
    # The sample-level probe's default (images, train views, test views): the study's CIFAR-100 setting.
    sample_probe: Tuple[int, int, int] = (500, 100, 20)
    sample_augment: str = "simclr"  # the sample-level probe's views when training uses none
    takes_superclass_map: bool = False  # data.superclass_map gives it superclasses

    def check(self, name: str, data_root: Optional[str], superclass_map: Optional[str] = None) -> None:
        if self.needs_root:
            if data_root is None:
                raise ConfigError(
                    f"dataset {name!r} needs data.data_root (--data-root): the folder that holds its files"
                )
            if not Path(data_root).expanduser().is_dir():
                raise ConfigError(f"data root {data_root}: no such directory (dataset {name!r})")
        if self.check_fn is not None:
            self.check_fn(data_root, superclass_map)
