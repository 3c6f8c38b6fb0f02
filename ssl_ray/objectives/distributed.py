"""Global-batch statistics under DDP.

Every batch statistic of an objective (VICReg's variance and covariance, SimCLR's negatives, ...)
must be taken over the *global* batch. :func:`gather_batch` concatenates the per-rank ``(B, V, D)``
tensors along the batch axis with ``all_gather_tensor_autograd`` (torch functional collectives), whose backward
sums the incoming gradients over ranks. Each rank then computes the same global loss ``L``; the
gradient reaching rank r's own slice is ``W * dL/dz_r``, and DDP's average over the W ranks gives
exactly ``dL/dtheta`` of the global-batch loss. N workers x batch B therefore match one worker x
batch N*B, in loss and in gradients.

Uses torch.distributed only (no ray), and is the identity outside a process group.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_batch(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` from every rank along dim 0, keeping the autograd graph."""
    if world_size() == 1:
        return z
    from torch.distributed._functional_collectives import all_gather_tensor_autograd

    return all_gather_tensor_autograd(z.contiguous(), gather_dim=0, group=dist.group.WORLD)
