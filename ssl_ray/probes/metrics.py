"""Clustering metrics of a representation, in closed form (no Python loops over classes).

All functions take features ``(N, D)`` and integer labels ``(N,)`` as numpy arrays or torch
tensors, and compute in float64 torch on the features' device. The linear probe lives in
``linear.py``, the label-free geometry in ``geometry.py`` and MINE in ``mine.py``;
:func:`linear_probe_accuracy` is re-exported here, where the probe-metrics contract names it.

References: T. Galanti, A. Gyorgy, M. Hutter, "On the Role of Neural Collapse in Transfer
Learning", ICLR 2022 (CDNV); I. Ben-Shaul, R. Shwartz-Ziv, T. Galanti, S. Dekel, Y. LeCun,
"Reverse Engineering Self-Supervised Learning", NeurIPS 2023 (NCC and CDNV of SSL embeddings).
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


def _as_tensors(x: Array, y: Array, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    xt = torch.as_tensor(x)
    dev = device if device is not None else xt.device
    xt = xt.to(device=dev, dtype=torch.float64)
    yt = torch.as_tensor(y).to(device=dev, dtype=torch.long)
    if xt.dim() != 2 or yt.dim() != 1 or xt.shape[0] != yt.shape[0]:
        raise ValueError(f"expected features (N, D) and labels (N,), got {tuple(xt.shape)} and {tuple(yt.shape)}")
    return xt, yt


def class_means(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(K, D)`` class means and ``(K,)`` counts by one scatter-add; empty classes get count 0."""
    sums = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, y, x)
    counts = torch.bincount(y, minlength=num_classes).to(x.dtype)
    return sums / counts.clamp(min=1).unsqueeze(1), counts


def ncc_predict(means: torch.Tensor, present: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Index of the nearest class mean (Euclidean) among classes that were seen in training."""
    # ||x - m||^2 = ||x||^2 - 2 x.m + ||m||^2; ||x||^2 is constant per row.
    d = (means * means).sum(1).unsqueeze(0) - 2.0 * (x @ means.T)
    d[:, ~present] = float("inf")
    return d.argmin(dim=1)


def ncc_accuracy(train_x: Array, train_y: Array, test_x: Array, test_y: Array) -> float:
    """Nearest-class-center accuracy: class means from the train set, Euclidean nearest mean, no
    normalization. ``acc = mean_i [ argmin_c ||x_i - mu_c|| == y_i ]`` over the test set."""
    xtr, ytr = _as_tensors(train_x, train_y)
    xte, yte = _as_tensors(test_x, test_y, device=xtr.device)
    k = int(max(ytr.max().item(), yte.max().item())) + 1
    means, counts = class_means(xtr, ytr, k)
    pred = ncc_predict(means, counts > 0, xte)
    return float((pred == yte).double().mean().item())


def class_spread(x: Array, y: Array) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per present class c: ``Var_c = mean_{x in c} ||x - mu_c||^2``, and the squared distances
    ``||mu_i - mu_j||^2`` of every pair i < j of present classes (in ``triu_indices`` order)."""
    xt, yt = _as_tensors(x, y)
    means, counts = class_means(xt, yt, int(yt.max().item()) + 1)
    present = counts > 0
    means, counts = means[present], counts[present]
    if means.shape[0] < 2:
        raise ValueError("needs at least two classes")
    yc = (torch.cumsum(present.long(), 0) - 1)[yt]
    sq = ((xt - means[yc]) ** 2).sum(1)
    var = torch.zeros_like(counts).index_add_(0, yc, sq) / counts
    # ||mu_i - mu_j||^2 from the Gram matrix, exact in float64 (cdist's matmul path is not).
    sqn = (means * means).sum(1)
    iu = torch.triu_indices(means.shape[0], means.shape[0], offset=1, device=xt.device)
    dist2 = (sqn[iu[0]] + sqn[iu[1]] - 2.0 * (means[iu[0]] * means[iu[1]]).sum(1)).clamp(min=0.0)
    return var, dist2


def cdnv(x: Array, y: Array) -> float:
    """Class-distance normalized variance, averaged over class pairs i < j::

        CDNV = mean_{i<j} (Var_i + Var_j) / (2 ||mu_i - mu_j||^2),   Var_c = mean_{x in c} ||x - mu_c||^2

    Lower means tighter, better separated classes (Galanti et al., 2022).
    """
    return cdnv_from_spread(*class_spread(x, y))


def cdnv_from_spread(var: torch.Tensor, dist2: torch.Tensor) -> float:
    """CDNV from :func:`class_spread`'s per-class variances and pairwise squared mean distances."""
    iu = torch.triu_indices(var.shape[0], var.shape[0], offset=1, device=var.device)
    return float(((var[iu[0]] + var[iu[1]]) / (2.0 * dist2)).mean().item())


def within_class_variance(x: Array, y: Array) -> float:
    """The mean over classes of ``Var_c = mean_{x in c} ||x - mu_c||^2`` (CDNV's numerator terms)."""
    return float(class_spread(x, y)[0].mean().item())


def class_mean_distance(x: Array, y: Array) -> float:
    """The mean over class pairs i < j of ``||mu_i - mu_j||^2`` (CDNV's denominator terms)."""
    return float(class_spread(x, y)[1].mean().item())


from ssl_ray.probes.linear import linear_probe_accuracy  # noqa: E402,F401  (the contract names it here)
