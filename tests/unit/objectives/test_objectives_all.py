"""SimCLR, Barlow Twins, MMCR and ARB against formulas computed independently in numpy (float64),
at V = 2 and V > 2; and every objective scores a collapsed embedding worse than a spread one."""

import numpy as np
import pytest
import torch

from ssl_ray.objectives import OBJECTIVES, build_objective


def rand_z(b, v, d, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(b, 1, d))
    return base + 0.7 * rng.normal(size=(b, v, d))


def np_simclr(z, t):
    b, v, d = z.shape
    f = z.reshape(b * v, d)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    s = f @ f.T / t
    img = np.repeat(np.arange(b), v)
    total = 0.0
    for i in range(b * v):
        others = [a for a in range(b * v) if a != i]
        lse = np.log(np.sum(np.exp(s[i, others])))
        pos = [p for p in others if img[p] == img[i]]
        total += np.mean([-(s[i, p] - lse) for p in pos])
    return total / (b * v)


def np_barlow(z, lambd):
    b, v, d = z.shape
    losses = []
    for i in range(v):
        for j in range(i + 1, v):
            a = (z[:, i] - z[:, i].mean(0)) / np.sqrt(z[:, i].var(0) + 1e-5)
            c_ = (z[:, j] - z[:, j].mean(0)) / np.sqrt(z[:, j].var(0) + 1e-5)
            c = a.T @ c_ / b
            on = ((1 - np.diag(c)) ** 2).sum()
            off = (c**2).sum() - (np.diag(c) ** 2).sum()
            losses.append(on + lambd * off)
    return np.mean(losses)


def np_mmcr(z, lam):
    zn = z / np.linalg.norm(z, axis=2, keepdims=True)
    cent = zn.mean(1)
    nuc = lambda m: np.linalg.svd(m, compute_uv=False).sum()  # noqa: E731
    return -nuc(cent) + lam / z.shape[0] * sum(nuc(zn[k]) for k in range(z.shape[0]))


def np_arb(z, groups, perm):
    b, v, d = z.shape

    def std(x):
        xc = x - x.mean(0)
        return xc / (np.sqrt(b) * x.std(0))

    def base(x):
        w, u = np.linalg.eigh(x.T @ x + 1e-4 * np.eye(x.shape[1]))
        return x @ (u @ np.diag(w**-0.5) @ u.T)

    size = d // groups
    pairs = []
    for i in range(v):
        for j in range(i + 1, v):
            a, c = std(z[:, i])[:, perm], std(z[:, j])[:, perm]
            tot = 0.0
            for g in range(groups):
                ag, cg = a[:, g * size : (g + 1) * size], c[:, g * size : (g + 1) * size]
                tot += ((1 - (ag * base(cg)).sum(0)) ** 2).sum() + ((1 - (cg * base(ag)).sum(0)) ** 2).sum()
            pairs.append(tot)
    return np.mean(pairs)


@pytest.mark.parametrize("views", [2, 4])
def test_simclr(views):
    z = rand_z(12, views, 6, views)
    out = build_objective("simclr", temperature=0.3)(torch.tensor(z))
    assert out.loss.item() == pytest.approx(np_simclr(z, 0.3), rel=1e-9)


def test_simclr_two_views_is_ntxent():
    """At V=2: mean over 2B anchors of -log(exp(s_pos)/sum over the 2B-1 others)."""
    z = rand_z(5, 2, 4, 0)
    f = np.concatenate([z[:, 0], z[:, 1]])
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    s = f @ f.T / 0.5
    b = 5
    losses = []
    for i in range(2 * b):
        p = (i + b) % (2 * b)
        others = [a for a in range(2 * b) if a != i]
        losses.append(-s[i, p] + np.log(np.exp(s[i, others]).sum()))
    assert build_objective("simclr")(torch.tensor(z)).loss.item() == pytest.approx(np.mean(losses), rel=1e-9)


@pytest.mark.parametrize("views", [2, 3])
def test_barlow(views):
    z = rand_z(24, views, 8, views)
    out = build_objective("barlow", lambd=0.02)(torch.tensor(z))
    assert out.loss.item() == pytest.approx(np_barlow(z, 0.02), rel=1e-9)


@pytest.mark.parametrize("views,lam", [(2, 0.0), (8, 0.5)])
def test_mmcr(views, lam):
    z = rand_z(10, views, 6, views)
    out = build_objective("mmcr", lam=lam)(torch.tensor(z))
    assert out.loss.item() == pytest.approx(np_mmcr(z, lam), rel=1e-9)
    zn = z / np.linalg.norm(z, axis=2, keepdims=True)
    assert out.terms["centroid_nuclear"].item() == pytest.approx(
        np.linalg.svd(zn.mean(1), compute_uv=False).sum(), rel=1e-9
    )


@pytest.mark.parametrize("views,groups", [(2, 1), (3, 1), (2, 2)])
def test_arb(views, groups):
    z = rand_z(32, views, 8, views + groups)
    torch.manual_seed(123)
    out = build_objective("arb", groups=groups)(torch.tensor(z))
    torch.manual_seed(123)
    perm = torch.randperm(8).numpy() if groups > 1 else np.arange(8)
    assert out.loss.item() == pytest.approx(np_arb(z, groups, perm), rel=1e-6)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_collapsed_is_worse_and_gradients_finite(name):
    torch.manual_seed(0)
    base = torch.randn(32, 1, 16)
    spread = (base + 0.05 * torch.randn(32, 2, 16)).requires_grad_(True)
    collapsed = torch.randn(1, 1, 16).expand(32, 2, 16).clone().requires_grad_(True)
    obj = build_objective(name)
    ls, lc = obj(spread).loss, obj(collapsed).loss
    assert lc.item() > ls.item(), (name, lc.item(), ls.item())
    for z, loss in ((spread, ls), (collapsed, lc)):
        (g,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(g).all(), name


def test_mmcr_momentum_target_centroids():
    z, zt = rand_z(10, 4, 6, 1), rand_z(10, 4, 6, 2)
    out = build_objective("mmcr", lam=0.0, momentum=0.9)(torch.tensor(z), target=torch.tensor(zt))
    n = lambda a: a / np.linalg.norm(a, axis=2, keepdims=True)  # noqa: E731
    cent = 0.5 * (n(z).mean(1) + n(zt).mean(1))
    assert out.loss.item() == pytest.approx(-np.linalg.svd(cent, compute_uv=False).sum(), rel=1e-9)


def test_mmcr_momentum_range():
    with pytest.raises(ValueError, match="momentum must be < 1"):
        build_objective("mmcr", momentum=1.0)


def test_ema_update():
    from ssl_ray.train.steps import ema_update

    online, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.9 * target.weight.detach() + 0.1 * online.weight.detach()
    ema_update(target, online, 0.9)
    torch.testing.assert_close(target.weight.detach(), expected)
