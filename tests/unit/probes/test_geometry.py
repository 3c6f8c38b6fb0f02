"""MMCR's manifold radius and dimension on L2-normalized embeddings, and the power-law exponent alpha, against
data whose true values are known."""

import math

import numpy as np
import pytest

from ssl_ray.probes.geometry import alpha_ranks, manifold_geometry, powerlaw_alpha


def sphere_class(m: int, theta: float, dim: int, offset: int, reps: int, rng) -> np.ndarray:
    """Unit vectors ``cos(theta) e_0 +- sin(theta) e_k`` for the ``m`` axes ``k = offset .. offset + m - 1``, each
    ``reps`` times, in a random rotation, every row then scaled by a random positive factor. After projection to
    the sphere: mean ``cos(theta) e_0``, covariance ``sin(theta)^2 / m`` on m axes exactly, so
    R = sqrt(sum lambda_i^2) = sin(theta) and D = (sum lambda_i)^2 / sum lambda_i^2 = m."""
    rows = []
    for k in range(offset, offset + m):
        for sign in (1.0, -1.0):
            v = np.zeros(dim)
            v[0], v[k] = math.cos(theta), sign * math.sin(theta)
            rows += [v] * reps
    return np.array(rows) * rng.uniform(0.1, 50.0, size=(len(rows), 1))


def test_manifold_geometry_is_the_normalized_definition_on_a_known_spectrum():
    """Two classes with known spherical spectra (R = sin theta, D = m): the reading is their mean to 1e-9,
    whatever scale each row had; scaling every feature by 10 changes neither; and on unstructured data it equals
    the definition computed independently (normalize, numpy covariance with 1/n_c, eigvalsh)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    a = sphere_class(3, 0.4, 24, 1, 5, rng) @ q
    b = sphere_class(7, 1.1, 24, 4, 3, rng) @ q
    x = np.concatenate([a, b])
    y = np.array([0] * len(a) + [1] * len(b))
    r, d = manifold_geometry(x, y)
    assert r == pytest.approx((math.sin(0.4) + math.sin(1.1)) / 2, rel=1e-9)
    assert d == pytest.approx((3 + 7) / 2, rel=1e-9)
    assert manifold_geometry(10 * x, y) == pytest.approx((r, d), rel=1e-12)

    x = rng.normal(size=(400, 32)) * rng.uniform(0.1, 3, 32) + rng.normal(size=32)
    y = rng.integers(0, 6, size=400)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    rs, ds = [], []
    for c in range(6):
        lam = np.sqrt(np.clip(np.linalg.eigvalsh(np.cov(u[y == c].T, bias=True)), 0, None))
        rs.append(np.sqrt((lam**2).sum()))
        ds.append(lam.sum() ** 2 / (lam**2).sum())
    assert manifold_geometry(x, y) == pytest.approx((np.mean(rs), np.mean(ds)), rel=1e-9)
    assert manifold_geometry(x * 10, y) == pytest.approx((np.mean(rs), np.mean(ds)), rel=1e-9)
    assert np.mean(rs) <= 1.0  # on the sphere the radius is at most 1


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("n, d", [(256, 256), (300, 256), (220, 256)])
def test_powerlaw_alpha_at_as_many_samples_as_dimensions(alpha, n, d):
    """Gaussian samples of a population whose covariance spectrum is exactly i^(-alpha) (random eigenbasis), N
    about D: the fitted alpha is within 10% (the mean of 3 draws). A fit over the whole spectrum reads alpha = 1
    as about 2 here; this guards the choice of ranks."""
    rng = np.random.default_rng([n, d, int(alpha * 10)])
    pop = np.arange(1, d + 1, dtype=float) ** -alpha
    fits = []
    for _ in range(3):
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        x = (rng.normal(size=(n, d)) * np.sqrt(pop)) @ q.T
        fits.append(powerlaw_alpha(x))
    assert np.mean(fits) == pytest.approx(alpha, rel=0.10)


@pytest.mark.parametrize("d", [16, 32])
def test_powerlaw_alpha_with_many_samples_per_dimension(d):
    """The probes' shape: 1,150 rows, a 16-d or 32-d layer. Every one of 5 draws is within 10% for alpha = 0.5, 1, 2
    (the narrow N ~ D range, ranks 2 .. m/4, erred by up to 21% in single draws at 16 dimensions)."""
    rng = np.random.default_rng(d)
    for alpha in (0.5, 1.0, 2.0):
        pop = np.arange(1, d + 1, dtype=float) ** -alpha
        for _ in range(5):
            q, _ = np.linalg.qr(rng.normal(size=(d, d)))
            x = (rng.normal(size=(1150, d)) * np.sqrt(pop)) @ q.T
            assert powerlaw_alpha(x) == pytest.approx(alpha, rel=0.10), (d, alpha)


def test_powerlaw_alpha_ranks_and_exact_spectra():
    """The stated ranges: 2 .. m/4 with m = min(N - 1, D) below 8 samples per dimension, 1 .. m/2 from there; on an
    exactly known spectrum the exponent is exact; on isotropic data it is ~0."""
    assert alpha_ranks(1000, 128) == (2, 32) and alpha_ranks(100, 512) == (2, 24) and alpha_ranks(50, 8) == (1, 8)
    assert alpha_ranks(1150, 16) == (1, 8) and alpha_ranks(1150, 128) == (1, 64)
    rng = np.random.default_rng(0)
    for alpha in (0.5, 1.0, 2.0):
        eigs = np.arange(1, 41, dtype=float) ** -alpha
        u, _ = np.linalg.qr(rng.normal(size=(4000, 40)) - 0.0)
        u -= u.mean(0)
        u, _ = np.linalg.qr(u)
        v, _ = np.linalg.qr(rng.normal(size=(40, 40)))
        x = (u * np.sqrt(eigs * 4000)) @ v.T
        assert powerlaw_alpha(x) == pytest.approx(alpha, rel=1e-6)
    assert abs(powerlaw_alpha(rng.normal(size=(50000, 20)))) < 0.05
