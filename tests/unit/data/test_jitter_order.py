"""Color jitter applies brightness, contrast, saturation and hue in a random order drawn per sample (as
torchvision's ``ColorJitter`` and SimCLR), in all three backends, from the backend's seeded randomness.

Each test redraws a backend's factors and orders from the same seed, computes every sample under each of
the 24 fixed orders, and checks that every sample is the one its drawn order gives, that many different
orders occur in one batch (a fixed order gives one), and that a seed reproduces the orders and the images."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ssl_ray.data.augment import ViewAugment, _uniform, luminance, shift_hue
from ssl_ray.data.protocols import ViewSpec

ORDERS = list(itertools.permutations(range(4)))  # 0 brightness, 1 contrast, 2 saturation, 3 hue
# jitter only (p = 1, strong), nothing else random in the photometric stage
STRONG = ViewSpec(
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    hflip_p=0.0,
    jitter_p=1.0,
    brightness=0.8,
    contrast=0.8,
    saturation=0.8,
    hue=0.2,
    grayscale_p=0.0,
)


def fixed_order(x: torch.Tensor, b, c, sat, hue, order) -> torch.Tensor:
    """The four ops, as the torch backend writes them, in one ``order`` for the whole batch."""
    rgb = x.shape[1] == 3
    y = x
    for k in order:
        if k == 0:
            y = (y * b).clamp(0, 1)
        elif k == 1:
            m = (luminance(y) if rgb else y).mean(dim=(1, 2, 3), keepdim=True)
            y = ((y - m) * c + m).clamp(0, 1)
        elif k == 2 and rgb:
            y = ((y - luminance(y)) * sat + luminance(y)).clamp(0, 1)
        elif k == 3 and rgb:
            y = shift_hue(y, hue)
    return y


def explaining_orders(dist: np.ndarray, tol: float):
    """``dist`` (samples, 24 orders) -> per sample, the indices of the orders within ``tol`` of its output."""
    return [set(np.flatnonzero(row <= tol).tolist()) for row in dist]


def check_orders(dist: np.ndarray, drawn, tol: float, min_distinct: int) -> set:
    """Every sample is its drawn order's output; the orders that alone explain a sample are many."""
    explained = explaining_orders(dist, tol)
    wrong = [i for i, (e, o) in enumerate(zip(explained, drawn)) if ORDERS.index(tuple(o)) not in e]
    assert not wrong, f"samples {wrong[:10]} are not the output of their drawn order"
    unique = {next(iter(e)) for e in explained if len(e) == 1}
    assert len(unique) >= min_distinct, f"only {len(unique)} distinct orders: {[ORDERS[j] for j in unique]}"
    return unique


# ------------------------------------------------------------------------------------------------
# batched torch backend


def torch_draws(n: int, seed: int, s: ViewSpec = STRONG):
    """``ViewAugment.photometric``'s jitter draws: coin, brightness, contrast, saturation, hue, order."""
    g = torch.Generator().manual_seed(seed)
    torch.rand(n, generator=g)  # the coin (p = 1)
    b = _uniform(n, 1 - s.brightness, 1 + s.brightness, g, "cpu").view(n, 1, 1, 1)
    c = _uniform(n, 1 - s.contrast, 1 + s.contrast, g, "cpu").view(n, 1, 1, 1)
    sat = _uniform(n, 1 - s.saturation, 1 + s.saturation, g, "cpu").view(n, 1, 1, 1)
    hue = _uniform(n, -s.hue, s.hue, g, "cpu")
    order = torch.rand(n, 4, generator=g).argsort(1)
    return b, c, sat, hue, order


def test_torch_backend_jitter_order_varies_per_sample_and_follows_the_seed():
    n = 64
    x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    aug = ViewAugment(STRONG)

    def check(out, seed):
        b, c, sat, hue, order = torch_draws(n, seed)
        refs = torch.stack([fixed_order(x, b, c, sat, hue, o) for o in ORDERS], 1)  # (n, 24, 3, H, W)
        dist = (refs - out[:, None]).abs().amax(dim=(2, 3, 4)).numpy()
        check_orders(dist, order.tolist(), tol=0.0, min_distinct=10)  # bit for bit
        return order

    out = aug.photometric(x, torch.Generator().manual_seed(7))
    order = check(out, 7)
    # the same seed gives the same images bit for bit; another seed other orders
    assert torch.equal(aug.photometric(x, torch.Generator().manual_seed(7)), out)
    other = aug.photometric(x, torch.Generator().manual_seed(8))
    assert not torch.equal(check(other, 8), order)
    # grayscale (1-channel) images: brightness and contrast only, in the drawn order
    xg = x[:, :1]
    outg = aug.photometric(xg, torch.Generator().manual_seed(7))
    assert outg.shape == xg.shape and torch.equal(outg, aug.photometric(xg, torch.Generator().manual_seed(7)))
    b, c, _, _, order = torch_draws(n, 7)
    bc_first = [fixed_order(xg, b, c, None, None, o) for o in ((0, 1), (1, 0))]
    firsts = [int((order[i] == 0).nonzero()) > int((order[i] == 1).nonzero()) for i in range(n)]
    for i in range(n):
        assert torch.equal(outg[i], bc_first[firsts[i]][i]), i
    assert 0 < sum(firsts) < n
    dist = (bc_first[0] - bc_first[1]).abs().amax(dim=(1, 2, 3))
    assert (dist > 1e-3).float().mean() > 0.5  # the two orders differ on most images


# ------------------------------------------------------------------------------------------------
# torchvision backend


def tv_apply(img: torch.Tensor, r: torch.Tensor, order, s: ViewSpec = STRONG) -> torch.Tensor:
    from ssl_ray.data.torchvision_loader import jitter_in_order

    return jitter_in_order(img, r, order, s)


def test_torchvision_backend_jitter_order_varies_per_image_and_follows_the_seed():
    from ssl_ray.data.torchvision_loader import RandomOrderJitter, view_transform

    assert any(isinstance(t, RandomOrderJitter) for t in view_transform(STRONG, 16).transforms)
    jitter = RandomOrderJitter(STRONG)
    n = 48
    imgs = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def run(seed0, refs=True):
        outs, dists, drawn = [], [], []
        with torch.random.fork_rng(devices=[]):
            for i in range(n):
                torch.manual_seed(seed0 + i)  # as MultiViewDataset seeds each sample
                outs.append(jitter(imgs[i]))
                torch.manual_seed(seed0 + i)
                r, order = torch.rand(5), torch.randperm(4).tolist()
                drawn.append(order)
                if refs:
                    ref = torch.stack([tv_apply(imgs[i], r, o) for o in ORDERS])
                    dists.append((ref.int() - outs[-1].int()).abs().amax(dim=(1, 2, 3)).numpy())
        return torch.stack(outs), np.stack(dists) if refs else None, drawn

    out, dist, drawn = run(1000)
    check_orders(dist, drawn, tol=0, min_distinct=8)  # uint8 in, uint8 out: exactly
    again, _, drawn_again = run(1000, refs=False)
    assert torch.equal(again, out) and drawn_again == drawn
    other, dist2, drawn2 = run(5000)
    check_orders(dist2, drawn2, tol=0, min_distinct=8)
    assert drawn2 != drawn and not torch.equal(other, out)


# ------------------------------------------------------------------------------------------------
# FFCV kernel


def ffcv_run(img: np.ndarray, cell, salt: int):
    """The jitter kernel through its cfunc after seeding as the pipeline does, and its draws redrawn from the
    same seed: (output, brightness, contrast, saturation, hue factors, orders)."""
    from test_ffcv_views import run_native  # tests/unit/data is on sys.path, as for fakedata

    from ssl_ray.data import ffcv_color
    from ssl_ray.data.ffcv_seeding import draw_coins, draw_orders, draw_uniform, seed_batch, seed_key

    n, s = img.shape[0], STRONG
    # the argument types a pipeline passes (test_ffcv_views checks that seed_batch compiles for those only)
    key, idx = seed_key(cell, salt), np.arange(100, 100 + n, dtype=np.uint64)
    seed_batch(key[0], key[1], idx)
    out = run_native(ffcv_color.RandomColorJitter, img, s.jitter_p, s.brightness, s.contrast, s.saturation, s.hue)
    seed_batch(key[0], key[1], idx)
    draw_coins(s.jitter_p, n)
    f = [draw_uniform(1 - v, 1 + v, n) for v in (s.brightness, s.contrast, s.saturation)]
    fh = draw_uniform(-s.hue, s.hue, n)
    return out, f[0], f[1], f[2], fh, draw_orders(n, 4)


def test_ffcv_kernel_jitter_order_varies_per_image_and_follows_the_seed():
    from ssl_ray.data.ffcv_seeding import EpochCell

    n = 128  # commuting ops (brightness with the others, without clamping) leave some images ambiguous
    img = np.random.default_rng(0).integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).double() / 255
    cell = EpochCell(11)

    def check(out, fb, fc, fs, fh, order):
        t = [torch.from_numpy(v).view(n, 1, 1, 1) for v in (fb, fc, fs)]
        refs = torch.stack([fixed_order(x, *t, torch.from_numpy(fh), o) for o in ORDERS], 1)
        refs = (refs * 255 + 0.5).floor().clamp(0, 255).permute(0, 1, 3, 4, 2).numpy().astype(int)
        dist = np.abs(refs - out[:, None].astype(int)).max(axis=(2, 3, 4))
        # within 2 uint8 steps of its drawn order (float32, fastmath, rounding), and orders told apart beyond that
        return check_orders(dist, order.tolist(), tol=2, min_distinct=10)

    out, *draws = ffcv_run(img, cell, 3)
    check(out, *draws)
    again, *draws_again = ffcv_run(img, cell, 3)
    np.testing.assert_array_equal(again, out)
    np.testing.assert_array_equal(draws_again[-1], draws[-1])
    cell.set_epoch(1)  # another epoch: other orders
    other, *draws1 = ffcv_run(img, cell, 3)
    check(other, *draws1)
    assert not np.array_equal(draws1[-1], draws[-1]) and not np.array_equal(other, out)
