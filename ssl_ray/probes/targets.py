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
  classes (r = 0; 86% agreement with the true ones on the digits). Epoch e has ``r_e = (acc_E - acc_e) / (acc_E -
  acc_0)`` (clipped to [0, 1]), with
  ``acc_e`` the agreement of its labels with the true ones; ``random_<r>`` takes the epoch whose r_e
  is nearest to r.
* ``permuted_<r>``: the chance control: a fraction r of the samples (train and test pooled) get their
  labels permuted at random, with a fixed seed per r. ``permuted_1.0`` permutes all of them, so no
  representation can predict held-out labels beyond chance, whatever it learned.

The names and what they mean (torch-free): ``ssl_ray.probes.target_names``; here, how their labels are made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ssl_ray.errors import ConfigError
from ssl_ray.probes.target_bank import TargetBank
from ssl_ray.probes.target_names import parse_target


def needs_bank(targets: Sequence[str]) -> bool:
    """Whether any of ``targets`` is a ``random_<r>`` target (they need a target bank)."""
    return any(parse_target(t)[0] == "random" for t in targets)


def random_labels(y: np.ndarray, r: float, seed: int) -> np.ndarray:
    """Permute the labels of a random fraction ``r`` of the samples among themselves."""
    rng = np.random.default_rng([seed, int(round(r * 1e6))])
    y = np.asarray(y).copy()
    n_perm = int(round(r * len(y)))
    idx = rng.choice(len(y), size=n_perm, replace=False)
    y[idx] = y[rng.permutation(idx)]
    return y


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
    return torch.from_numpy(inv[: len(ytr)]), torch.from_numpy(inv[len(ytr) :]), int(inv.max()) + 1


def label_target(name: str, ytr: np.ndarray, yte: np.ndarray, fit: np.ndarray, val: np.ndarray) -> LabelTarget:
    """A target from labels of the whole train split (``fit``/``val`` rows of it) and of the test split."""
    tr, te, k = _compact(np.asarray(ytr), np.asarray(yte))
    return LabelTarget(name, tr[torch.from_numpy(fit)], tr[torch.from_numpy(val)], te, k)


def clean_targets(
    names: Sequence[str],
    train,
    test,
    seed: int,
    fit: np.ndarray,
    val: np.ndarray,
    bank: Optional[TargetBank] = None,
    train_index: Optional[np.ndarray] = None,
    test_index: Optional[np.ndarray] = None,
) -> List[LabelTarget]:
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
            ytr, yte = pooled[: len(ytr_all)], pooled[len(ytr_all) :]
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
