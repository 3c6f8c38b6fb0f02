"""Target sets a representation is probed against.

* ``class``: the true labels.
* ``random_<r>``: labels of randomness ``r`` in [0, 1]: a fraction r of the samples (train and test
  pooled) get their labels permuted at random, with a fixed seed per r. ``random_1.0`` permutes all
  of them, so no representation can predict held-out labels beyond chance.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from ssl_ray.errors import ConfigError


def parse_target(name: str) -> Tuple[str, float]:
    """``'class'`` -> ('class', 0.0); ``'random_0.5'`` -> ('random', 0.5). ConfigError otherwise."""
    if name == "class":
        return "class", 0.0
    if name.startswith("random_"):
        try:
            r = float(name[len("random_"):])
        except ValueError:
            r = -1.0
        if 0.0 <= r <= 1.0:
            return "random", r
    raise ConfigError(f"unknown probe target {name!r} (expected 'class' or 'random_<r>' with r in [0, 1])")


def random_labels(y: np.ndarray, r: float, seed: int) -> np.ndarray:
    """Permute the labels of a random fraction ``r`` of the samples among themselves."""
    rng = np.random.default_rng([seed, int(round(r * 1e6))])
    y = np.asarray(y).copy()
    n_perm = int(round(r * len(y)))
    idx = rng.choice(len(y), size=n_perm, replace=False)
    y[idx] = y[rng.permutation(idx)]
    return y


def make_targets(name: str, y_train: torch.Tensor, y_test: torch.Tensor, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    kind, r = parse_target(name)
    if kind == "class":
        return y_train, y_test
    y_all = np.concatenate([y_train.numpy(), y_test.numpy()])
    y_rand = torch.from_numpy(random_labels(y_all, r, seed))
    n = len(y_train)
    return y_rand[:n], y_rand[n:]
