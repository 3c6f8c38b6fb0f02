"""VICReg against the formula computed independently (numpy, float64), term by term."""

import numpy as np
import pytest
import torch

from ssl_ray.errors import ConfigError
from ssl_ray.objectives import build_objective


def np_vicreg_terms(z: np.ndarray, gamma=1.0, eps=1e-4):
    """Independent computation. z: (B, V, D). Pairwise MSE, per-view std hinge, off-diagonal cov^2 / D."""
    b, v, d = z.shape
    inv = np.mean([np.mean((z[:, i] - z[:, j]) ** 2) for i in range(v) for j in range(i + 1, v)])
    var_terms, cov_terms = [], []
    for k in range(v):
        x = z[:, k]
        std = np.sqrt(x.var(axis=0, ddof=1) + eps)
        var_terms.append(np.mean(np.maximum(0.0, gamma - std)))
        cov = np.cov(x, rowvar=False, ddof=1)
        off = cov - np.diag(np.diag(cov))
        cov_terms.append((off**2).sum() / d)
    return inv, np.mean(var_terms), 2.0 * np.mean(cov_terms), cov_terms


@pytest.mark.parametrize("views", [2, 3, 5])
def test_vicreg_matches_formula(views):
    rng = np.random.default_rng(views)
    z = rng.normal(size=(32, views, 16)) * rng.uniform(0.3, 2.0, size=16)
    lam, mu, nu = 25.0, 15.0, 2.0
    out = build_objective("vicreg", lam=lam, mu=mu, nu=nu)(torch.tensor(z, dtype=torch.float64))
    inv, var, cov, _ = np_vicreg_terms(z)
    assert out.terms["invariance"].item() == pytest.approx(inv, rel=1e-10)
    assert out.terms["variance"].item() == pytest.approx(var, rel=1e-10)
    assert out.terms["covariance"].item() == pytest.approx(cov, rel=1e-10)
    assert out.loss.item() == pytest.approx(lam * inv + mu * var + nu * cov, rel=1e-10)


def test_vicreg_two_views_is_the_official_form():
    """At V=2: lam*MSE(z1,z2) + mu*(mean relu(1-std1)/2 + mean relu(1-std2)/2) + nu*(C(z1)+C(z2))."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20, 2, 8))
    _, _, _, cov_terms = np_vicreg_terms(z)
    z1, z2 = z[:, 0], z[:, 1]
    std1 = np.sqrt(z1.var(0, ddof=1) + 1e-4)
    std2 = np.sqrt(z2.var(0, ddof=1) + 1e-4)
    official = (
        25 * np.mean((z1 - z2) ** 2)
        + 25 * (np.mean(np.maximum(0, 1 - std1)) / 2 + np.mean(np.maximum(0, 1 - std2)) / 2)
        + 1 * (cov_terms[0] + cov_terms[1])
    )
    out = build_objective("vicreg")(torch.tensor(z))
    assert out.loss.item() == pytest.approx(official, rel=1e-10)


def test_vicreg_hand_computed_tiny_case():
    # B=2, V=2, D=2. z1 = [[0,0],[2,0]], z2 = [[0,0],[0,2]].
    z = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[2.0, 0.0], [0.0, 2.0]]])
    out = build_objective("vicreg", lam=1.0, mu=1.0, nu=1.0, eps=0.0)(z)
    # invariance: elementwise mean of (z1-z2)^2 = (0+0+4+4)/4 = 2
    assert out.terms["invariance"].item() == pytest.approx(2.0)
    # z1: per-feature unbiased var = [2, 0] -> std [1.414, 0] -> relu(1-std) = [0, 1] -> mean 0.5; same for z2.
    assert out.terms["variance"].item() == pytest.approx(0.5)
    # cov(z1) = [[2,0],[0,0]] -> no off-diagonal -> 0; same for z2.
    assert out.terms["covariance"].item() == pytest.approx(0.0)
    assert out.loss.item() == pytest.approx(2.5)


def test_collapse_scores_worse_and_gradients_are_finite():
    torch.manual_seed(0)
    # spread: images differ from each other, views of one image nearly agree
    base = torch.randn(64, 1, 32)
    spread = (base + 0.05 * torch.randn(64, 2, 32)).requires_grad_(True)
    collapsed = torch.ones(64, 2, 32).mul(0.3).requires_grad_(True)
    obj = build_objective("vicreg")
    l_spread, l_collapsed = obj(spread).loss, obj(collapsed).loss
    assert l_collapsed.item() > l_spread.item()
    for z, loss in ((spread, l_spread), (collapsed, l_collapsed)):
        (g,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(g).all()


def test_terms_are_detached_and_loss_has_grad():
    z = torch.randn(8, 2, 4, requires_grad=True)
    out = build_objective("vicreg")(z)
    assert out.loss.requires_grad and out.loss.dim() == 0
    assert all(not t.requires_grad for t in out.terms.values())


def test_bad_shapes_and_names():
    with pytest.raises(ValueError, match="shape"):
        build_objective("vicreg")(torch.randn(8, 4))
    with pytest.raises(ValueError, match="V >= 2"):
        build_objective("vicreg")(torch.randn(8, 1, 4))
    with pytest.raises(ConfigError, match="unknown objective 'nope'"):
        build_objective("nope")
