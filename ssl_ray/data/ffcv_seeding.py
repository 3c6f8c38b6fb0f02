"""Seeded randomness for FFCV pipelines: the epoch cell, per-batch seeding of numba's RNG, and the base
of every random batch op (see ``ffcv_ops.py`` for why FFCV's own ops cannot be seeded)."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional, Tuple

import numba
import numpy as np
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

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


def seed_key(cell: EpochCell, salt: int) -> np.ndarray:
    """``[cell address, salt]`` for a compiled op to pass to ``seed_batch`` as ``key[0], key[1]``.

    An int captured by a closure is frozen as a literal, and a dispatcher called with a literal compiles
    (and caches) an overload for that value: with the cell's address, a new one per op per process, 0.5 s
    each and one more cache file per op per run. Read from a frozen array, both are plain int64."""
    return np.array([cell.address, salt], dtype=np.int64)


# ------------------------------------------------------------------------------------------------
# Kernels called through a C pointer
#
# A jitted function that calls another dispatcher links the callee's code into its own module and
# generates it again: an op's closure calling a parallel kernel took 1.5-2 s to compile, per op, per
# loader, per process (12 s of a 2-view SimCLR loader's first batch). Each kernel is therefore also a
# ``cfunc`` (compiled once per machine, cached) that the closure calls by address, with the batch as
# pointers and its shape, and the op's parameters as a float64 array: the closure compiles in 0.1 s.

NATIVE_SIG = types.void(types.voidptr, types.voidptr, types.int64, types.int64, types.int64, types.voidptr)


@njit(cache=True)
def batch_arrays(src, dst, n, h, w, q, nq):
    """The (n, h, w, 3) uint8 source and destination batches and the ``nq`` float64 parameters a native
    kernel receives as pointers."""
    return (
        numba.carray(src, (n, h, w, 3), np.uint8),
        numba.carray(dst, (n, h, w, 3), np.uint8),
        numba.carray(q, (nq,), np.float64),
    )


@njit(cache=True)
def check_batch(images):
    """A native kernel reads the batch as raw (n, h, w, 3) uint8 memory: refuse anything else rather than
    read it wrongly."""
    if not images.flags.c_contiguous or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError("an ssl_ray FFCV op needs a C-contiguous (batch, height, width, 3) uint8 batch")


class native:
    """``fn(src, dst, n, h, w, q)`` as a cached ``cfunc`` of :data:`NATIVE_SIG`, compiled (or loaded from
    numba's cache) on first use: a cfunc compiles when it is made, and a loader builds only its own ops."""

    def __init__(self, fn) -> None:
        self.fn, self._compiled = fn, None

    def cfunc(self):
        if self._compiled is None:
            self._compiled = cfunc(NATIVE_SIG, cache=True)(self.fn)
        return self._compiled


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


@njit(cache=True)
def draw_orders(n, k):
    """``n`` random orders of ``k`` ops, row i a permutation of ``0..k-1``: the argsort of uniforms."""
    u = np.random.random((n, k))
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        out[i] = np.argsort(u[i])
    return out


# ------------------------------------------------------------------------------------------------
# Photometric and geometric ops


class BatchOp(Operation):
    """An op that seeds the batch, then calls its ``native`` kernel on it with ``params()``; ``in_place`` ops write
    into their input. ``bind(cell, salt)`` gives it the epoch cell and a salt unique in the loader."""

    in_place = True
    native: Optional[native] = None  # the kernel as a cfunc of NATIVE_SIG (see batch_arrays)
    cell: Optional[EpochCell] = None
    salt: int = 0

    def bind(self, cell: EpochCell, salt: int) -> "BatchOp":
        self.cell, self.salt = cell, int(salt)
        return self

    def params(self) -> tuple:
        raise NotImplementedError

    def generate_code(self) -> Callable:
        if self.cell is None:
            raise ValueError(f"{type(self).__name__} needs bind(cell, salt) before use")
        kernel, key = self.native.cfunc(), seed_key(self.cell, self.salt)
        q = np.array(self.params(), dtype=np.float64)

        if self.in_place:

            def op(images, dst, batch_indices):
                check_batch(images)
                seed_batch(key[0], key[1], batch_indices)
                src = _voidptr(images.ctypes.data)
                kernel(src, src, images.shape[0], images.shape[1], images.shape[2], _voidptr(q.ctypes.data))
                return images
        else:

            def op(images, dst, batch_indices):
                check_batch(images)
                check_batch(dst)
                seed_batch(key[0], key[1], batch_indices)
                kernel(
                    _voidptr(images.ctypes.data),
                    _voidptr(dst.ctypes.data),
                    images.shape[0],
                    images.shape[1],
                    images.shape[2],
                    _voidptr(q.ctypes.data),
                )
                return dst

        op.with_indices = True
        return op

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, Optional[AllocationQuery]]:
        if np.dtype(previous_state.dtype) != np.uint8 or tuple(previous_state.shape)[-1:] != (3,):
            raise ValueError(
                f"{type(self).__name__} needs (height, width, 3) uint8 images, got "
                f"{tuple(previous_state.shape)} {previous_state.dtype}: put it before ToTensor"
            )
        alloc = None if self.in_place else AllocationQuery(previous_state.shape, previous_state.dtype)
        return replace(previous_state, jit_mode=True), alloc
