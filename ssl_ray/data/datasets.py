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
  ``experiments/digits_superclasses.txt``, the shape grouping the default sweep uses.
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

import io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ssl_ray.data.augment import to_unit_float
from ssl_ray.errors import ConfigError
from ssl_ray.registry import Registry

DATASETS = Registry("dataset")

SPLITS = ("train", "test")
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
        return ArrayDataset(resize_uint8(self.images, image_size), self.labels, self.superclasses,
                            self.num_classes, self.num_superclasses)


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

    def check(self, name: str, data_root: Optional[str], superclass_map: Optional[str] = None) -> None:
        if self.needs_root:
            if data_root is None:
                raise ConfigError(f"dataset {name!r} needs data.data_root (--data-root): the folder that holds its files")
            if not Path(data_root).expanduser().is_dir():
                raise ConfigError(f"data root {data_root}: no such directory (dataset {name!r})")
        if self.check_fn is not None:
            self.check_fn(data_root, superclass_map)


def load_dataset(name: str, split: str, image_size: Optional[int] = None, data_root: Optional[str] = None,
                 superclass_map: Optional[str] = None):
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    src: DatasetSource = DATASETS.get(name)
    src.check(name, data_root, superclass_map)
    root = str(Path(data_root).expanduser()) if data_root is not None else None
    return src.load_fn(split=split, image_size=image_size, data_root=root, superclass_map=superclass_map)


def dataset_meta(name: str, data_root: Optional[str] = None, superclass_map: Optional[str] = None) -> Dict[str, int]:
    """``{"num_classes", "num_superclasses"}`` without decoding any image (file datasets) or from
    the in-memory arrays."""
    ds = load_dataset(name, "train", data_root=data_root, superclass_map=superclass_map)
    return {"num_classes": ds.num_classes, "num_superclasses": ds.num_superclasses}


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
    supers, n_super = superclass_labels(superclass_map, DIGIT_CLASSES, labels) if superclass_map is not None else (None, 0)
    return ArrayDataset(images=imgs.contiguous(), labels=labels, superclasses=supers, num_classes=10, num_superclasses=n_super)


DIGIT_CLASSES = [str(d) for d in range(10)]  # the class names a superclass map uses


def _digits_check(data_root: Optional[str], superclass_map: Optional[str] = None) -> None:
    if superclass_map is not None:
        superclass_labels(superclass_map, DIGIT_CLASSES, [])


DATASETS.register("digits")(DatasetSource(_digits, _digits_check, sample_probe=(20, 100, 20)))


# ------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python-version pickles)


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR's files are pickles; a pickle can name any callable. Only what the CIFAR files need
    (numpy arrays and dtypes) may be constructed, so a tampered file is an error, not code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

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
                        f"`ssl-ray data download --dataset {name} --data-root {data_root}` fetches them)")

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
        coarse = np.concatenate([np.asarray(p[b"coarse_labels"], dtype=np.int64) for p in parts]) if name == "cifar100" else None
        ds = ArrayDataset(torch.from_numpy(data).contiguous(), torch.from_numpy(labels),
                          torch.from_numpy(coarse) if coarse is not None else None,
                          num_classes=100 if name == "cifar100" else 10, num_superclasses=20 if name == "cifar100" else 0)
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


# ------------------------------------------------------------------------------------------------
# ImageFolder / ImageNet


def read_superclass_map(path: str) -> Dict[str, str]:
    """``{class name: superclass name}`` from a JSON object or ``<class> <superclass>`` lines."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"superclass map {path}: no such file")
    text = p.read_text()
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
        supers, n_super = superclass_labels(superclass_map, classes, labels) if superclass_map is not None else (None, 0)
        return FileDataset(paths, torch.tensor(labels, dtype=torch.int64), supers, len(classes), n_super, classes)

    return load


DATASETS.register("imagefolder")(DatasetSource(_folder_load("test"), _folder_check("test"), needs_root=True, in_memory=False))
DATASETS.register("imagenet")(DatasetSource(_folder_load("val"), _folder_check("val"), needs_root=True, in_memory=False))
