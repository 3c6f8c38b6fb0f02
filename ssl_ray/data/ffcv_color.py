"""Color augmentations as seeded FFCV batch ops: joint color jitter with hue, grayscale, Gaussian blur,
solarization (FFCV 1.0.2 has none of them in this form)."""

from __future__ import annotations

from typing import Tuple

import numpy as np
from numba import njit, prange

from ssl_ray.data.ffcv_seeding import BatchOp, batch_arrays, draw_coins, draw_orders, draw_uniform, native


@njit(cache=True, parallel=True, fastmath=True)
def _jitter_kernel(images, dst, p, b, c, s, h):
    n = images.shape[0]
    on = draw_coins(p, n)
    fb = draw_uniform(1 - b, 1 + b, n)
    fc = draw_uniform(1 - c, 1 + c, n)
    fs = draw_uniform(1 - s, 1 + s, n)
    fh = draw_uniform(-h, h, n)
    order = draw_orders(n, 4)  # each image's order: 0 brightness, 1 contrast, 2 saturation, 3 hue
    for k in prange(n):
        if not on[k]:
            continue
        img = images[k].astype(np.float32) * np.float32(1.0 / 255.0)
        for t in range(4):
            op = order[k, t]
            if op == 0:
                img[:] = np.minimum(np.maximum(img * fb[k], 0), 1)
            elif op == 1:
                m = (0.299 * img[:, :, 0] + 0.587 * img[:, :, 1] + 0.114 * img[:, :, 2]).mean()
                img[:] = np.minimum(np.maximum((img - m) * fc[k] + m, 0), 1)
            elif op == 2:
                gray = 0.299 * img[:, :, 0] + 0.587 * img[:, :, 1] + 0.114 * img[:, :, 2]
                for ch in range(3):
                    img[:, :, ch] = np.minimum(np.maximum((img[:, :, ch] - gray) * fs[k] + gray, 0), 1)
            elif h > 0:
                _shift_hue(img, fh[k])
        images[k] = (img * 255 + 0.5).astype(np.uint8)
    return images


@njit(cache=True, fastmath=True)
def _shift_hue(img, shift):
    """In-place HSV hue rotation of a float (H, W, 3) image in [0, 1] (torchvision's formulas)."""
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            r, g, b = img[y, x, 0], img[y, x, 1], img[y, x, 2]
            maxc, minc = max(r, g, b), min(r, g, b)
            v = maxc
            if maxc == minc:
                continue
            cr = maxc - minc
            s = cr / maxc
            rc, gc, bc = (maxc - r) / cr, (maxc - g) / cr, (maxc - b) / cr
            if maxc == r:
                hh = bc - gc
            elif maxc == g:
                hh = 2.0 + rc - bc
            else:
                hh = 4.0 + gc - rc
            hh = (hh / 6.0 + 1.0 + shift) % 1.0
            i = int(np.floor(hh * 6.0))
            f = hh * 6.0 - i
            i = i % 6
            p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
            if i == 0:
                r, g, b = v, t, p
            elif i == 1:
                r, g, b = q, v, p
            elif i == 2:
                r, g, b = p, v, t
            elif i == 3:
                r, g, b = p, q, v
            elif i == 4:
                r, g, b = t, p, v
            else:
                r, g, b = v, p, q
            img[y, x, 0], img[y, x, 1], img[y, x, 2] = r, g, b


@native
def _jitter_native(src, dst, n, h, w, q):
    a, b, q = batch_arrays(src, dst, n, h, w, q, 5)
    _jitter_kernel(a, b, q[0], q[1], q[2], q[3], q[4])


class RandomColorJitter(BatchOp):
    """With probability p: brightness, contrast, saturation and hue, in a random order drawn per image
    (one coin for all four, as ``RandomApply([ColorJitter(...)], p)``; ``ColorJitter`` shuffles the four
    per image too)."""

    def __init__(self, p: float, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        super().__init__()
        self.p, self.b, self.c, self.s, self.h = p, brightness, contrast, saturation, hue

    native = _jitter_native

    def params(self):
        return (self.p, self.b, self.c, self.s, self.h)


@njit(cache=True, parallel=True)
def _gray_kernel(images, dst, p):
    n = images.shape[0]
    on = draw_coins(p, n)
    for k in prange(n):
        if on[k]:
            img = images[k].astype(np.float32)
            gray = 0.299 * img[:, :, 0] + 0.587 * img[:, :, 1] + 0.114 * img[:, :, 2] + 0.5
            for ch in range(3):
                images[k, :, :, ch] = gray.astype(np.uint8)
    return images


@native
def _gray_native(src, dst, n, h, w, q):
    a, b, q = batch_arrays(src, dst, n, h, w, q, 1)
    _gray_kernel(a, b, q[0])


class RandomGrayscale(BatchOp):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    native = _gray_native

    def params(self):
        return (self.p,)


@njit(cache=True, parallel=True, fastmath=True)
def _blur_kernel(images, dst, p, sig_lo, sig_hi, ksize):
    n, hgt, wid = images.shape[0], images.shape[1], images.shape[2]
    on = draw_coins(p, n)
    sig = draw_uniform(sig_lo, sig_hi, n)
    r = ksize // 2
    for k in prange(n):
        if not on[k]:
            continue
        ker = np.exp(-((np.arange(ksize) - r) ** 2) / (2.0 * sig[k] ** 2))
        ker = ker / ker.sum()
        src = images[k].astype(np.float32)
        tmp = np.zeros_like(src)
        for y in range(hgt):
            for x in range(wid):
                for t in range(ksize):
                    xx = x + t - r
                    xx = -xx if xx < 0 else (2 * wid - 2 - xx if xx >= wid else xx)  # reflect
                    tmp[y, x, :] += ker[t] * src[y, xx, :]
        out = np.zeros_like(src)
        for y in range(hgt):
            for t in range(ksize):
                yy = y + t - r
                yy = -yy if yy < 0 else (2 * hgt - 2 - yy if yy >= hgt else yy)
                out[y, :, :] += ker[t] * tmp[yy, :, :]
        images[k] = (np.minimum(np.maximum(out, 0), 255) + 0.5).astype(np.uint8)
    return images


@native
def _blur_native(src, dst, n, h, w, q):
    a, b, q = batch_arrays(src, dst, n, h, w, q, 4)
    _blur_kernel(a, b, q[0], q[1], q[2], int(q[3]))


class RandomGaussianBlur(BatchOp):
    def __init__(self, p: float, sigma: Tuple[float, float], kernel_size: int) -> None:
        super().__init__()
        self.p, self.sigma, self.ksize = p, sigma, kernel_size

    native = _blur_native

    def params(self):
        return (self.p, float(self.sigma[0]), float(self.sigma[1]), int(self.ksize))


@njit(cache=True, parallel=True)
def _solarize_kernel(images, dst, p):
    n = images.shape[0]
    on = draw_coins(p, n)
    for k in prange(n):
        if on[k]:
            img = images[k]
            flat = img.reshape(-1)
            for t in range(flat.shape[0]):
                if flat[t] >= 128:
                    flat[t] = 255 - flat[t]
    return images


@native
def _solarize_native(src, dst, n, h, w, q):
    a, b, q = batch_arrays(src, dst, n, h, w, q, 1)
    _solarize_kernel(a, b, q[0])


class RandomSolarize(BatchOp):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    native = _solarize_native

    def params(self):
        return (self.p,)
