"""Is a training run still healthy? Divergence and representation collapse, as pure functions.

Collapse is read from the per-dimension standard deviation of the L2-normalized embeddings,
``s = mean_d std_b( z_bd / ||z_b|| )``, the monitor of X. Chen and K. He, "Exploring Simple Siamese
Representation Learning" (CVPR 2021, Sec. 4.1). Embeddings spread over the unit sphere give
``s ~ 1/sqrt(D)``; a collapsed run, where every image maps to the same vector, gives ``s -> 0``.
Normalizing first makes the number comparable across objectives whatever their embedding scale
(VICReg's raw variances, SimCLR's cosine space).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ssl_ray.tracking import TrialStatus


def normalized_embedding_std(z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``mean_d std_b(z_bd / ||z_b||)`` over a batch ``z`` of shape (B, D) (or (B, V, D): views are
    treated as more samples). Biased std; a scalar tensor without gradient."""
    z = z.detach().reshape(-1, z.shape[-1]).float()
    zn = z / z.norm(dim=1, keepdim=True).clamp_min(eps)
    return zn.std(dim=0, unbiased=False).mean()


@dataclass
class EpochHealth:
    """Accumulates one epoch's evidence; :func:`verdict` says whether to stop. The sums stay tensors on
    the training device, so a step never waits for the GPU; reading them synchronizes once per epoch."""

    steps: int = 0
    _nonfinite: Any = 0
    _std: Any = 0.0

    def update(self, loss, z: Optional[torch.Tensor]) -> None:
        self.steps += 1
        loss = torch.as_tensor(loss).detach()
        self._nonfinite = self._nonfinite + (~torch.isfinite(loss)).to(torch.int64)
        if z is not None:
            self._std = self._std + normalized_embedding_std(z)

    @property
    def nonfinite_steps(self) -> int:
        return int(self._nonfinite)

    @property
    def std_sum(self) -> float:
        return float(self._std)

    @property
    def embedding_std(self) -> float:
        return self.std_sum / self.steps if self.steps else math.nan


def verdict(nonfinite_steps: int, embedding_std: float, collapse_std: float, epoch: int) -> Optional[tuple[str, str]]:
    """``(status, reason)`` when the run must stop, else None.

    Diverged: any step of the epoch had a non-finite loss (or the embedding itself is not finite).
    Collapsed: the epoch's mean normalized embedding std fell below ``collapse_std`` (0 disables)."""
    if nonfinite_steps > 0:
        return TrialStatus.DIVERGED, f"non-finite loss in {nonfinite_steps} step(s) of epoch {epoch}"
    if not math.isfinite(embedding_std):
        return TrialStatus.DIVERGED, f"non-finite embeddings in epoch {epoch}"
    if collapse_std > 0 and embedding_std < collapse_std:
        return TrialStatus.COLLAPSED, (
            f"embedding collapsed at epoch {epoch}: per-dimension std of the normalized embeddings "
            f"{embedding_std:.2e} < train.collapse_std {collapse_std:g}"
        )
    return None
