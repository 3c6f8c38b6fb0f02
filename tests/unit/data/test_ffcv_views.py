"""The multi-view FFCV loader: a .beton round trip with 2 views, determinism per (seed, epoch) and
across a resume, disjoint shards for 2 real distributed ranks (gloo), and FFCV's ops agreeing with
the torch backend's math."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_ray.data import load_dataset, view_specs
from ssl_ray.data.beton import write_beton
from ssl_ray.data.loaders import epoch_order


@pytest.fixture(scope="module")
def digits_beton(tmp_path_factory):
    ds = load_dataset("digits", "train", image_size=32)
    return write_beton(ds, tmp_path_factory.mktemp("beton") / "digits32.beton", write_mode="raw", num_workers=1), ds


def collect(loader, epoch):
    loader.set_epoch(epoch)
    views, ys, idx = [], [], []
    for v, y, _, i in loader:
        views.append(v)
        ys.append(y)
        idx.append(i)
    return torch.cat(views), torch.cat(ys), torch.cat(idx)


def test_beton_round_trip_two_views_and_resume_determinism(digits_beton):
    from ssl_ray.data.ffcv_loader import FFCVViews

    path, ds = digits_beton
    specs = view_specs("simclr", 2, 32)
    a = FFCVViews(str(path), specs, 32, batch_size=128, seed=3, num_workers=2)
    v0, y0, i0 = collect(a, 0)
    assert v0.shape == (11 * 128, 2, 3, 32, 32) and v0.dtype == torch.float32 and y0.dtype == torch.int64
    assert -1.0 <= float(v0.min()) and float(v0.max()) <= 1.0
    assert torch.equal(y0, ds.labels[i0])  # labels travel with their images
    assert len(set(i0.tolist())) == len(i0)  # an epoch never repeats a sample
    # the two views of an image differ, and are each an augmentation of that image (same class)
    assert (v0[:, 0] - v0[:, 1]).abs().mean(dim=(1, 2, 3)).min() > 0.01
    v1, y1, i1 = collect(a, 1)
    assert not torch.equal(i0, i1)  # a new order each epoch
    # a fresh loader (as after a resume) that starts at epoch 1 reproduces epoch 1 exactly
    b = FFCVViews(str(path), specs, 32, batch_size=128, seed=3, num_workers=1)
    w1, z1, j1 = collect(b, 1)
    assert torch.equal(i1, j1) and torch.equal(y1, z1) and torch.equal(v1, w1)
    # every op of both loaders seeds through one compiled overload of seed_batch: an address or salt frozen
    # as a literal compiled one per op (16 here), each cached on disk under a key no later run hits
    from ssl_ray.data.ffcv_seeding import seed_batch

    assert len(seed_batch.overloads) == 1, list(seed_batch.overloads)


def _rank_main(rank, path, init_file, out_dir):
    from ssl_ray.data.ffcv_loader import FFCVViews

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    loader = FFCVViews(
        path, view_specs("none", 1, 32), 32, batch_size=8, seed=5, rank=rank, world=2, num_workers=1, drop_last=False
    )
    seen = {e: collect(loader, e)[2].numpy() for e in (0, 1)}
    np.savez(f"{out_dir}/rank{rank}.npz", **{f"e{e}": v for e, v in seen.items()})
    dist.destroy_process_group()


def test_two_distributed_ranks_get_disjoint_covering_shards(tmp_path):
    n = 101  # odd: the trimmed tail (n % world) is the only thing a rank may not see
    ds = load_dataset("digits", "test", image_size=32)
    ds.images, ds.labels = ds.images[:n], ds.labels[:n]
    path = write_beton(ds, tmp_path / "s.beton", write_mode="raw", num_workers=1)
    mp.spawn(_rank_main, args=(str(path), str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r = [np.load(tmp_path / f"rank{k}.npz") for k in range(2)]
    for e in ("e0", "e1"):
        a, b = set(r[0][e].tolist()), set(r[1][e].tolist())
        assert len(a) == len(r[0][e]) == 50 and len(b) == len(r[1][e]) == 50
        assert not a & b
        assert len(a | b) == n - 1
    assert not np.array_equal(r[0]["e0"], r[0]["e1"])
    # the in-memory and torchvision loaders shard with epoch_order: disjoint, covering, reshuffled per epoch
    for epoch in (0, 1):
        s0, s1 = epoch_order(n, 5, epoch, 0, 2), epoch_order(n, 5, epoch, 1, 2)
        assert not set(s0.tolist()) & set(s1.tolist()) and len(set(s0.tolist()) | set(s1.tolist())) == n - 1


def run_native(op_class, img: np.ndarray, *params: float) -> np.ndarray:
    """An op's kernel on a copy of ``img`` through its cfunc, as a loader's compiled pipeline calls it."""
    import ctypes

    src = img.copy()
    dst = src if op_class.in_place else np.empty_like(src)
    q = np.array(params, dtype=np.float64)
    ptr = ctypes.c_void_p
    op_class.native.cfunc().ctypes(ptr(src.ctypes.data), ptr(dst.ctypes.data), *src.shape[:3], ptr(q.ctypes.data))
    return dst


def test_ffcv_ops_match_the_torch_backend():
    """The numba kernels (called through their cfuncs, as in a pipeline) and the batched torch ops compute
    the same functions (up to uint8 rounding)."""
    from ssl_ray.data import ffcv_color, ffcv_ops
    from ssl_ray.data.augment import gaussian_blur, luminance, shift_hue

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8)
    t = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 255

    # hue rotation
    for shift in (-0.3, 0.07, 0.45):
        f = (img[0].astype(np.float32) / 255).copy()
        ffcv_color._shift_hue(f, shift)
        ref = shift_hue(t[:1], torch.tensor([shift]))[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(f, ref, atol=1e-5)
    # blur with a fixed sigma (p=1, sigma range of width 0), reflect padding
    blurred = run_native(ffcv_color.RandomGaussianBlur, img, 1.0, 1.3, 1.3, 5)
    ref = gaussian_blur(t * 255, torch.full((4,), 1.3), 5).round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
    assert np.abs(blurred.astype(int) - ref.astype(int)).max() <= 1
    # grayscale (p=1)
    gray = run_native(ffcv_color.RandomGrayscale, img, 1.0)
    ref = (luminance(t * 255) + 0.5).floor().clamp(0, 255).expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()
    assert np.abs(gray.astype(int) - ref.astype(int)).max() <= 1
    # solarize (p=1): pixels >= 128 inverted
    sol = run_native(ffcv_color.RandomSolarize, img, 1.0)
    np.testing.assert_array_equal(sol, np.where(img >= 128, 255 - img, img))
    # p=0 leaves images alone
    np.testing.assert_array_equal(run_native(ffcv_color.RandomColorJitter, img, 0.0, 0.4, 0.4, 0.4, 0.1), img)
    # on a batch that is not square (a height/width mix-up shows): a flip with p=1 mirrors every image into the
    # op's own output buffer
    wide = rng.integers(0, 256, (3, 10, 14, 3), dtype=np.uint8)
    np.testing.assert_array_equal(run_native(ffcv_ops.RandomHorizontalFlip, wide, 1.0), wide[:, :, ::-1])


@pytest.mark.slow  # 10-15 s on a fresh clone, compiling two kernels no other test of the default suite uses
def test_the_digits_protocols_ffcv_ops_at_zero_strength_are_identities():
    """Rotation (into the op's own buffer) and noise (in place), through their cfuncs, on a batch that is not
    square."""
    from ssl_ray.data import ffcv_ops

    wide = np.random.default_rng(0).integers(0, 256, (3, 10, 14, 3), dtype=np.uint8)
    np.testing.assert_array_equal(run_native(ffcv_ops.RandomRotate, wide, 0.0), wide)
    np.testing.assert_array_equal(run_native(ffcv_ops.GaussianNoise, wide, 0.0), wide)


def test_ffcv_ops_refuse_what_their_kernels_would_misread():
    """The kernels read a batch as raw (n, h, w, 3) uint8 memory: an op placed after ToTensor (float images) is
    refused when the pipeline is declared, and a batch that is not C-contiguous when it runs."""
    from ffcv.pipeline.state import State

    from ssl_ray.data import ffcv_ops
    from ssl_ray.data.ffcv_seeding import check_batch

    flip = ffcv_ops.RandomHorizontalFlip(0.5)
    _, alloc = flip.declare_state_and_memory(State(False, torch.device("cpu"), (8, 8, 3), np.dtype("uint8")))
    assert alloc.shape == (8, 8, 3)
    for shape, dtype in (((8, 8, 3), np.dtype("float32")), ((3, 8, 8), np.dtype("uint8"))):
        with pytest.raises(ValueError, match="needs \\(height, width, 3\\) uint8 images"):
            flip.declare_state_and_memory(State(False, torch.device("cpu"), shape, dtype))
    batch = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    check_batch(batch)
    with pytest.raises(ValueError, match="C-contiguous"):
        check_batch(batch[:, :, ::-1])
