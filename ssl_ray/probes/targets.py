"""Target sets a representation is probed against (Ben-Shaul et al., "Reverse Engineering
Self-Supervised Learning", NeurIPS 2023, sections 4-5).

* ``sample``: N_s training images, each augmented A_train times (the probe's train set) and A_test
  more times (its test set); the label is the image's identity. Built by ``probe_data.py``.
* ``class``: the true labels.
* ``superclass``: the superclass labels, where the dataset has them.
* ``random_<r>``: targets of randomness ``r`` in [0, 1], made one of two ways (``probe.randomness``):

  - ``permute``: a fraction r of the samples (train and test pooled) get their labels permuted at
    random, with a fixed seed per r. ``random_1.0`` permutes all of them, so no representation can
    predict held-out labels beyond chance.
  - ``supervised``: the study's protocol. A supervised classifier's predictions on the train and test
    images, saved at successive epochs of its training, form a :class:`TargetBank`. Epoch e has
    randomness ``r_e = (acc_E - acc_e) / (acc_E - acc_0)`` (clipped to [0, 1]), with ``acc_e`` the
    agreement of its predictions with the true labels: 1 at initialization, 0 at the end of training.
    ``random_<r>`` takes the epoch whose r_e is nearest to r.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ssl_ray.errors import ConfigError

RANDOMNESS = ("permute", "supervised")


def parse_target(name: str) -> Tuple[str, float]:
    """``'class'`` -> ('class', 0.0); ``'random_0.5'`` -> ('random', 0.5). ConfigError otherwise."""
    if name in ("sample", "class", "superclass"):
        return name, 0.0
    if isinstance(name, str) and name.startswith("random_"):
        try:
            r = float(name[len("random_"):])
        except ValueError:
            r = -1.0
        if 0.0 <= r <= 1.0:
            return "random", r
    raise ConfigError(f"unknown probe target {name!r} (expected sample, class, superclass or random_<r> with r in [0, 1])")


def default_targets(has_superclasses: bool) -> List[str]:
    return ["sample", "class"] + (["superclass"] if has_superclasses else []) + ["random_0.5", "random_1.0"]


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
        bank.randomness  # noqa: B018 - raises if the classifier never improved
        return bank


@dataclass
class LabelTarget:
    """One labelled target on a feature set: train and test labels, and the label count."""

    name: str
    train: torch.Tensor
    test: torch.Tensor
    num_classes: int


def _compact(ytr: np.ndarray, yte: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Relabel to 0..K-1 over the labels that occur (some classes may be missing from a subsample)."""
    _, inv = np.unique(np.concatenate([ytr, yte]), return_inverse=True)
    inv = inv.astype(np.int64)
    return torch.from_numpy(inv[: len(ytr)]), torch.from_numpy(inv[len(ytr):]), int(inv.max()) + 1


def clean_targets(names: Sequence[str], train, test, seed: int, bank: Optional[TargetBank] = None,
                  train_index: Optional[np.ndarray] = None, test_index: Optional[np.ndarray] = None) -> List[LabelTarget]:
    """The label targets on the clean probe images (every kind but ``sample``). ``train``/``test`` are
    datasets with ``labels`` and ``superclasses``; ``*_index`` locate them in the full splits (for a bank)."""
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
        elif bank is None:
            pooled = random_labels(np.concatenate([ytr_all, yte_all]), r, seed)
            ytr, yte = pooled[: len(ytr_all)], pooled[len(ytr_all):]
        else:
            e = bank.nearest(r)
            ytr = bank.train[e] if train_index is None else bank.train[e][train_index]
            yte = bank.test[e] if test_index is None else bank.test[e][test_index]
        out.append(LabelTarget(name, *_compact(np.asarray(ytr), np.asarray(yte))))
    return out
