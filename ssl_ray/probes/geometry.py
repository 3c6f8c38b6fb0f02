"""Label-free geometry of a representation, and the geometry of its class manifolds.

All functions take features ``(N, D)`` (numpy or torch) and compute in float64 torch.

* :func:`participation_ratio` -- ``PR = (sum_i l_i)^2 / sum_i l_i^2`` over the eigenvalues ``l_i`` of
  the feature covariance: the number of dimensions the variance is spread over (Gao et al., "A theory
  of multineuronal dimensionality", 2017; Recanatesi et al., 2019). Isotropic data give ~D.
* :func:`rankme` -- ``RankMe = exp(-sum_k p_k log p_k)``, ``p_k = s_k / ||s||_1 + eps`` over the
  singular values ``s_k`` of the (uncentered) embedding matrix (Garrido, Balestriero, Najman, LeCun,
  "RankMe", ICML 2023).
* :func:`powerlaw_alpha` -- the exponent alpha of ``l_i ~ i^(-alpha)``, the least-squares slope of
  ``log l_i`` against ``log i`` over a range of ranks that depends on how many samples there are per
  dimension, ``m = min(N - 1, D)`` being the number of non-zero sample eigenvalues (Stringer et al.,
  Nature 2019, fit a range of ranks too; Agrawal et al., "alpha-ReQ", NeurIPS 2022):

  - N < 8 D: ranks 2 .. m/4. With about as many samples as dimensions, the sample spectrum of a power law
    bends away from it in its lower half -- the Marchenko-Pastur spreading pushes the smallest sample
    eigenvalues towards 0 -- so a fit over the whole spectrum read alpha = 1 as 1.9-2.0 at N = D, and the
    first eigenvalue is inflated a little. Over ranks 2 .. m/4, alpha = 0.5, 1 and 2 read within 10% for
    N/D from 0.8 to 1.5 (measured at D = 128 and 512).
  - N >= 8 D (the digits' probes: 1,150 rows, 16- to 128-d layers): ranks 1 .. m/2, where the sample
    eigenvalues are accurate; at D = 16 the narrow range 2 .. 4 erred by up to 21% in single draws,
    1 .. 8 by at most 4% (``tests/unit/probes/test_geometry.py``).

  Fewer than 3 ranks in the range: ranks 1 .. m.
* :func:`manifold_geometry` -- MMCR's elliptical manifold radius and dimension (Yerxa, Kuang,
  Simoncelli, Chung, "Learning efficient coding of natural images with maximum manifold capacity
  representations", NeurIPS 2023, after Chung, Lee, Sompolinsky 2018), on L2-normalized embeddings as
  MMCR defines them: each feature vector is first projected to the unit sphere. For each class c, with
  ``lambda_i^2`` the eigenvalues of its covariance ``S_c = (1/n_c) sum_{x in c} (x - mu_c)(x - mu_c)^T``
  (so ``lambda_i`` are the singular values of the centered class matrix over ``sqrt(n_c)``)::

      R_c = sqrt(sum_i lambda_i^2)            (= sqrt(tr S_c), at most 1 on the sphere)
      D_c = (sum_i lambda_i)^2 / sum_i lambda_i^2

  averaged over classes; ``R_c sqrt(D_c) = sum_i lambda_i`` is the nuclear norm of the centered class
  matrix over ``sqrt(n_c)``, the quantity MMCR's objective works on. Normalized, neither changes when
  the features are scaled (on raw features the radius grew with the features' norm: 0.33 at ``block1``
  against 3.25 at ``proj_hidden1`` said nothing). They do change with a shared offset: the non-negative
  features after a ReLU share a large mean direction, which puts every class near one point of the
  sphere and shrinks its radius (adding 5 to every coordinate took R from 0.95 to 0.48), so radii compare
  one layer across training and configurations, not a ReLU block with a linear projector. With the
  ``sample`` target the "classes" are the views of one image: MMCR's augmentation manifolds.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


def _f64(x: Array) -> torch.Tensor:
    xt = torch.as_tensor(x).to(torch.float64)
    if xt.dim() != 2:
        raise ValueError(f"expected features (N, D), got {tuple(xt.shape)}")
    return xt


def covariance_eigenvalues(x: Array) -> torch.Tensor:
    """Eigenvalues of ``(1/N) Xc^T Xc`` (Xc centered), descending, from the SVD of Xc."""
    xt = _f64(x)
    xc = xt - xt.mean(0, keepdim=True)
    s = torch.linalg.svdvals(xc)
    return (s * s) / xt.shape[0]


def participation_ratio(x: Array) -> float:
    lam = covariance_eigenvalues(x)
    return float((lam.sum() ** 2 / (lam * lam).sum().clamp(min=1e-300)).item())


def rankme(x: Array, eps: float = 1e-7) -> float:
    s = torch.linalg.svdvals(_f64(x))
    p = s / s.sum().clamp(min=1e-300) + eps
    return float(torch.exp(-(p * torch.log(p)).sum()).item())


def alpha_ranks(n: int, d: int) -> Tuple[int, int]:
    """The ranks (first, last; 1-based, inclusive) :func:`powerlaw_alpha` fits over (module docstring)."""
    m = max(1, min(n - 1, d))
    first, last = (1, m // 2) if n >= 8 * d else (2, m // 4)
    return (first, last) if last - first + 1 >= 3 else (1, m)


def powerlaw_alpha(x: Array, rel_floor: float = 1e-12) -> float:
    """``alpha`` in ``l_i ~ i^(-alpha)``, fitted over the ranks :func:`alpha_ranks` gives (eigenvalues below
    ``rel_floor * l_1`` count as zero and end the range)."""
    xt = _f64(x)
    lam = covariance_eigenvalues(xt)
    first, last = alpha_ranks(*xt.shape)
    lam = lam[first - 1 : last]
    lam = lam[lam > lam[0] * rel_floor] if lam.numel() else lam
    if lam.numel() < 2:
        return float("nan")
    lx = torch.log(torch.arange(first, first + lam.numel(), dtype=torch.float64))
    ly = torch.log(lam)
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((-(lx * ly).sum() / (lx * lx).sum()).item())


def _padded_by_class(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Centered features grouped by class into ``(K, n_max, D)`` (zero rows pad), and counts ``(K,)``."""
    classes, yc, counts = torch.unique(y, return_inverse=True, return_counts=True)
    order = torch.argsort(yc, stable=True)
    ys = yc[order]
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(y.numel(), device=x.device) - starts[ys]
    sums = torch.zeros(classes.numel(), x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, yc, x)
    means = sums / counts.unsqueeze(1).to(x.dtype)
    out = torch.zeros(classes.numel(), int(counts.max()), x.shape[1], dtype=x.dtype, device=x.device)
    out[ys, pos] = x[order] - means[ys]
    return out, counts


def unit_rows(x: Array) -> torch.Tensor:
    """Each row projected to the unit sphere (a zero row stays zero)."""
    xt = _f64(x)
    return xt / xt.norm(dim=1, keepdim=True).clamp(min=1e-300)


def manifold_geometry(x: Array, y: Array, max_elements: int = 2**25) -> Tuple[float, float]:
    """``(mean_c R_c, mean_c D_c)`` over classes with at least two samples, on the L2-normalized rows of ``x``
    (see the module docstring). Zero rows that pad a class to ``n_max`` leave its singular values unchanged."""
    xt = unit_rows(x)
    yt = torch.as_tensor(y).to(xt.device).long()
    padded, counts = _padded_by_class(xt, yt)
    keep = counts >= 2
    padded, counts = padded[keep], counts[keep].to(xt.dtype)
    if counts.numel() == 0:
        return float("nan"), float("nan")
    k, n_max, d = padded.shape
    lam = torch.empty(k, min(n_max, d), dtype=xt.dtype, device=xt.device)
    chunk = max(1, max_elements // (n_max * d))
    for i in range(0, k, chunk):  # chunks of classes, to bound memory
        lam[i : i + chunk] = torch.linalg.svdvals(padded[i : i + chunk])
    lam = lam / torch.sqrt(counts).unsqueeze(1)  # lambda_i: square roots of the covariance eigenvalues
    sq = (lam * lam).sum(1)
    radius = torch.sqrt(sq)
    dim = lam.sum(1) ** 2 / sq.clamp(min=1e-300)
    return float(radius.mean().item()), float(dim.mean().item())
