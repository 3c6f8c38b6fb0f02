"""FFCV ``Operation``s for the augmentations FFCV 1.0.2 lacks, plus a seeded random-resized-crop decoder.

FFCV has flips and separate brightness/contrast/saturation ops (each with its own probability), but
no joint color jitter with hue, no grayscale, blur, solarization, rotation or noise. Its random crop
decoder and its flip draw from per-thread RNGs inside parallel loops, so no seed reproduces them;
the crop decoder and flip here are seeded versions of FFCV's.

Determinism: every random op (the crop decoder included) first seeds numba's RNG of the loader
thread from ``(seed, epoch, salt, batch indices)``, with a salt unique to that op in the loader,
then draws its random numbers for the whole batch through serial helpers before its parallel loop.
A batch's augmentations therefore do not depend on thread count or on the order in which FFCV
runs the ops of different views within a stage (it walks a set, so that order varies). The epoch lives in an
:class:`EpochCell` that the loader updates before each epoch;
compiled code reads it through its address, because numba freezes global arrays at compile time.

Kernels are module-level ``@njit(cache=True)`` functions, compiled once per machine, each wrapped in a
``cfunc`` (``ffcv_seeding.native``) that the closures FFCV compiles per pipeline call by address: a
closure that called the kernel directly would generate the kernel's code again in every loader of
every process. Images are uint8 ``(B, H, W, 3)``.

Here: flip, rotation and noise. The color ops are in ``ffcv_color.py``, the crop decoder in ``ffcv_crop.py``, and
what they share (``EpochCell``, ``BatchOp``, the seeded draws) in ``ffcv_seeding.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ssl_ray.data.ffcv_seeding import BatchOp, batch_arrays, draw_coins, draw_normal, draw_uniform, native


@njit(cache=True, parallel=True)
def _flip_kernel(images, dst, p):
    n = images.shape[0]
    on = draw_coins(p, n)
    for k in prange(n):
        if on[k]:
            dst[k] = images[k, :, ::-1]
        else:
            dst[k] = images[k]
    return dst


@native
def _flip_native(src, dst, n, h, w, q):
    a, b, q = batch_arrays(src, dst, n, h, w, q, 1)
    _flip_kernel(a, b, q[0])


class RandomHorizontalFlip(BatchOp):
    """FFCV's flip draws its coins inside a parallel region (irreproducible); this one does not."""

    in_place = False

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    native = _flip_native

    def params(self):
        return (self.p,)


@njit(cache=True, parallel=True, fastmath=True)
def _rotate_kernel(images, dst, max_rad):
    n, hgt, wid = images.shape[0], images.shape[1], images.shape[2]
    ang = draw_uniform(-max_rad, max_rad, n)
    cy, cx = (hgt - 1) / 2.0, (wid - 1) / 2.0
    for k in prange(n):
        cs, sn = np.cos(ang[k]), np.sin(ang[k])
        for y in range(hgt):
            for x in range(wid):
                # inverse map: the source pixel that lands on (y, x); zeros outside, bilinear inside
                sx = cs * (x - cx) + sn * (y - cy) + cx
                sy = -sn * (x - cx) + cs * (y - cy) + cy
                x0, y0 = int(np.floor(sx)), int(np.floor(sy))
                fx, fy = sx - x0, sy - y0
                for ch in range(3):
                    acc = 0.0
                    for dy in range(2):
                        for dx in range(2):
                            yy, xx = y0 + dy, x0 + dx
                            if 0 <= yy < hgt and 0 <= xx < wid:
                                wgt = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
                                acc += wgt * images[k, yy, xx, ch]
                    dst[k, y, x, ch] = np.uint8(min(max(acc + 0.5, 0.0), 255.0))
    return dst


@native
def _rotate_native(src, dst, n, h, w, q):
    a, b, q = batch_arrays(src, dst, n, h, w, q, 1)
    _rotate_kernel(a, b, q[0])


class RandomRotate(BatchOp):
    """Rotation by an angle uniform in [-max_deg, max_deg] about the center, bilinear, zero fill."""

    in_place = False

    def __init__(self, max_deg: float) -> None:
        super().__init__()
        self.max_rad = float(np.deg2rad(max_deg))

    native = _rotate_native

    def params(self):
        return (self.max_rad,)


@njit(cache=True, parallel=True)
def _noise_kernel(images, dst, std255):
    noise = draw_normal(images.shape) * std255
    for k in prange(images.shape[0]):
        v = images[k].astype(np.float64) + noise[k] + 0.5
        images[k] = np.minimum(np.maximum(v, 0), 255).astype(np.uint8)
    return images


@native
def _noise_native(src, dst, n, h, w, q):
    a, b, q = batch_arrays(src, dst, n, h, w, q, 1)
    _noise_kernel(a, b, q[0])


class GaussianNoise(BatchOp):
    """Additive N(0, std^2) pixel noise (std in units of the [0, 1] range), clipped to uint8."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std255 = float(std) * 255.0

    native = _noise_native

    def params(self):
        return (self.std255,)
