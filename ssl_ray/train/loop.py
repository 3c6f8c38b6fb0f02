"""``train_loop_per_worker``: the whole SSL training step of one Ray Train worker.

State leaves a worker only through ``ray.train.report(metrics, checkpoint=...)`` and comes back only
through ``ray.train.get_checkpoint()``. A checkpoint (at each scheduled epoch; epoch 0 is the
initialization) holds model, optimizer, scheduler, epoch, RNG state and the experiment config.
Rank 0 logs ``train/loss`` and ``train/<term>`` to the trial's MLflow run, with step = epoch.
"""

from __future__ import annotations

import copy
import os
import tempfile
from typing import Any, Dict

import torch
import torch.nn.functional as F
import ray.train
import ray.train.torch

from ssl_ray.config import ExperimentConfig
from ssl_ray.data.loaders import build_train_views
from ssl_ray.objectives import ObjectiveOutput, build_objective
from ssl_ray.probes.engine import CHECKPOINT_FILE, model_from_config
from ssl_ray.train.optim import build_optimizer, build_scheduler


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def save_state(path: str, model, optimizer, scheduler, epoch: int, cfg: Dict[str, Any], mlflow_run_id: str | None,
               target_model=None) -> None:
    extra = {"target_model": target_model.state_dict()} if target_model is not None else {}
    torch.save(
        {
            **extra,
            "model": _unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "rng": torch.get_rng_state(),
            "config": cfg,
            "mlflow_run_id": mlflow_run_id or "",
        },
        os.path.join(path, CHECKPOINT_FILE),
    )


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    """``theta_t <- m * theta_t + (1 - m) * theta`` for parameters; buffers (BN statistics) are copied."""
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1.0 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers()):
        bt.copy_(bo)


def ssl_step(model, objective, views: torch.Tensor, target_model=None) -> ObjectiveOutput:
    """The objective on the embeddings of ``views`` (B, V, C, H, W); with a target encoder, its
    gradient-free embeddings of the same views go to the objective as ``target``."""
    b, v = views.shape[:2]
    flat = views.flatten(0, 1)
    z = model(flat).view(b, v, -1)
    if target_model is None:
        return objective(z)
    with torch.no_grad():
        z_target = target_model(flat).view(b, v, -1)
    return objective(z, target=z_target)


def supervised_step(model, x: torch.Tensor, y: torch.Tensor) -> ObjectiveOutput:
    """Cross-entropy of the classifier (the projector's last layer) on the labels."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    acc = (logits.detach().argmax(1) == y).float().mean()
    return ObjectiveOutput(loss=loss, terms={"cross_entropy": loss.detach(), "accuracy": acc})


def train_loop_per_worker(loop_config: Dict[str, Any]) -> None:
    cfg = ExperimentConfig.from_dict(loop_config["experiment"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    t = cfg.train
    torch.manual_seed(t.seed)
    torch.set_num_threads(max(1, int(t.cpus_per_worker)))
    device = ray.train.torch.get_device()

    supervised = t.mode == "supervised"
    batches = build_train_views(cfg, rank, world, device, views=1 if supervised else cfg.data.views)
    steps_per_epoch = len(batches)

    model = model_from_config(cfg)
    objective = build_objective(cfg.objective.name, **cfg.objective.params)
    optimizer = build_optimizer(model.parameters(), cfg.optim, world)
    scheduler = build_scheduler(optimizer, cfg.optim.warmup_epochs * steps_per_epoch, t.epochs * steps_per_epoch)

    start_epoch = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start_epoch = int(state["epoch"]) + 1
    # An EMA target encoder for objectives that take one (MMCR with momentum > 0).
    momentum = float(getattr(objective, "momentum", 0.0) or 0.0)
    target_model = None
    if momentum > 0 and not supervised:
        target_model = copy.deepcopy(model).to(device)
        if ckpt is not None and "target_model" in state:
            target_model.load_state_dict(state["target_model"])
        target_model.train()
        for p in target_model.parameters():
            p.requires_grad_(False)
    model = ray.train.torch.prepare_model(model)

    writer = None
    if rank == 0 and loop_config.get("mlflow_run_id"):
        from ssl_ray.tracking import MetricWriter

        writer = MetricWriter(loop_config["mlflow_uri"], loop_config["mlflow_run_id"])
        writer.set_tags({"ssl_ray.loader": type(batches).__name__, "ssl_ray.steps_per_epoch": steps_per_epoch,
                         "ssl_ray.world_size": world})

    schedule = set(t.checkpoint_schedule())

    def report(epoch: int, metrics: Dict[str, float]) -> None:
        if writer is not None and metrics:
            writer.log(metrics, step=epoch)
        payload = {"epoch": epoch, **{k.replace("/", "_"): v for k, v in metrics.items()}}
        if epoch in schedule:
            with tempfile.TemporaryDirectory() as tmp:
                if rank == 0:
                    save_state(tmp, model, optimizer, scheduler, epoch, loop_config["experiment"], loop_config.get("mlflow_run_id"),
                               target_model)
                ray.train.report(payload, checkpoint=ray.train.Checkpoint.from_directory(tmp) if rank == 0 else None,
                                 checkpoint_dir_name=f"epoch_{epoch:04d}")
        else:
            ray.train.report(payload)

    if start_epoch == 0:
        report(0, {})
        start_epoch = 1

    for epoch in range(start_epoch, t.epochs + 1):
        model.train()
        batches.set_epoch(epoch)
        totals: Dict[str, float] = {}
        for views, labels, _, _ in batches:
            if supervised:
                out = supervised_step(model, views[:, 0].to(device, non_blocking=True), labels.to(device, non_blocking=True))
            else:
                out = ssl_step(model, objective, views.to(device, non_blocking=True), target_model)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            scheduler.step()
            if target_model is not None:
                ema_update(target_model, _unwrap(model), momentum)
            totals["train/loss"] = totals.get("train/loss", 0.0) + float(out.loss.detach())
            for k, val in out.terms.items():
                totals[f"train/{k}"] = totals.get(f"train/{k}", 0.0) + float(val)
        metrics = {k: v / steps_per_epoch for k, v in totals.items()}
        metrics["train/lr"] = scheduler.get_last_lr()[0]
        report(epoch, metrics)
