"""MINE against Gaussian pairs whose mutual information is exact, at the shapes the probes hand it (a 192-d
pooled input, a 32-d or 128-d layer, 1,800 pairs) and in a few dimensions; its invariance to invertible maps;
its saturation and reliability flags; the Wilks null mean its reliability check subtracts."""

import math

import numpy as np
import pytest
import torch

from ssl_ray.probes.canonical import gaussian_reference, wilks_null_mean
from ssl_ray.probes.mine import DEFAULT_SEEDS, mine, mine_estimates


def gaussian_pairs(mi: float, d: int, n: int = 2000, seed: int = 0):
    """x ~ N(0, I_d), z = rho x + sqrt(1 - rho^2) e: I(x; z) = -d/2 log(1 - rho^2) = ``mi`` nats exactly."""
    rho = math.sqrt(1 - math.exp(-2 * mi / d))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))


def embedded_pairs(mi: float, k: int, dx: int = 192, dz: int = 32, n: int = 1800, seed: int = 0):
    """``mi`` nats shared by ``k`` canonical pairs (equal correlations), embedded in a ``dx``-d input and a ``dz``-d
    layer: the other dimensions are independent noise, and both sides are mixed by random linear maps with
    unequal scales (condition number 10), as a pooled image and a layer are. I(x; z) = ``mi`` exactly."""
    rng = np.random.default_rng(seed)
    rho = math.sqrt(1 - math.exp(-2 * mi / k))
    u = rng.standard_normal((n, k))
    v = rho * u + math.sqrt(1 - rho**2) * rng.standard_normal((n, k))
    x = np.concatenate([u, rng.standard_normal((n, dx - k))], 1)
    z = np.concatenate([v, rng.standard_normal((n, dz - k))], 1)

    def mix(d):
        q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
        q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
        return q1 @ np.diag(np.logspace(0, 1, d)) @ q2

    return x @ mix(dx), z @ mix(dz)


@pytest.mark.parametrize("d", [pytest.param(4, marks=pytest.mark.slow), 8, pytest.param(16, marks=pytest.mark.slow)])
def test_mine_recovers_known_gaussian_mutual_information(d):
    """With the sweep's settings (5 seeds, the estimator's defaults) on 2,000 pairs: from 1 nat up the mean over
    seeds is within 15% of the truth, unflagged; every reading is within max(25%, 0.05 nats) or flagged; they
    rise with the truth."""
    torch.set_num_threads(1)
    means = []
    for mi in (0.5, 1.0, 2.0, 3.0):
        r = mine(*gaussian_pairs(mi, d))
        assert len(r.estimates) == 5 and not r.saturated
        assert abs(r.mean - mi) <= max(0.25 * mi, 0.05) or r.unreliable, f"{d} dims, {mi} nats: {r}"
        if mi >= 1:
            assert abs(r.mean - mi) <= 0.15 * mi and not r.unreliable, f"{d} dims, {mi} nats: {r}"
        means.append(r.mean)
    assert means == sorted(means) and means[-1] > means[0] + 2.0


@pytest.mark.parametrize("dz", [32, 128])
def test_mine_at_the_probes_shapes_reads_the_truth_or_says_it_cannot(dz):
    """A 192-d input, a ``dz``-d layer, 1,800 pairs (the digits' probe images). Information held by one or two
    canonical pairs is readable: 1.1 nats in one and 2.6 in two read within 25%, unflagged. Information spread
    thinly over 24 pairs (correlations ~0.3-0.45 each, below what 1,800 pairs resolve in 192 dimensions out of
    sample) is not: the reading must then carry ``unreliable``. 1.2 nats in two pairs sits at the edge (the
    directions fitted in 192 dimensions lose ~20%): either way no unflagged reading is off by more than 25%."""
    torch.set_num_threads(1)
    for mi, k, readable in ((1.1, 1, True), (2.6, 2, True), (1.2, 2, None), (1.2, 24, False), (2.6, 24, False)):
        r = mine(*embedded_pairs(mi, k, dz=dz, seed=int(10 * mi) + k))
        within = abs(r.mean - mi) <= 0.25 * mi
        assert within or r.unreliable, f"{mi} nats in {k} pairs, {dz}-d layer: read {r.mean:.2f}, not flagged"
        if readable:
            assert within and not r.unreliable, f"{mi} nats in {k} pairs, {dz}-d layer: {r}"
        elif readable is False:
            assert r.unreliable, f"{mi} nats over {k} pairs should be flagged: {r}"
        assert abs(r.reference - mi) <= 0.15 * mi, f"the Gaussian reference read {r.reference:.2f} for {mi}"


def test_mine_is_invariant_to_an_invertible_ill_conditioned_map():
    """I(x; z) = I(x; z W) for invertible W. With W's condition number 500 (singular values log-spaced from 1 to
    1/500, random rotations on both sides), the two readings agree within 0.3 nats; so do x and x V."""
    torch.set_num_threads(1)
    x, z = embedded_pairs(2.2, 3, dz=32, seed=3)
    rng = np.random.default_rng(7)

    def ill(d):
        q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
        q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
        w = q1 @ np.diag(np.logspace(0, -math.log10(500), d)) @ q2
        assert np.linalg.cond(w) == pytest.approx(500, rel=1e-6)
        return w

    base = mine_estimates(x, z).mean()
    assert abs(base - 2.2) <= 0.25 * 2.2
    assert abs(mine_estimates(x, z @ ill(32)).mean() - base) <= 0.3
    assert abs(mine_estimates(x @ ill(192), z).mean() - base) <= 0.3


def test_mine_is_stable_on_rare_extreme_rows():
    """A layer's features have rare extreme rows. Gaussian pairs (1.5 nats in 2 canonical pairs, a 192-d input, a
    32-d layer, 1,800 pairs) with 1% of the rows of z given independent noise 30 times their scale: I(x; z) can
    only fall (data processing), so <= 1.5 nats. The seeds agree within 0.3 nats and none reads below -0.1 (a
    Gaussian critic on the raw canonical variates read -0.75 to 0.45 here; on the default run's layers, -79 to
    0.8)."""
    torch.set_num_threads(1)
    x, z = embedded_pairs(1.5, 2, dz=32, seed=11)
    rng = np.random.default_rng(0)
    rows = rng.random(len(z)) < 0.01
    z[rows] += 30 * rng.standard_normal((int(rows.sum()), z.shape[1]))
    est = mine_estimates(x, z)
    assert est.min() > -0.1 and est.max() - est.min() < 0.3 and est.mean() <= 1.5, est


def test_mine_says_when_it_saturates():
    """Above the ceiling (log of the held-out size, here log 400 = 6.0 nats) the reading is flagged and
    never below the ceiling; below it, it is not flagged; readings rise with the truth (6 dimensions,
    1.3 / 3.8 / 8.5 / 14 nats)."""
    torch.set_num_threads(1)
    reads = {mi: mine(*gaussian_pairs(mi, 6)) for mi in (1.3, 3.8, 8.5, 14.0)}
    assert not reads[1.3].saturated and not reads[3.8].saturated
    for mi in (8.5, 14.0):
        assert reads[mi].saturated and reads[mi].mean >= reads[mi].ceiling == pytest.approx(math.log(400))
        assert not reads[mi].unreliable  # "at least log n" is a true statement, not a wrong number
    vals = [reads[mi].mean for mi in sorted(reads)]
    assert vals == sorted(vals)
    # independent variables: nothing, and not saturated
    rng = np.random.default_rng(5)
    none = mine(rng.normal(size=(2000, 6)), rng.normal(size=(2000, 6)))
    assert abs(none.mean) < 0.05 and not none.saturated and not none.unreliable


def test_wilks_null_mean_matches_independent_samples():
    """The null expectation the reliability check subtracts, against 16 draws of independent Gaussian data (more
    samples than dimensions, and fewer samples than twice the dimensions): within 3 standard errors; and the
    reference it corrects reads ~0 there."""
    rng = np.random.default_rng(0)
    for n, p, q in ((800, 40, 24), (300, 30, 60)):
        sims, refs = [], []
        for _ in range(16):
            x, z = rng.standard_normal((n, p)), rng.standard_normal((n, q))
            xc, zc = x - x.mean(0), z - z.mean(0)
            r = np.linalg.svd(np.linalg.qr(xc)[0].T @ np.linalg.qr(zc)[0], compute_uv=False)
            sims.append(-0.5 * np.log1p(-(r**2)).sum())
            refs.append(gaussian_reference(torch.tensor(x), torch.tensor(z)))
        se = np.std(sims) / math.sqrt(len(sims))
        assert abs(np.mean(sims) - wilks_null_mean(n, p, q)) < 3 * se + 1e-3
        assert abs(np.mean(refs)) < 3 * se + 1e-3


def test_probe_config_runs_mine_with_the_estimator_defaults():
    """The sweep's MINE settings are the ones the known-answer tests above use."""
    import inspect

    from ssl_ray.config import ProbeConfig

    sig = inspect.signature(mine_estimates).parameters
    p = ProbeConfig()
    assert (p.mine_steps, p.mine_hidden, p.mine_batch_size) == (
        sig["steps"].default,
        sig["hidden"].default,
        sig["batch_size"].default,
    )
    assert p.mine_seeds == len(DEFAULT_SEEDS) == 5
