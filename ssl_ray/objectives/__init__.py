"""SSL objectives behind one registry.

Contract (see DESIGN.md): ``build_objective(name, **hparams) -> torch.nn.Module``. The module is
called on ``z`` of shape ``(B, V, D)`` -- V >= 2 views of each of B images -- and returns an
:class:`ObjectiveOutput` with ``.loss`` (a scalar tensor with gradient) and ``.terms`` (a dict of
detached, unweighted components for logging).

This package imports neither ray nor mlflow.
"""

from __future__ import annotations

from typing import Any

import torch

from ssl_ray.objectives.base import OBJECTIVES, ObjectiveOutput, check_views
from ssl_ray.objectives import vicreg as _vicreg  # noqa: F401  (registers "vicreg")


def build_objective(name: str, **hparams: Any) -> torch.nn.Module:
    """Return the objective registered as ``name``, built with ``hparams``."""
    return OBJECTIVES.build(name, **hparams)


__all__ = ["OBJECTIVES", "ObjectiveOutput", "build_objective", "check_views"]
