"""Shared pieces of every objective: the registry, the output type, the input check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Optional, Tuple, Type

import torch
from torch import nn

from ssl_ray.config.hparams import Hparams
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


class Objective(nn.Module):
    """Base of every objective. Its hyperparameters are a typed, frozen dataclass (``Hparams``, declared in
    ``ssl_ray.config.hparams`` with their defaults, ranges and symbols): the trainer hands the config's own
    object over, ``VICReg(VICRegHparams(lam=10.0))``; ``VICReg(lam=10)`` parses keywords into it. Either way the
    range check ran when that object was made (``config.hparams.check_ranges``, from one place only)."""

    name: ClassVar[str] = "objective"
    Hparams: ClassVar[Type[Hparams]]
    # The hyperparameter that weights each logged term, where one does (reports weight the terms with it).
    term_weights: ClassVar[Dict[str, str]] = {}
    # How a report groups the weighted terms (default: one group per weighted term).
    term_groups: ClassVar[Dict[str, Tuple[str, ...]]] = {}

    def __init__(self, params: Optional[Hparams] = None, **hparams: Any):
        super().__init__()
        if params is None:
            params = self.Hparams.parse(hparams)
        elif hparams or type(params) is not self.Hparams:
            raise TypeError(
                f"{type(self).__name__} takes one {self.Hparams.__name__} or keywords, "
                f"got {type(params).__name__} and {sorted(hparams)}"
            )
        self.params = params
        for key, value in params.as_dict().items():  # self.lam, self.mu, ...: the formulas read them so
            setattr(self, key, value)

    @property
    def target_momentum(self) -> float:
        """The EMA momentum of a target encoder the training loop keeps for this objective; 0: none.
        An objective that takes one gets its embeddings as ``objective(z, target=...)``."""
        return 0.0

    @property
    def needs_target_encoder(self) -> bool:
        return self.target_momentum > 0
