"""Optimizers and the learning-rate schedule (linear warm-up, then cosine decay to 0)."""

from __future__ import annotations

import math

import torch

from ssl_ray.config import OptimConfig


def build_optimizer(params, cfg: OptimConfig, world_size: int = 1) -> torch.optim.Optimizer:
    """The base learning rate is ``lr * global_batch / 256`` (Goyal et al., 2017's linear scaling rule)."""
    lr = cfg.lr * cfg.batch_size * world_size / 256
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base lr: ``step/warmup`` during warm-up, then ``(1 + cos(pi * t)) / 2``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def build_scheduler(opt: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup_steps, total_steps))
