"""Barlow Twins.

Paper: J. Zbontar, L. Jing, I. Misra, Y. LeCun, S. Deny, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", ICML 2021. Official code: facebookresearch/barlowtwins (``main.py``).

With ``c = BN(z1)^T BN(z2) / N`` (per-feature standardization over the global batch, biased
variance, eps 1e-5, no affine)::

    loss = sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2

For V > 2 views the loss is the mean over the V(V-1)/2 view pairs.
"""

from __future__ import annotations

import torch

from ssl_ray.config.hparams import BarlowHparams
from ssl_ray.objectives.base import OBJECTIVES, Objective, ObjectiveOutput, check_views
from ssl_ray.objectives.distributed import gather_batch


def standardize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(x - mean) / sqrt(var_biased + eps)`` per feature, as BatchNorm1d(affine=False) in training."""
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps)


def cross_correlation_terms(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = standardize(z1).T @ standardize(z2) / z1.shape[0]
    diag = torch.diagonal(c)
    on = (1 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on, off


@OBJECTIVES.register("barlow")
class BarlowTwins(Objective):
    name = "barlow"
    Hparams = BarlowHparams
    term_weights = {"off_diagonal": "lambd"}

    def forward(self, z: torch.Tensor) -> ObjectiveOutput:
        check_views(z)
        z = gather_batch(z)
        v = z.shape[1]
        pairs = [cross_correlation_terms(z[:, i], z[:, j]) for i in range(v) for j in range(i + 1, v)]
        on = torch.stack([p[0] for p in pairs]).mean()
        off = torch.stack([p[1] for p in pairs]).mean()
        loss = on + self.lambd * off
        return ObjectiveOutput(loss=loss, terms={"on_diagonal": on.detach(), "off_diagonal": off.detach()})
