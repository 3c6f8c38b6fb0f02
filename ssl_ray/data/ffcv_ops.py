"""FFCV ``Operation``s for the augmentations FFCV 1.0.2 lacks, plus a seeded random-resized-crop decoder.

FFCV has flips and separate brightness/contrast/saturation ops (each with its own probability), but
no joint color jitter with hue, no grayscale, blur, solarization, rotation or noise. Its random crop
decoder and its flip draw from per-thread RNGs inside parallel loops, so no seed reproduces them;
the crop decoder and flip here are seeded versions of FFCV's.

Determinism: every random op (the crop decoder included) first seeds numba's RNG of the loader
thread from ``(seed, epoch, salt, batch indices)``, with a salt unique to that op in the loader,
then draws its random numbers for the whole batch through serial helpers before its parallel loop.
A batch's augmentations therefore do not depend on thread count or on the order in which FFCV
runs the ops of different views within a stage (it walks a set, so that order varies). The epoch lives in an :class:`EpochCell` that the loader updates before each epoch;
compiled code reads it through its address, because numba freezes global arrays at compile time.

Kernels are module-level ``@njit(cache=True)`` functions, compiled once per machine; the closures
FFCV compiles per pipeline only forward constants to them. Images are uint8 ``(B, H, W, 3)``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional, Tuple

import numba
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State

# ------------------------------------------------------------------------------------------------
# The epoch cell and per-batch seeding


@intrinsic
def _voidptr(typingctx, addr):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(addr), codegen


class EpochCell:
    """``[seed, epoch]`` in memory that compiled pipelines read at run time."""

    def __init__(self, seed: int) -> None:
        self.values = np.array([seed, 0], dtype=np.int64)

    @property
    def address(self) -> int:
        return int(self.values.ctypes.data)

    def set_epoch(self, epoch: int) -> None:
        self.values[1] = epoch


@njit(cache=True)
def _mix(x):
    """splitmix64's finalizer: a bijective 64-bit hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def seed_batch(cell_addr, salt, batch_indices):
    """Seed this thread's numba RNG from (seed, epoch, salt, every index of the batch)."""
    cell = numba.carray(_voidptr(cell_addr), (2,), np.int64)
    h = _mix(np.uint64(cell[0]) + np.uint64(0x9E3779B97F4A7C15))
    h = _mix(h ^ np.uint64(cell[1]))
    h = _mix(h ^ np.uint64(salt))
    for k in range(len(batch_indices)):
        h = _mix(h ^ np.uint64(batch_indices[k]))
    np.random.seed(np.uint32(h >> np.uint64(32)))


# numba's parallel compiler turns array-sized np.random calls into parallel loops over per-thread
# RNGs, which no seed can reproduce; kernels therefore draw through these serial helpers.


@njit(cache=True)
def draw_uniform(lo, hi, n):
    return np.random.uniform(lo, hi, n)


@njit(cache=True)
def draw_coins(p, n):
    return np.random.random(n) < p


@njit(cache=True)
def draw_crop_uniforms(n):
    return np.random.random((n, 10, 4))


@njit(cache=True)
def draw_normal(shape):
    return np.random.standard_normal(shape)


# ------------------------------------------------------------------------------------------------
# Decoder: random resized crop with the crops drawn in the calling thread


@njit(cache=True)
def crop_box(height, width, scale, ratio, u):
    """torchvision's RandomResizedCrop.get_params on pre-drawn uniforms ``u`` (tries, 4)."""
    area = height * width
    lo, hi = np.log(ratio[0]), np.log(ratio[1])
    for t in range(u.shape[0]):
        target = area * (scale[0] + (scale[1] - scale[0]) * u[t, 0])
        aspect = np.exp(lo + (hi - lo) * u[t, 1])
        w = int(round(np.sqrt(target * aspect)))
        h = int(round(np.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = int(u[t, 2] * (height - h + 1))
            j = int(u[t, 3] * (width - w + 1))
            return i, j, h, w
    return 0, 0, height, width


class SeededRandomResizedCrop(ResizedCropRGBImageDecoder):
    """Decode + random resized crop + resize, like FFCV's ``RandomResizedCropRGBImageDecoder``,
    with reproducible crops (see the module docstring). Seeds the batch for the ops after it."""

    def __init__(self, output_size: Tuple[int, int], scale, ratio, cell: EpochCell, salt: int) -> None:
        super().__init__(output_size)
        self.scale, self.ratio = np.array(scale, dtype=np.float64), np.array(ratio, dtype=np.float64)
        self.cell, self.salt = cell, int(salt)

    @property
    def get_crop_generator(self):  # required by the abstract base; crops come from crop_box
        return crop_box

    def generate_code(self) -> Callable:
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        scale, ratio, addr, salt = self.scale, self.ratio, self.cell.address, self.salt

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            seed_batch(addr, salt, batch_indices)
            u = draw_crop_uniforms(len(batch_indices))
            for dst_ix in my_range(len(batch_indices)):
                field = metadata[batch_indices[dst_ix]]
                image_data = mem_read(field["data_ptr"], storage_state)
                height, width = np.uint32(field["height"]), np.uint32(field["width"])
                if field["mode"] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    imdecode_c(image_data, temp_buffer, height, width, height, width, 0, 0, 1, 1, False, False)
                    temp_buffer = temp_buffer.reshape(-1)[: 3 * height * width].reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)
                i, j, h, w = crop_box(int(height), int(width), scale, ratio, u[dst_ix])
                resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            return destination[: len(batch_indices)]

        decode.is_parallel = True
        return decode


# ------------------------------------------------------------------------------------------------
# Photometric and geometric ops


class _BatchOp(Operation):
    """An op that seeds the batch, then calls ``kernel(images, dst, *params)``; ``in_place`` ops write
    into their input. ``bind(cell, salt)`` gives it the epoch cell and a salt unique in the loader."""

    in_place = True
    cell: Optional[EpochCell] = None
    salt: int = 0

    def bind(self, cell: EpochCell, salt: int) -> "_BatchOp":
        self.cell, self.salt = cell, int(salt)
        return self

    def params(self) -> tuple:
        raise NotImplementedError

    @staticmethod
    def kernel(images, dst, *params):  # pragma: no cover - overridden
        raise NotImplementedError

    def generate_code(self) -> Callable:
        if self.cell is None:
            raise ValueError(f"{type(self).__name__} needs bind(cell, salt) before use")
        kernel, params, addr, salt = self.kernel, self.params(), self.cell.address, self.salt

        def op(images, dst, batch_indices):
            seed_batch(addr, salt, batch_indices)
            return kernel(images, dst, *params)

        op.with_indices = True
        return op

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, Optional[AllocationQuery]]:
        alloc = None if self.in_place else AllocationQuery(previous_state.shape, previous_state.dtype)
        return replace(previous_state, jit_mode=True), alloc


@njit(cache=True, parallel=True, fastmath=True)
def _jitter_kernel(images, dst, p, b, c, s, h):
    n = images.shape[0]
    on = draw_coins(p, n)
    fb = draw_uniform(1 - b, 1 + b, n)
    fc = draw_uniform(1 - c, 1 + c, n)
    fs = draw_uniform(1 - s, 1 + s, n)
    fh = draw_uniform(-h, h, n)
    for k in prange(n):
        if not on[k]:
            continue
        img = images[k].astype(np.float32) * np.float32(fb[k] / 255.0)
        img = np.minimum(np.maximum(img, 0), 1)
        gray = 0.299 * img[:, :, 0] + 0.587 * img[:, :, 1] + 0.114 * img[:, :, 2]
        m = gray.mean()
        img = np.minimum(np.maximum((img - m) * fc[k] + m, 0), 1)
        gray = 0.299 * img[:, :, 0] + 0.587 * img[:, :, 1] + 0.114 * img[:, :, 2]
        for ch in range(3):
            img[:, :, ch] = np.minimum(np.maximum((img[:, :, ch] - gray) * fs[k] + gray, 0), 1)
        if h > 0:
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


class RandomColorJitter(_BatchOp):
    """With probability p: brightness, contrast, saturation and hue, in that order (one coin for all
    four, as ``RandomApply([ColorJitter(...)], p)``)."""

    def __init__(self, p: float, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        super().__init__()
        self.p, self.b, self.c, self.s, self.h = p, brightness, contrast, saturation, hue

    kernel = staticmethod(_jitter_kernel)

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


class RandomGrayscale(_BatchOp):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    kernel = staticmethod(_gray_kernel)

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


class RandomGaussianBlur(_BatchOp):
    def __init__(self, p: float, sigma: Tuple[float, float], kernel_size: int) -> None:
        super().__init__()
        self.p, self.sigma, self.ksize = p, sigma, kernel_size

    kernel = staticmethod(_blur_kernel)

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


class RandomSolarize(_BatchOp):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    kernel = staticmethod(_solarize_kernel)

    def params(self):
        return (self.p,)


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


class RandomHorizontalFlip(_BatchOp):
    """FFCV's flip draws its coins inside a parallel region (irreproducible); this one does not."""

    in_place = False

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    kernel = staticmethod(_flip_kernel)

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


class RandomRotate(_BatchOp):
    """Rotation by an angle uniform in [-max_deg, max_deg] about the center, bilinear, zero fill."""

    in_place = False

    def __init__(self, max_deg: float) -> None:
        super().__init__()
        self.max_rad = float(np.deg2rad(max_deg))

    kernel = staticmethod(_rotate_kernel)

    def params(self):
        return (self.max_rad,)


@njit(cache=True, parallel=True)
def _noise_kernel(images, dst, std255):
    noise = draw_normal(images.shape) * std255
    for k in prange(images.shape[0]):
        v = images[k].astype(np.float64) + noise[k] + 0.5
        images[k] = np.minimum(np.maximum(v, 0), 255).astype(np.uint8)
    return images


class GaussianNoise(_BatchOp):
    """Additive N(0, std^2) pixel noise (std in units of the [0, 1] range), clipped to uint8."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std255 = float(std) * 255.0

    kernel = staticmethod(_noise_kernel)

    def params(self):
        return (self.std255,)
