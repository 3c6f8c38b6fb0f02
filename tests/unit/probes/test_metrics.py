"""Probe metrics against hand-computed values and independent implementations."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestCentroid

from ssl_ray.errors import ConfigError
from ssl_ray.probes.metrics import cdnv, ncc_accuracy
from ssl_ray.probes.target_names import parse_target
from ssl_ray.probes.targets import random_labels


def test_ncc_hand_computed():
    # class 0 mean (0,0), class 1 mean (4,0)
    tx = np.array([[-1.0, 0], [1, 0], [3, 0], [5, 0]])
    ty = np.array([0, 0, 1, 1])
    qx = np.array([[1.9, 5.0], [2.1, -3.0], [10, 0], [-10, 0]])
    qy = np.array([0, 0, 1, 1])  # 1.9 -> class 0 (right), 2.1 -> class 1 (wrong), 10 -> 1 (right), -10 -> 0 (wrong)
    assert ncc_accuracy(tx, ty, qx, qy) == pytest.approx(0.5)


def test_ncc_matches_sklearn_nearest_centroid():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12))
    y = rng.integers(0, 7, size=300)
    x += y[:, None] * 0.3
    xt, yt = x[:200], y[:200]
    xq, yq = x[200:], y[200:]
    sk = NearestCentroid().fit(xt, yt)
    assert ncc_accuracy(xt, yt, xq, yq) == pytest.approx((sk.predict(xq) == yq).mean())
    assert ncc_accuracy(torch.tensor(xt), torch.tensor(yt), torch.tensor(xq), torch.tensor(yq)) == pytest.approx(
        (sk.predict(xq) == yq).mean()
    )


def test_separable_clusters_give_ncc_one_and_small_cdnv():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(5, 10)) * 20
    y = np.repeat(np.arange(5), 40)
    x = centers[y] + rng.normal(size=(200, 10)) * 0.1
    assert ncc_accuracy(x, y, x, y) == 1.0
    assert cdnv(x, y) < 1e-3


def test_cdnv_hand_computed():
    # class 0: points (0,0),(2,0): mean (1,0), Var = mean sq dist = 1
    # class 1: points (10,0),(10,4): mean (10,2), Var = 4
    # ||mu0 - mu1||^2 = 81 + 4 = 85 -> cdnv = (1 + 4) / (2 * 85)
    x = np.array([[0.0, 0], [2, 0], [10, 0], [10, 4]])
    y = np.array([0, 0, 1, 1])
    assert cdnv(x, y) == pytest.approx(5 / 170)


def test_cdnv_mean_over_pairs_matches_loop():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 6))
    y = rng.integers(0, 4, size=120)
    mus = [x[y == c].mean(0) for c in range(4)]
    var = [((x[y == c] - mus[c]) ** 2).sum(1).mean() for c in range(4)]
    vals = [(var[i] + var[j]) / (2 * ((mus[i] - mus[j]) ** 2).sum()) for i in range(4) for j in range(i + 1, 4)]
    assert cdnv(x, y) == pytest.approx(np.mean(vals), rel=1e-10)


def test_random_targets():
    assert parse_target("random_0.5") == ("random", 0.5) and parse_target("permuted_1.0") == ("permuted", 1.0)
    with pytest.raises(ConfigError):
        parse_target("random_2")
    with pytest.raises(ConfigError):
        parse_target("superduper")
    y = np.arange(1000) % 10
    y_full = random_labels(y, 1.0, seed=0)
    assert sorted(y_full) == sorted(y)  # a permutation: class sizes are kept
    assert (y_full == y).mean() < 0.2
    y_half = random_labels(y, 0.5, seed=0)
    changed = (y_half != y).mean()
    assert 0.35 < changed <= 0.5
    assert (random_labels(y, 0.0, seed=0) == y).all()
    assert parse_target("sample") == ("sample", 0.0) and parse_target("superclass") == ("superclass", 0.0)
