"""The online k-NN accuracy against scikit-learn's KNeighborsClassifier with the same weighting.

scikit-learn's ``metric="cosine"`` gives the distance ``1 - s``; a weight function ``exp((1 - d) / T)`` is
then solo-learn's ``exp(s / T)`` vote. Ties in the k-th neighbour are broken differently by the two
(scikit-learn sorts by distance, torch's topk by value), so the clusters here have continuous features
(no exact ties). Shapes are the online reader's: 1,000 memory rows, hundreds of queries, 32-128 dims.
"""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from ssl_ray.probes.knn import TEMPERATURE, K, knn_accuracy, knn_votes


def clusters(n, d, classes, spread, seed, centers_seed=None):
    centers = np.random.default_rng(seed if centers_seed is None else centers_seed).normal(size=(classes, d))
    rng = np.random.default_rng([seed, 1])
    y = rng.integers(0, classes, size=n)
    return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("d,classes,spread", [(32, 10, 0.8), (128, 10, 1.5), (64, 100, 1.0)])
def test_matches_sklearn_weighted_knn(d, classes, spread):
    xm, ym = clusters(1000, d, classes, spread, seed=d)
    xq, yq = clusters(300, d, classes, spread, seed=d + 1, centers_seed=d)  # queries around the same centers
    sk = KNeighborsClassifier(
        n_neighbors=K, metric="cosine", algorithm="brute", weights=lambda dist: np.exp((1.0 - dist) / TEMPERATURE)
    ).fit(xm, ym)
    expected = float((sk.predict(xq) == yq).mean())
    got = knn_accuracy(torch.from_numpy(xm), torch.from_numpy(ym), torch.from_numpy(xq), torch.from_numpy(yq))
    assert abs(got - expected) <= 1.0 / 300 + 1e-9  # at most one query apart (float32 vs float64 near-ties)
    assert 0.0 < got <= 1.0


def test_votes_by_hand():
    # memory on the unit circle; a query at angle 0: its 2 nearest are at 0.1 (class 0) and -0.2 (class 1)
    ang = np.array([0.1, -0.2, 2.0, 3.0])
    mem = torch.tensor(np.stack([np.cos(ang), np.sin(ang)], 1), dtype=torch.float32)
    y = torch.tensor([0, 1, 1, 1])
    v = knn_votes(mem, y, torch.tensor([[5.0, 0.0]]), num_classes=2, k=2, temperature=0.5)
    expected = [np.exp(np.cos(0.1) / 0.5), np.exp(np.cos(0.2) / 0.5)]
    assert np.allclose(v.numpy()[0], expected, rtol=1e-5)
    # k = 4: class 1's vote is the sum of its three neighbours' weights
    v4 = knn_votes(mem, y, torch.tensor([[1.0, 0.0]]), num_classes=2, k=4, temperature=0.5).numpy()[0]
    assert np.isclose(v4[1], sum(np.exp(np.cos(a) / 0.5) for a in (-0.2, 2.0, 3.0)), rtol=1e-5)


def test_scale_invariant_and_label_dependent():
    xm, ym = clusters(1000, 32, 10, 0.8, seed=1)
    t = torch.from_numpy
    base = knn_accuracy(t(xm), t(ym), t(xm[:200]), t(ym[:200]))
    assert knn_accuracy(t(xm * 7.0), t(ym), t(xm[:200] * 0.01), t(ym[:200])) == pytest.approx(base)
    shuffled = np.random.default_rng(0).permutation(ym)
    chance = knn_accuracy(t(xm), t(shuffled), t(xm[:200] + 0.01), t(ym[:200]))
    assert base > 0.9 and chance < 0.3  # the reading follows the labels, not the features alone
