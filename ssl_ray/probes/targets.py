"""Target sets a representation is probed against (Ben-Shaul et al., "Reverse Engineering
Self-Supervised Learning", NeurIPS 2023, sections 4-5).

* ``sample``: N_s training images, each augmented A_train times (the probe's train set) and A_test
  more times (its test set); the label is the image's identity. Built by ``probe_data.py``.
* ``class``: the true labels.
* ``superclass``: the superclass labels, where the dataset has them.
* ``random_<r>``: the study's targets of graded randomness r in [0, 1]: the labels a supervised
  classifier gives the images at successive points of its training (a :class:`TargetBank`, built by
  ``ssl_ray.probes.bank`` and, in a sweep, by the sweep itself). At initialization they are a fixed but
  random-looking function of the input (r = 1); at the end of training they are the trained classifier's
  classes (r = 0; 86% agreement with the true ones on the digits). Epoch e has ``r_e = (acc_E - acc_e) / (acc_E - acc_0)`` (clipped to [0, 1]), with
  ``acc_e`` the agreement of its labels with the true ones; ``random_<r>`` takes the epoch whose r_e
  is nearest to r.
* ``permuted_<r>``: the chance control: a fraction r of the samples (train and test pooled) get their
  labels permuted at random, with a fixed seed per r. ``permuted_1.0`` permutes all of them, so no
  representation can predict held-out labels beyond chance, whatever it learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ssl_ray.errors import ConfigError

FIXED_TARGETS = ("sample", "class", "superclass")
GRADED = ("random", "permuted")  # random_<r>: from a target bank; permuted_<r>: labels permuted
DEFAULT_RANDOMNESS = (0.0, 0.25, 0.5, 0.75, 1.0)
CHANCE_CONTROL = "permuted_1.0"
# A bank target must use at least this fraction of the classes, with at least this normalized entropy.
MIN_CLASS_FRACTION = 0.8
MIN_LABEL_ENTROPY = 0.8
MAX_RANDOMNESS_GAP = 0.25  # the bank's randomness levels must cover [0, 1] with no larger gap
MIN_BANK_SIZE = 6


def parse_target(name: str) -> Tuple[str, float]:
    """``'class'`` -> ('class', 0.0); ``'random_0.5'`` -> ('random', 0.5); ``'permuted_1.0'`` ->
    ('permuted', 1.0). ConfigError otherwise."""
    if name in FIXED_TARGETS:
        return name, 0.0
    for kind in GRADED:
        if isinstance(name, str) and name.startswith(kind + "_"):
            try:
                r = float(name[len(kind) + 1:])
            except ValueError:
                r = -1.0
            if 0.0 <= r <= 1.0:
                return kind, r
    raise ConfigError(f"unknown probe target {name!r} (expected sample, class, superclass, random_<r> or "
                      f"permuted_<r> with r in [0, 1])")


def default_targets(has_superclasses: bool) -> List[str]:
    """sample, class, superclass (where the dataset has it), the study's random_<r> for r in 0, 0.25,
    0.5, 0.75, 1, and the chance control permuted_1.0."""
    return (["sample", "class"] + (["superclass"] if has_superclasses else [])
            + [f"random_{r}" for r in DEFAULT_RANDOMNESS] + [CHANCE_CONTROL])


def needs_bank(targets: Sequence[str]) -> bool:
    return any(parse_target(t)[0] == "random" for t in targets)


def random_labels(y: np.ndarray, r: float, seed: int) -> np.ndarray:
    """Permute the labels of a random fraction ``r`` of the samples among themselves."""
    rng = np.random.default_rng([seed, int(round(r * 1e6))])
    y = np.asarray(y).copy()
    n_perm = int(round(r * len(y)))
    idx = rng.choice(len(y), size=n_perm, replace=False)
    y[idx] = y[rng.permutation(idx)]
    return y


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


@dataclass
class LabelTarget:
    """One labelled target on a feature set: labels of the probe's train rows (what probes fit), its
    validation rows (what layers and trials are chosen on), its test rows, and the label count."""

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    num_classes: int


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(fit rows, validation rows)`` of ``y``: per class, a seeded ``fraction`` (rounded; at least one
    row of every class with two or more) goes to validation. Both sorted."""
    rng = np.random.default_rng([seed, 11])
    y = np.asarray(y)
    val = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        k = int(round(fraction * len(rows)))
        k = max(k, 1) if len(rows) >= 2 and fraction > 0 else k
        val.append(rng.permutation(rows)[: min(k, len(rows) - 1)])
    val = np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(y)), val), val


def _compact(ytr: np.ndarray, yte: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Relabel to 0..K-1 over the labels that occur (some classes may be missing from a subsample)."""
    _, inv = np.unique(np.concatenate([ytr, yte]), return_inverse=True)
    inv = inv.astype(np.int64)
    return torch.from_numpy(inv[: len(ytr)]), torch.from_numpy(inv[len(ytr):]), int(inv.max()) + 1


def label_target(name: str, ytr: np.ndarray, yte: np.ndarray, fit: np.ndarray, val: np.ndarray) -> LabelTarget:
    """A target from labels of the whole train split (``fit``/``val`` rows of it) and of the test split."""
    tr, te, k = _compact(np.asarray(ytr), np.asarray(yte))
    return LabelTarget(name, tr[torch.from_numpy(fit)], tr[torch.from_numpy(val)], te, k)


def clean_targets(names: Sequence[str], train, test, seed: int, fit: np.ndarray, val: np.ndarray,
                  bank: Optional[TargetBank] = None, train_index: Optional[np.ndarray] = None,
                  test_index: Optional[np.ndarray] = None) -> List[LabelTarget]:
    """The label targets on the clean probe images (every kind but ``sample``). ``train``/``test`` are
    datasets with ``labels`` and ``superclasses``; ``fit``/``val`` split the train rows; ``*_index``
    locate the rows in the full splits (for a bank)."""
    out = []
    ytr_all, yte_all = train.labels.numpy(), test.labels.numpy()
    for name in names:
        kind, r = parse_target(name)
        if kind == "sample":
            continue
        if kind == "class":
            ytr, yte = ytr_all, yte_all
        elif kind == "superclass":
            if train.superclasses is None:
                raise ConfigError("probe target 'superclass': this dataset has no superclass labels")
            ytr, yte = train.superclasses.numpy(), test.superclasses.numpy()
        elif kind == "permuted":
            pooled = random_labels(np.concatenate([ytr_all, yte_all]), r, seed)
            ytr, yte = pooled[: len(ytr_all)], pooled[len(ytr_all):]
        else:
            if bank is None:
                raise ConfigError(f"probe target {name!r} needs a target bank (probe.target_bank; a sweep builds one)")
            ytr, yte = bank.split_labels(bank.nearest(r), train_index, test_index)
        out.append(label_target(name, ytr, yte, fit, val))
    return out


def unscorable(t: LabelTarget) -> Optional[str]:
    """Why a target cannot be scored (None if it can): a probe needs two classes among its train rows,
    and a class spread needs a class with two samples."""
    if t.train.numel() == 0:
        return "no train samples"
    counts = torch.bincount(t.train)
    if int((counts > 0).sum()) < 2:
        return f"a single class in its {t.train.numel()} train labels"
    if int(counts.max()) < 2:
        return "no class has two train samples"
    return None
