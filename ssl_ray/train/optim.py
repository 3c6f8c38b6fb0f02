"""Optimizers and the learning-rate schedule (linear warm-up, then cosine decay to 0)."""

from __future__ import annotations

import math

import torch

from ssl_ray.config import OptimConfig
from ssl_ray.registry import Registry

OPTIMIZERS = Registry("optimizer")  # name -> (params, lr, weight_decay) -> torch.optim.Optimizer


class LARS(torch.optim.Optimizer):
    """LARS: Layer-wise Adaptive Rate Scaling (You, Gitman, Ginsburg, 2017), as VICReg and Barlow
    Twins use it (facebookresearch/vicreg ``main_vicreg.py``).

    For a parameter p with gradient g (weight matrices and kernels)::

        u = g + weight_decay * p
        u = u * eta * ||p|| / ||u||        (when both norms are > 0)
        m = momentum * m + u ;  p = p - lr * m

    Biases and normalization parameters (every 1-D parameter) are excluded: no weight decay and no
    adaptation, only momentum SGD.
    """

    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                u = p.grad
                if p.ndim > 1:
                    u = u.add(p, alpha=group["weight_decay"])
                    p_norm, u_norm = torch.norm(p), torch.norm(u)
                    trust = torch.where(
                        (p_norm > 0) & (u_norm > 0), group["eta"] * p_norm / u_norm, torch.ones_like(p_norm)
                    )
                    u = u.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(u)
                p.add_(mu, alpha=-group["lr"])
        return loss


def build_optimizer(params, cfg: OptimConfig, world_size: int = 1) -> torch.optim.Optimizer:
    """The base learning rate is ``lr * global_batch / 256`` (Goyal et al., 2017's linear scaling rule)."""
    lr = cfg.lr * cfg.batch_size * world_size / 256
    return OPTIMIZERS.get(cfg.optimizer)(params, lr=lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


@OPTIMIZERS.register("lars")
def _lars(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return LARS(params, lr=lr, weight_decay=weight_decay)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base lr: ``step/warmup`` during warm-up, then ``(1 + cos(pi * t)) / 2``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def build_scheduler(
    opt: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup_steps, total_steps))


def rescale_lr(optimizer: torch.optim.Optimizer, scheduler, factor: float) -> None:
    """Multiply the learning rate of a restored optimizer and its schedule by ``factor``: a trial that continues
    from a checkpoint trained at another ``optim.lr`` (PBT's exploit and perturb) trains at its own, on the
    same warm-up/cosine position."""
    scheduler.base_lrs = [b * factor for b in scheduler.base_lrs]
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
