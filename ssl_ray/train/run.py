"""What one Ray Train worker trains with: the data, the network, the objective, the optimizer and its schedule,
as ``ssl_ray.train.loop.build`` makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch

from ssl_ray.config import ExperimentConfig
from ssl_ray.train.precision import Precision


@dataclass
class Run:
    """Everything one worker trains with."""

    cfg: ExperimentConfig
    rank: int
    world: int
    device: torch.device
    batches: Any
    model: torch.nn.Module
    objective: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    precision: Optional[Precision] = None
    target_model: Optional[torch.nn.Module] = None  # the EMA target encoder of objectives that take one
    generation: Optional[str] = None  # set after falling back past a damaged checkpoint
    tags: Dict[str, Any] = field(default_factory=dict)  # what rank 0 tags the MLflow run with

    @property
    def supervised(self) -> bool:
        return self.cfg.train.mode == "supervised"
