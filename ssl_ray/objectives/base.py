"""Shared pieces of every objective: the registry, the output type, the input check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch

from ssl_ray.registry import Registry

OBJECTIVES = Registry("objective")


@dataclass
class ObjectiveOutput:
    """What an objective returns: the loss to minimize and its unweighted parts for logging."""

    loss: torch.Tensor
    terms: Dict[str, torch.Tensor] = field(default_factory=dict)


def check_views(z: torch.Tensor) -> None:
    """Every objective takes ``z`` of shape ``(B, V, D)`` with ``B >= 2`` and ``V >= 2``."""
    if z.dim() != 3:
        raise ValueError(f"objectives take z of shape (B, V, D); got shape {tuple(z.shape)}")
    if z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"objectives need B >= 2 images and V >= 2 views; got shape {tuple(z.shape)}")
