"""VICReg: Variance-Invariance-Covariance Regularization.

Paper: A. Bardes, J. Ponce, Y. LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022. Official code: facebookresearch/vicreg (``main_vicreg.py``).

At V = 2 the loss equals the official one::

    lam * MSE(z1, z2)
      + mu * ( mean(relu(gamma - std(z1))) / 2 + mean(relu(gamma - std(z2))) / 2 )
      + nu * ( C(z1) + C(z2) )

with ``std = sqrt(Var_unbiased + eps)`` per feature and ``C(z)`` the sum of the squared
off-diagonal entries of the (N-1)-normalized covariance matrix, divided by D.

Generalization to V > 2 views (reduces to the above at V = 2):

* invariance: the mean of ``MSE(z_i, z_j)`` over the V(V-1)/2 view pairs;
* variance:   the mean over views of ``mean(relu(gamma - std(z_v)))``;
* covariance: ``2 * mean_v C(z_v)`` -- the sum over views, rescaled to 2 views, so that the weight
  of the covariance term relative to the others does not grow with V.

Under DDP the batch is gathered from every rank first (:mod:`ssl_ray.objectives.distributed`),
so every statistic is global.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_ray.config.hparams import VICRegHparams
from ssl_ray.objectives.base import OBJECTIVES, Objective, ObjectiveOutput, check_views
from ssl_ray.objectives.distributed import gather_batch


def invariance_loss(z: torch.Tensor) -> torch.Tensor:
    """Mean over view pairs i<j of ``MSE(z_i, z_j)`` (elementwise mean). ``z``: (N, V, D)."""
    v = z.shape[1]
    pairs = [F.mse_loss(z[:, i], z[:, j]) for i in range(v) for j in range(i + 1, v)]
    return torch.stack(pairs).mean()


def variance_loss(x: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """``mean_d relu(gamma - sqrt(Var_unbiased(x_d) + eps))`` for one view ``x``: (N, D)."""
    std = torch.sqrt(x.var(dim=0, unbiased=True) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(x: torch.Tensor) -> torch.Tensor:
    """``sum_{i != j} Cov(x)_ij^2 / D`` with the (N-1)-normalized covariance of ``x``: (N, D)."""
    n, d = x.shape
    xc = x - x.mean(dim=0)
    cov = (xc.T @ xc) / (n - 1)
    off_diag = cov - torch.diag(torch.diagonal(cov))
    return off_diag.pow(2).sum() / d


@OBJECTIVES.register("vicreg")
class VICReg(Objective):
    name = "vicreg"
    Hparams = VICRegHparams
    term_weights = {"invariance": "lam", "variance": "mu", "covariance": "nu"}
    term_groups = {"invariance": ("invariance",), "regularization": ("variance", "covariance")}

    def forward(self, z: torch.Tensor) -> ObjectiveOutput:
        check_views(z)
        z = gather_batch(z)
        v = z.shape[1]
        inv = invariance_loss(z)
        var = torch.stack([variance_loss(z[:, k], self.gamma, self.eps) for k in range(v)]).mean()
        cov = 2.0 * torch.stack([covariance_loss(z[:, k]) for k in range(v)]).mean()
        loss = self.lam * inv + self.mu * var + self.nu * cov
        terms = {"invariance": inv.detach(), "variance": var.detach(), "covariance": cov.detach()}
        return ObjectiveOutput(loss=loss, terms=terms)
