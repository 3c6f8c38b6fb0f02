"""A target bank: a supervised classifier's predicted labels at several epochs of its training, the source of
the ``random_<r>`` targets (``ssl_ray.probes.targets``; built by ``ssl_ray.probes.bank``). Numpy only: the
results API reads a bank's randomness without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from ssl_ray.errors import ConfigError

# A bank target must use at least this fraction of the classes, with at least this normalized entropy.
MIN_CLASS_FRACTION = 0.8
MIN_LABEL_ENTROPY = 0.8
MAX_RANDOMNESS_GAP = 0.25  # the bank's randomness levels must cover [0, 1] with no larger gap
MIN_BANK_SIZE = 6


def bank_randomness(accuracy: Sequence[float]) -> np.ndarray:
    """``r_e = (acc_E - acc_e) / (acc_E - acc_0)``, clipped to [0, 1]: 1 at the first epoch, 0 at the last."""
    acc = np.asarray(accuracy, dtype=np.float64)
    span = acc[-1] - acc[0]
    if len(acc) < 2 or span <= 0:
        raise ConfigError(
            f"a target bank needs a classifier that improves over training; accuracies {acc.round(3).tolist()}"
        )
    return np.clip((acc[-1] - acc) / span, 0.0, 1.0)


def label_entropy(labels: np.ndarray, num_classes: int) -> float:
    """Normalized entropy ``H / log K`` of a labelling's class frequencies: 1 for balanced labels, 0 for one class."""
    p = np.bincount(np.asarray(labels), minlength=num_classes) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(num_classes)) if num_classes > 1 else 0.0


@dataclass
class TargetBank:
    """A supervised classifier's predicted labels at several epochs of its training."""

    epochs: np.ndarray  # (E,)
    train: np.ndarray  # (E, N_train) predicted labels on the (uncapped) train split
    test: np.ndarray  # (E, N_test)
    accuracy: np.ndarray  # (E,) agreement with the true labels, train and test pooled
    num_classes: int

    @property
    def randomness(self) -> np.ndarray:
        return bank_randomness(self.accuracy)

    def nearest(self, r: float) -> int:
        return int(np.argmin(np.abs(self.randomness - r)))

    def labels(self, i: int) -> np.ndarray:
        return np.concatenate([self.train[i], self.test[i]])

    def split_labels(
        self, i: int, train_index: Optional[np.ndarray] = None, test_index: Optional[np.ndarray] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Epoch ``i``'s labels of the train and test rows given (every row where an index is None)."""
        ytr, yte = self.train[i], self.test[i]
        return (ytr if train_index is None else ytr[train_index]), (yte if test_index is None else yte[test_index])

    def entropies(self) -> np.ndarray:
        return np.array([label_entropy(self.labels(i), self.num_classes) for i in range(len(self.epochs))])

    def classes_used(self) -> np.ndarray:
        return np.array([len(np.unique(self.labels(i))) for i in range(len(self.epochs))])

    def check(self, where: str = "target bank") -> "TargetBank":
        """Refuse a bank whose targets are degenerate or whose randomness levels leave a gap: one
        ConfigError line naming the first bad epoch."""
        for e, h, used in zip(self.epochs, self.entropies(), self.classes_used()):
            if used < MIN_CLASS_FRACTION * self.num_classes or h < MIN_LABEL_ENTROPY:
                raise ConfigError(
                    f"{where}: the labels of epoch {int(e)} are degenerate (normalized entropy {h:.2f}, "
                    f"{used}/{self.num_classes} classes; need >= {MIN_LABEL_ENTROPY} and >= "
                    f"{MIN_CLASS_FRACTION:.0%} of the classes)"
                )
        r = np.sort(self.randomness)
        gaps = np.diff(np.concatenate([[0.0], r, [1.0]]))
        if len(self.epochs) < MIN_BANK_SIZE or gaps.max() > MAX_RANDOMNESS_GAP + 1e-9:
            raise ConfigError(
                f"{where}: its randomness levels {np.round(self.randomness, 2).tolist()} (epochs "
                f"{self.epochs.tolist()}) need >= {MIN_BANK_SIZE} points covering [0, 1] with no gap over "
                f"{MAX_RANDOMNESS_GAP} (largest gap {gaps.max():.2f}); train the classifier more slowly "
                f"or keep more of its checkpoints"
            )
        return self

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez(
            tmp,
            epochs=self.epochs,
            train=self.train,
            test=self.test,
            accuracy=self.accuracy,
            num_classes=np.int64(self.num_classes),
        )
        tmp.replace(path)
        return path

    def check_dataset(
        self, num_train: int, num_test: int, num_classes: int, where: str = "target bank"
    ) -> "TargetBank":
        """Refuse a bank made for another dataset: its rows are the dataset's train and test images, in order,
        and its labels its classes."""
        if (self.train.shape[1], self.test.shape[1], self.num_classes) != (num_train, num_test, num_classes):
            raise ConfigError(
                f"{where}: made for {self.train.shape[1]}/{self.test.shape[1]} train/test images of "
                f"{self.num_classes} classes, but the dataset has {num_train}/{num_test} of {num_classes}; "
                f"build one for it with `ssl-ray probe bank`"
            )
        return self

    @classmethod
    def load(cls, path: str | Path) -> "TargetBank":
        """A bank written by :meth:`save`, read as data only (never a pickle), its arrays' shapes, types, labels
        and accuracies checked, then :meth:`check`: every fault is one ConfigError line."""
        p = Path(path).expanduser()
        where = f"target bank {path}"
        if not p.is_file():
            raise ConfigError(f"{where}: no such file (write one with `ssl-ray probe bank`)")
        arrays = read_npz(p, BANK_ARRAYS, where)
        check_bank_arrays(arrays, where)
        bank = cls(arrays["epochs"], arrays["train"], arrays["test"], arrays["accuracy"], int(arrays["num_classes"]))
        return bank.check(where)


BANK_ARRAYS = ("epochs", "train", "test", "accuracy", "num_classes")
MAX_ARRAY_BYTES = 4 << 30  # an ImageNet bank of 20 epochs is about 0.2 GB
_MAGIC = {b"PK\x03\x04": None, b"\x93NUMPY": "a single .npy array", b"\x80": "a Python pickle"}


def read_npz(p: Path, names: Sequence[str], where: str) -> dict:
    """The arrays ``names`` of the ``.npz`` archive ``p``, read as plain data: a file of another format, an
    array of Python objects (a pickle, which can run code) or a truncated one is a ConfigError."""
    import zipfile

    with p.open("rb") as f:
        head = f.read(8)
    kind = next((k for m, k in _MAGIC.items() if head.startswith(m)), "of another format") if head else "empty"
    if kind is not None:
        raise ConfigError(
            f"{where}: not a target bank (an .npz archive written by `ssl-ray probe bank`); the file is {kind}"
        )
    out = {}
    try:
        with zipfile.ZipFile(p) as zf:
            missing = [n for n in names if f"{n}.npy" not in zf.namelist()]
            if missing:
                raise ConfigError(f"{where}: not a target bank (no {', '.join(missing)} array in it)")
            for n in names:
                with zf.open(f"{n}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise ConfigError(
                        f"{where}: its {n!r} array holds Python objects (pickled data), which ssl_ray "
                        f"never loads; a target bank holds numbers only"
                    )
                if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_ARRAY_BYTES:
                    raise ConfigError(f"{where}: its {n!r} array of shape {shape} is over {MAX_ARRAY_BYTES >> 30} GiB")
                with zf.open(f"{n}.npy") as f:
                    out[n] = np.lib.format.read_array(f, allow_pickle=False)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile, zlib and numpy raise many types; their words are not ours to repeat
        raise ConfigError(f"{where}: cannot be read (truncated or corrupt: {type(e).__name__})") from None
    return out


def check_bank_arrays(a: dict, where: str) -> None:
    """Shapes, integer labels in ``[0, num_classes)``, accuracies in [0, 1], increasing epochs."""

    def fail(what: str):
        raise ConfigError(f"{where}: {what}")

    k = a["num_classes"]
    if k.shape != () or k.dtype.kind not in "iu" or not 2 <= int(k) <= 1_000_000:
        fail(f"num_classes must be one integer >= 2, got {k.tolist()!r}")
    e = a["epochs"]
    if e.ndim != 1 or e.dtype.kind not in "iu" or len(e) < 2 or (e < 0).any() or (np.diff(e) <= 0).any():
        fail(f"epochs must be >= 2 increasing non-negative integers, got {e.dtype} of shape {e.shape}")
    for split in ("train", "test"):
        y = a[split]
        if y.ndim != 2 or y.shape[0] != len(e) or y.shape[1] < 1:
            fail(f"{split} labels must have shape (epochs, images) = ({len(e)}, N), got {y.shape}")
        if y.dtype.kind not in "iu":
            fail(f"{split} labels must be integers, got {y.dtype}")
        if y.min() < 0 or y.max() >= int(k):
            fail(f"{split} labels must lie in [0, {int(k)}) (num_classes {int(k)}), got {y.min()}..{y.max()}")
    acc = a["accuracy"]
    if acc.shape != e.shape or acc.dtype.kind not in "fiu":
        fail(f"accuracy must hold one number per epoch ({len(e)}), got {acc.dtype} of shape {acc.shape}")
    if not np.isfinite(acc).all() or (acc < 0).any() or (acc > 1).any():
        fail(f"accuracy must lie in [0, 1], got {np.round(acc.astype(np.float64), 3).tolist()}")
