"""SSL objectives behind one registry.

Contract (docs/objectives.md; each objective's module docstring states its formula):
``build_objective(name, **hparams) -> torch.nn.Module``. The module is called on ``z`` of shape
``(B, V, D)`` -- V >= 2 views of each of B images -- and returns an :class:`ObjectiveOutput` with
``.loss`` (a scalar tensor with gradient) and ``.terms`` (a dict of detached, unweighted components for
logging).

This package imports neither ray nor mlflow.
"""

from __future__ import annotations

from typing import Any

import torch

from ssl_ray.config import ObjectiveConfig

# Importing each module registers its objective.
from ssl_ray.objectives import arb, barlow, mmcr, simclr, vicreg  # noqa: F401,E402
from ssl_ray.objectives.base import OBJECTIVES, Objective, ObjectiveOutput, check_views


def build_objective(name: str, **hparams: Any) -> torch.nn.Module:
    """Return the objective registered as ``name``, built with ``hparams`` (parsed into its typed
    hyperparameters, which range-check themselves)."""
    return OBJECTIVES.get(name)(**hparams)


def objective_from_config(cfg: ObjectiveConfig) -> torch.nn.Module:
    """The objective of a (validated) config, given its typed hyperparameters as they are."""
    return OBJECTIVES.get(cfg.name)(cfg.params)


__all__ = ["OBJECTIVES", "Objective", "ObjectiveOutput", "build_objective", "check_views", "objective_from_config"]
