"""What "the information a layer carries about its input" means for a deterministic network, and its
exact value.

A deterministic network maps N distinct images to N distinct feature vectors, so ``I(X; Z) = log N`` at
every layer: the quantity is not a property of the layer. Following Goldfeld et al., "Estimating
Information Flow in Deep Neural Networks" (ICML 2019), the probes read the information that survives a
Gaussian channel at the layer::

    I_sigma(X; Z) = I(X; Z + sigma eps),  eps ~ N(0, I_D),  sigma = noise * s_Z,
    s_Z = sqrt(tr Cov(Z))      (the features' RMS distance from their mean over the probe images)

with ``X`` uniform over the probe's images (the dataset, as in Goldfeld et al.; they fix sigma, we scale it
to the features so that layers of any scale compare). It does not change when the features are scaled,
rotated, or embedded isometrically in more dimensions (noise in directions the features do not use carries
nothing about X), so a 32-d block and a 128-d projector are read at one signal-to-noise ratio. Scaling the
noise per coordinate instead (``sqrt(tr Cov / D)``) made the reading grow with the layer's width: 1.1-1.4
nats at the 16-d blocks, 1.8-2.4 at the 32-d ones, 4-5 at the 128-d projector of the same trials. It does
change under a general invertible linear map of the layer (that moves where the noise bites): it reads a
geometry, not the deterministic information.

**Two parts: the spectrum, and the clusters.** Among features of a given covariance (eigenvalues
``l_i``), Gaussian ones carry the most (:func:`gaussian_channel_mi`)::

    I_sigma(X; Z) = I_gauss - J,   I_gauss = 1/2 sum_i log(1 + l_i / sigma^2) <= tr Cov / (2 sigma^2) = 1 / (2 noise^2)

with ``J >= 0`` the negentropy of ``Z + sigma eps`` (how far from Gaussian it is at that resolution).
So the reading is at most 2 nats at ``noise`` 0.5, and ``I_gauss`` is set by the spectrum alone: the more
evenly the variance spreads over directions (a higher participation ratio), the higher. ``J`` is what
clusters take away -- Goldfeld et al.'s "compression is clustering": ten tight, well separated clusters
in 32 dimensions read 1.39 nats, a structureless Gaussian cloud 1.88. Read the two together
(``mi_exact`` and ``mi_gaussian``, fig 11): on the digits the reading follows the spectrum closely (its
168 values in the default run correlate 0.98 with the isotropic Gaussian's formula for the layer's
participation ratio), and the gap ``J`` is what is left to say about clustering. ``noise``
(``probe.mine_noise``) is 0.5 by default: the readings lie below MINE's held-out ceiling (log 359 =
5.9), and the value for N images equals the value for N/2 of them within 0.06 nats at every layer.

:func:`noisy_channel_mi` computes it *exactly* for the N rows given, up to Monte-Carlo error over the
noise: with ``p(y) = 1/N sum_j phi_sigma(y - z_j)`` (the mixture of Goldfeld et al.'s sample-propagation
estimator of ``h(Z + sigma eps)``)::

    I = E_i E_eps [ log phi_sigma(sigma eps) - log p(z_i + sigma eps) ]
      = log N - E_i E_eps [ log sum_j exp(-(||z_i - z_j + sigma eps||^2 - ||sigma eps||^2) / (2 sigma^2)) ]

The probe adds the noise (:func:`add_channel_noise`) and hands ``(input, Z + sigma eps)`` to MINE, which
estimates the same quantity from pairs; the exact value says whether MINE's number can be trusted.
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]

DEFAULT_NOISE = 0.5  # sigma in units of the features' RMS distance from their mean
DRAWS = 4  # Monte-Carlo noise draws per row of the exact value
# Seeds of the channel's noise and of the exact value's Monte-Carlo draws: probe.seed plus these, a range MINE's
# own seeds (probe.seed .. probe.seed + probe.mine_seeds - 1) never reach
NOISE_SALT, DRAWS_SALT = 1_000_003, 2_000_003


def spread(z: Array) -> float:
    """``s_Z = sqrt(tr Cov(Z))``: the rows' RMS distance from their mean (biased covariance)."""
    zt = torch.as_tensor(z).double()
    return float((zt - zt.mean(0)).pow(2).sum(1).mean().sqrt())


def add_channel_noise(z: Array, noise: float, seed: int) -> Tuple[torch.Tensor, float]:
    """``(Z + sigma eps, sigma)`` with ``sigma = noise * spread(z)`` and ``eps`` drawn from ``seed``."""
    zt = torch.as_tensor(z).double()
    sigma = noise * spread(zt)
    eps = torch.randn(zt.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return (zt + sigma * eps).float(), sigma


def gaussian_channel_mi(z: Array, sigma: float) -> float:
    """``1/2 sum_i log(1 + l_i / sigma^2)`` over the eigenvalues ``l_i`` of the rows' covariance (biased): the
    information of Gaussian features with this covariance through the channel, the most any features with
    this covariance carry (module docstring)."""
    zt = torch.as_tensor(z).double()
    zc = zt - zt.mean(0)
    lam = torch.linalg.eigvalsh(zc.T @ zc / zt.shape[0]).clamp(min=0.0)
    return float(0.5 * torch.log1p(lam / (sigma * sigma)).sum())


def noisy_channel_mi(
    z: Array, sigma: float, draws: int = DRAWS, seed: int = 0, chunk: int = 1024
) -> Tuple[float, float]:
    """``(I(X; Z + sigma eps), its Monte-Carlo standard error)`` in nats for ``X`` uniform over the rows of
    ``z`` (see the module docstring). The mean over rows is exact; the error is that of the ``draws``
    noise draws (their spread over sqrt(draws)). ``O(draws N^2 D)``, in chunks of ``chunk`` rows."""
    zt = torch.as_tensor(z).double()
    n = zt.shape[0]
    if sigma <= 0 or not math.isfinite(sigma):
        raise ValueError(f"the channel's noise must be positive, got sigma={sigma}")
    if n < 2:
        return 0.0, 0.0
    g = torch.Generator().manual_seed(int(seed))
    sq = (zt * zt).sum(1)
    per_draw = []
    for _ in range(draws):
        terms = []
        eps = sigma * torch.randn(zt.shape, generator=g, dtype=torch.float64)
        for i in range(0, n, chunk):
            y = zt[i : i + chunk] + eps[i : i + chunk]
            d2 = (y * y).sum(1, keepdim=True) - 2 * y @ zt.T + sq[None]  # ||y_i - z_j||^2
            own = (eps[i : i + chunk] ** 2).sum(1)
            terms.append(math.log(n) - torch.logsumexp(-(d2 - own[:, None]) / (2 * sigma * sigma), 1))
        per_draw.append(float(torch.cat(terms).mean()))
    spread = float(np.std(per_draw, ddof=1)) if draws > 1 else 0.0
    return float(np.mean(per_draw)), spread / math.sqrt(draws)
