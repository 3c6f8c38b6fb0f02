"""The exact I(X; Z + sigma eps) of a layer (``ssl_ray.probes.information``) against closed forms, its
invariances, and the probe that pairs it with MINE: MINE is flagged exactly when it misses the exact value."""

import math

import numpy as np
import pytest
import torch

from ssl_ray.probes.information import add_channel_noise, gaussian_channel_mi, noisy_channel_mi, spread


def test_clusters_far_apart_carry_the_log_of_their_number():
    """K tight clusters far apart (relative to sigma) of equal size: the noisy layer tells the cluster and
    nothing more, I = log K exactly; N distinct far-apart points: log N; one point: 0."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 8)) * 1000
    z = np.repeat(centers, 40, axis=0)  # 200 images, 5 clusters of 40 identical feature vectors
    i, se = noisy_channel_mi(z, sigma=1.0)
    assert i == pytest.approx(math.log(5), abs=1e-6) and se < 1e-6
    assert noisy_channel_mi(rng.normal(size=(300, 8)) * 1000, 1.0)[0] == pytest.approx(math.log(300), abs=1e-6)
    assert noisy_channel_mi(np.ones((50, 4)), 1.0)[0] == pytest.approx(0.0, abs=1e-9)


def test_two_points_in_one_dimension_match_the_binary_input_channel():
    """X uniform on two images with features -a and +a, Y = Z + sigma eps: I = log 2 - E[log(1 + exp(-2aY/s^2))]
    over Y ~ N(a, s^2) (numerical integration); several a/sigma. Tolerance: 4 Monte-Carlo standard errors."""
    for a in (0.3, 1.0, 2.0):
        y = np.linspace(a - 12, a + 12, 200001)
        dens = np.exp(-((y - a) ** 2) / 2) / math.sqrt(2 * math.pi)
        truth = math.log(2) - float(np.sum(dens * np.logaddexp(0, -2 * a * y)) * (y[1] - y[0]))
        z = np.array([[-a]] * 500 + [[a]] * 500)
        i, se = noisy_channel_mi(z, sigma=1.0, draws=32)
        assert abs(i - truth) <= 4 * se + 1e-3, (a, i, truth, se)


def test_gaussian_features_approach_the_gaussian_channel():
    """Features drawn from N(0, I_2) on 3,000 images (spread sqrt(2)), noise 1/sqrt(2) of it (sigma = 1): the
    mixture over the images approaches the population value 2/2 log(1 + 1) = log 2 (within 0.04 nats)."""
    z = np.random.default_rng(1).standard_normal((3000, 2))
    noisy, sigma = add_channel_noise(z, 1 / math.sqrt(2), seed=0)
    assert sigma == pytest.approx(spread(z) / math.sqrt(2)) and sigma == pytest.approx(1.0, abs=0.03)
    assert noisy_channel_mi(z, sigma)[0] == pytest.approx(math.log(2), abs=0.04)


def test_the_reading_is_free_of_scale_rotation_and_width():
    """sigma is relative to the features' spread: scaling them by 10 gives the same value; a rotation, or an
    isometric embedding in 4 times as many dimensions (zero-padded, then rotated), the same value up to
    Monte-Carlo error. The per-coordinate spread would not pass the last: it read the wider layer 1.2 nats higher."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(800, 16)) @ np.diag(np.logspace(0, 1, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    wide_q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    wide = np.concatenate([z, np.zeros((800, 48))], 1) @ wide_q

    def read(a):
        return noisy_channel_mi(a, add_channel_noise(a, 0.5, 0)[1], draws=16)

    base, se = read(z)
    assert 0.5 < base < 4.0
    assert read(z * 10)[0] == pytest.approx(base, abs=1e-9)
    for other in (z @ q, wide):
        value, se2 = read(other)
        assert abs(value - base) <= 5 * math.hypot(se, se2) + 1e-3
    # the per-coordinate scale, sigma = 2 sqrt(tr Cov / D) (the same sigma as ours for the 16-d layer), reads the
    # same features higher in the wider layer
    wide_pc = noisy_channel_mi(wide, 2 * spread(wide) / math.sqrt(64), draws=16)[0]
    assert wide_pc > base + 0.5


def test_the_gaussian_bound_splits_the_reading_into_spectrum_and_clusters():
    """``mi_gaussian`` = 1/2 sum log(1 + l_i / sigma^2) exactly on data with a known spectrum, at most 1 / (2 noise^2)
    = 2 nats at noise 0.5; Gaussian features read it (J ~ 0, within 0.05 nats on 3,000 images); ten tight
    clusters read below it (1.39 against 1.60: J > 0.15): the gap is what clustering takes away."""
    rng = np.random.default_rng(3)
    eigs = np.array([4.0, 2.0, 1.0, 0.5])
    u, _ = np.linalg.qr(rng.normal(size=(3000, 4)) - 0.0)
    u -= u.mean(0)
    u, _ = np.linalg.qr(u)
    z = u * np.sqrt(eigs * 3000)  # covariance exactly diag(eigs)
    assert gaussian_channel_mi(z, 1.5) == pytest.approx(0.5 * np.log1p(eigs / 2.25).sum(), rel=1e-9)
    gauss = rng.normal(size=(3000, 8)) @ np.diag([3, 2, 1, 1, 0.5, 0.5, 0.2, 0.1])
    _, sigma = add_channel_noise(gauss, 0.5, 0)
    bound = gaussian_channel_mi(gauss, sigma)
    assert bound <= 2.0 and noisy_channel_mi(gauss, sigma)[0] == pytest.approx(bound, abs=0.05)
    clusters = np.repeat(rng.normal(size=(10, 32)), 100, axis=0) + 0.05 * rng.normal(size=(1000, 32))
    _, sigma = add_channel_noise(clusters, 0.5, 0)
    assert gaussian_channel_mi(clusters, sigma) - noisy_channel_mi(clusters, sigma)[0] > 0.15
    assert noisy_channel_mi(clusters, sigma)[0] <= math.log(10) + 1e-6


def _feature_set(x: torch.Tensor, z: torch.Tensor):
    from ssl_ray.probes.scoring import FeatureSet
    from ssl_ray.probes.targets import LabelTarget

    n = len(x)
    y = torch.arange(n) % 10
    tr, va, te = slice(0, n * 6 // 10), slice(n * 6 // 10, n * 8 // 10), slice(n * 8 // 10, n)
    t = LabelTarget("class", y[tr], y[va], y[te], 10)
    return FeatureSet("clean", z[tr], z[va], z[te], x, [t])


def test_the_mine_probe_flags_mine_where_it_misses_the_exact_value():
    """At the probes' shapes (a 192-d input of rank 64, 1,800 images): a 32-d layer that is a rank-4 linear map of
    the input (MINE can learn it; the digits' blocks have participation ratios near 4) reads within 25% of the
    exact value and is not flagged; a layer that is a hash-like
    nonlinear function of the input (no critic learns it from 1,260 images) reads far below the exact value and
    is flagged. In both cases the flag is exactly 'more than 25% + 0.05 nats from the exact value, or MINE's
    own check failed'."""
    from ssl_ray.config import ProbeConfig
    from ssl_ray.probes.scoring import PROBES

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1800, 64, generator=g)
    x = torch.cat([base, base, base], 1)  # 192 numbers of rank 64, like the digits' three identical channels
    linear = base[:, :4] @ torch.randn(4, 32, generator=g) * torch.logspace(0, -1, 32)
    hashed = torch.sin(37.0 * base @ torch.randn(64, 32, generator=g))
    p = ProbeConfig()
    for z, readable in ((linear, True), (hashed, False)):
        fs = _feature_set(x, z)
        info = PROBES.get("information")(fs, p)
        exact = info[("class", "mi_exact")]
        assert exact <= info[("class", "mi_gaussian")] + 0.05 <= 2.05
        out = PROBES.get("mine")(fs, p)
        est, flagged = out[("class", "mine")], out[("class", "mine_unreliable")]
        assert 0.5 < exact < 5.0
        if readable:
            assert abs(est - exact) <= 0.25 * exact and flagged == 0.0, (est, exact)
        else:
            assert est < 0.5 * exact and flagged == 1.0, (est, exact)
