"""Shared pieces of every objective: the registry, the output type, the input check."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import ClassVar, Dict, Tuple

import torch
from torch import nn

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
    """Base of every objective: hyperparameter ranges are declared, checked once by :meth:`check_hparams`
    (config validation calls it before Ray starts) and again when the module is built."""

    name: ClassVar[str] = "objective"
    # The hyperparameter that weights each logged term, where one does (reports weight the terms with it).
    term_weights: ClassVar[Dict[str, str]] = {}
    # How a report groups the weighted terms (default: one group per weighted term).
    term_groups: ClassVar[Dict[str, Tuple[str, ...]]] = {}
    # The symbols its paper writes its hyperparameters with (reports label axes and columns with them).
    symbols: ClassVar[Dict[str, str]] = {}
    nonnegative: ClassVar[Tuple[str, ...]] = ()
    positive: ClassVar[Tuple[str, ...]] = ()
    positive_int: ClassVar[Tuple[str, ...]] = ()
    below_one: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def hparams(cls) -> Dict[str, float]:
        """The objective's hyperparameters and their defaults, in the order of its constructor."""
        return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}

    @classmethod
    def check_hparams(cls, **hp) -> None:
        """Raise ValueError naming the first unknown or out-of-range hyperparameter (defaults fill the rest)."""
        params = cls.hparams()
        for key in hp:
            if key not in params:
                raise ValueError(f"unknown hyperparameter objective.{key} for {cls.name!r} (known: {', '.join(params)})")
        params.update(hp)
        for key in cls.nonnegative:
            if params[key] < 0:
                raise ValueError(f"objective.{key} must be >= 0 for {cls.name}, got {params[key]!r}")
        for key in cls.positive:
            if params[key] <= 0:
                raise ValueError(f"objective.{key} must be > 0 for {cls.name}, got {params[key]!r}")
        for key in cls.positive_int:
            if params[key] < 1 or int(params[key]) != params[key]:
                raise ValueError(f"objective.{key} must be a positive integer for {cls.name}, got {params[key]!r}")
        for key in cls.below_one:
            if params[key] >= 1:
                raise ValueError(f"objective.{key} must be < 1 for {cls.name}, got {params[key]!r}")

    @property
    def target_momentum(self) -> float:
        """The EMA momentum of a target encoder the training loop keeps for this objective; 0: none.
        An objective that takes one gets its embeddings as ``objective(z, target=...)``."""
        return 0.0

    @property
    def needs_target_encoder(self) -> bool:
        return self.target_momentum > 0
