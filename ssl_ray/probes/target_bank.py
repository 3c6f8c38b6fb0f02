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
        raise ConfigError(f"a target bank needs a classifier that improves over training; accuracies {acc.round(3).tolist()}")
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

    def split_labels(self, i: int, train_index: Optional[np.ndarray] = None,
                     test_index: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
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
                raise ConfigError(f"{where}: the labels of epoch {int(e)} are degenerate (normalized entropy {h:.2f}, "
                                  f"{used}/{self.num_classes} classes; need >= {MIN_LABEL_ENTROPY} and >= "
                                  f"{MIN_CLASS_FRACTION:.0%} of the classes)")
        r = np.sort(self.randomness)
        gaps = np.diff(np.concatenate([[0.0], r, [1.0]]))
        if len(self.epochs) < MIN_BANK_SIZE or gaps.max() > MAX_RANDOMNESS_GAP + 1e-9:
            raise ConfigError(f"{where}: its randomness levels {np.round(self.randomness, 2).tolist()} (epochs "
                              f"{self.epochs.tolist()}) need >= {MIN_BANK_SIZE} points covering [0, 1] with no gap over "
                              f"{MAX_RANDOMNESS_GAP} (largest gap {gaps.max():.2f}); train the classifier more slowly "
                              f"or keep more of its checkpoints")
        return self

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez(tmp, epochs=self.epochs, train=self.train, test=self.test, accuracy=self.accuracy,
                 num_classes=np.int64(self.num_classes))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TargetBank":
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"target bank {path}: no such file (write one with `ssl-ray probe bank`)")
        try:
            with np.load(p, allow_pickle=False) as z:
                bank = cls(z["epochs"], z["train"], z["test"], z["accuracy"], int(z["num_classes"]))
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"target bank {path}: not a target bank ({e})") from None
        return bank.check(f"target bank {path}")
