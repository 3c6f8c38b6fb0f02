"""MMCR: Maximum Manifold Capacity Representations.

Paper: T. Yerxa, Y. Kuang, E. Simoncelli, S. Chung, "Learning Efficient Coding of Natural Images with
Maximum Manifold Capacity Representations", NeurIPS 2023. Official code: ThomasYerxa/mmcr.

Each view embedding is L2-normalized; ``C`` is the B x D matrix of per-image centroids (the mean of
its V views) and ``Z_b`` image b's V x D matrix of views::

    loss = -||C||_*  +  lam / B * sum_b ||Z_b||_*

``||.||_*`` is the nuclear norm (sum of singular values). Terms: ``centroid_nuclear`` = ||C||_*,
``view_nuclear`` = (1/B) sum_b ||Z_b||_*. The centroid nuclear norm is taken over the global batch.

Momentum (the paper's ImageNet setting, ``loss_mmcr_momentum.py`` in the official code): with
``momentum > 0`` the training loop keeps an EMA copy of the network, ``theta_t <- m * theta_t +
(1 - m) * theta``, and passes its (gradient-free) embeddings of the same views as ``target``. The
centroid of each image is then the average of the online and the target centroids,
``C = (mean_v z_bv + mean_v z'_bv) / 2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_ray.config.hparams import MMCRHparams
from ssl_ray.objectives.base import OBJECTIVES, Objective, ObjectiveOutput, check_views
from ssl_ray.objectives.distributed import gather_batch


@OBJECTIVES.register("mmcr")
class MMCR(Objective):
    name = "mmcr"
    Hparams = MMCRHparams
    term_weights = {"view_nuclear": "lam"}

    def forward(self, z: torch.Tensor, target: torch.Tensor | None = None) -> ObjectiveOutput:
        check_views(z)
        z = F.normalize(gather_batch(z), dim=-1)
        centroids = z.mean(dim=1)
        if target is not None:
            centroids = 0.5 * (centroids + F.normalize(gather_batch(target.detach()), dim=-1).mean(dim=1))
        centroid_nuc = torch.linalg.svdvals(centroids).sum()
        view_nuc = torch.linalg.svdvals(z).sum(dim=-1).mean()  # batched over images
        loss = -centroid_nuc + self.lam * view_nuc
        return ObjectiveOutput(
            loss=loss, terms={"centroid_nuclear": centroid_nuc.detach(), "view_nuclear": view_nuc.detach()}
        )

    @property
    def target_momentum(self) -> float:  # > 0: the loop keeps an EMA target encoder
        return self.momentum
