"""One optimization step of each training mode, and the EMA target-encoder update: pure torch."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ssl_ray.objectives import ObjectiveOutput
from ssl_ray.train.precision import Precision, autocast, prepare_input


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    """``theta_t <- m * theta_t + (1 - m) * theta`` for parameters; buffers (BN statistics) are copied."""
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1.0 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers()):
        bt.copy_(bo)


def ssl_step(
    model, objective, views: torch.Tensor, target_model=None, precision: Optional[Precision] = None
) -> tuple[ObjectiveOutput, torch.Tensor]:
    """The objective on the embeddings of ``views`` (B, V, C, H, W); with a target encoder, its
    gradient-free embeddings of the same views go to the objective as ``target``. Returns the
    objective's output and the embeddings (B, V, D). Under ``precision``'s autocast only the networks
    run in bf16; the objective gets fp32 embeddings."""
    b, v = views.shape[:2]
    flat = prepare_input(views.flatten(0, 1), precision)
    with autocast(flat.device, precision):
        z = model(flat)
        if target_model is not None:
            with torch.no_grad():
                z_target = target_model(flat)
    z = z.float().view(b, v, -1)
    if target_model is None:
        return objective(z), z
    return objective(z, target=z_target.float().view(b, v, -1)), z


def supervised_step(
    model, x: torch.Tensor, y: torch.Tensor, precision: Optional[Precision] = None
) -> tuple[ObjectiveOutput, torch.Tensor]:
    """Cross-entropy of the classifier (the projector's last layer) on the labels; returns it and the logits."""
    x = prepare_input(x, precision)
    with autocast(x.device, precision):
        logits = model(x)
    logits = logits.float()
    loss = F.cross_entropy(logits, y)
    acc = (logits.detach().argmax(1) == y).float().mean()
    return ObjectiveOutput(loss=loss, terms={"cross_entropy": loss.detach(), "accuracy": acc}), logits
