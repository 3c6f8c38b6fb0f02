"""ARB: Align Representations with Base.

Paper: S. Zhang, L. Qiu, F. Zhu, J. Yan, H. Zhang, R. Zhao, H. Li, X. Yang, "Align Representations
with Base: A New Approach to Self-Supervised Learning", CVPR 2022. Official code:
Sherrylone/Align-Representation-with-Base.

Each column (feature) of a view's N x D matrix is standardized to unit L2 norm over the batch,
``(z - mean) / (sqrt(N) * std_biased)``. The nearest orthonormal base of Z is
``M(Z) = Z (Z^T Z + 1e-4 I)^(-1/2)``, computed without gradient. With columns indexed by i::

    loss = sum_i (1 - <ZA_i, M(ZB)_i>)^2 + sum_i (1 - <ZB_i, M(ZA)_i>)^2

summed over feature groups: one random permutation of the D features, shared by both views, then
``groups`` equal groups, each with its own base. For V > 2 views the loss is the mean over view
pairs. Under DDP the batch is gathered first and the permutation is broadcast from rank 0.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ssl_ray.config.hparams import ARBHparams
from ssl_ray.objectives.base import OBJECTIVES, Objective, ObjectiveOutput, check_views
from ssl_ray.objectives.distributed import gather_batch, world_size

BASE_EPS = 1e-4
STD_EPS = 1e-12  # keeps a collapsed (constant) column finite: it standardizes to 0


def column_standardize(z: torch.Tensor) -> torch.Tensor:
    """Unit L2 norm per column over the batch: ``(z - mean) / (sqrt(N) * std_biased)``."""
    n = z.shape[0]
    zc = z - z.mean(0)
    return zc / (n**0.5 * torch.sqrt(zc.pow(2).mean(0) + STD_EPS))


@torch.no_grad()
def nearest_orthonormal_base(z: torch.Tensor) -> torch.Tensor:
    """``M(Z) = Z (Z^T Z + eps I)^(-1/2)`` through the eigendecomposition of the Gram matrix (float64)."""
    zd = z.double()
    gram = zd.T @ zd + BASE_EPS * torch.eye(z.shape[1], dtype=torch.float64, device=z.device)
    evals, evecs = torch.linalg.eigh(gram)
    inv_sqrt = evecs @ torch.diag(evals.clamp(min=1e-12).rsqrt()) @ evecs.T
    return (zd @ inv_sqrt).to(z.dtype)


def arb_pair_loss(za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
    ma, mb = nearest_orthonormal_base(za), nearest_orthonormal_base(zb)
    return (1 - (za * mb).sum(0)).pow(2).sum() + (1 - (zb * ma).sum(0)).pow(2).sum()


@OBJECTIVES.register("arb")
class ARB(Objective):
    name = "arb"
    Hparams = ARBHparams

    def permutation(self, d: int, device) -> torch.Tensor:
        perm = torch.randperm(d, device=device)
        if world_size() > 1:
            dist.broadcast(perm, src=0)
        return perm

    def forward(self, z: torch.Tensor) -> ObjectiveOutput:
        check_views(z)
        z = gather_batch(z)
        _, v, d = z.shape
        if d % self.groups:
            raise ValueError(f"arb: embedding dim {d} is not divisible by groups={self.groups}")
        perm = self.permutation(d, z.device) if self.groups > 1 else torch.arange(d, device=z.device)
        zs = [column_standardize(z[:, k])[:, perm] for k in range(v)]
        size = d // self.groups
        pair_losses = []
        for i in range(v):
            for j in range(i + 1, v):
                pair_losses.append(
                    sum(
                        arb_pair_loss(zs[i][:, g * size : (g + 1) * size], zs[j][:, g * size : (g + 1) * size])
                        for g in range(self.groups)
                    )
                )
        loss = torch.stack(pair_losses).mean()
        return ObjectiveOutput(loss=loss, terms={"alignment": loss.detach()})
