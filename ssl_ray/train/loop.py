"""``train_loop_per_worker``: the whole SSL training step of one Ray Train worker.

State leaves a worker only through ``ray.train.report(metrics, checkpoint=...)`` (uploaded in the
background, in order) and comes back only
through ``ray.train.get_checkpoint()``. A checkpoint (``ssl_ray.train.state``) is written at every
epoch the probes read (epoch 0 is the initialization) and every ``train.resume_every`` epochs, so a
restarted worker group loses at most that much work; the ``probed`` flag in the report tells them apart.
Rank 0 logs ``train/loss``, ``train/<term>`` and ``train/embedding_std`` to the trial's MLflow run, with
step = epoch. A non-finite loss or a collapsed embedding (``ssl_ray.train.health``) ends the run early
with ``status`` and ``stop_reason`` in its last report and as MLflow tags.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import time
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
import ray
import ray.train
import ray.train.torch
from ray.train import CheckpointUploadMode

from ssl_ray.config import ExperimentConfig
from ssl_ray.data.loaders import build_train_views
from ssl_ray.objectives import ObjectiveOutput, build_objective
from ssl_ray.probes.engine import model_from_config
from ssl_ray.train.health import EpochHealth, verdict
from ssl_ray.train.optim import build_optimizer, build_scheduler
from ssl_ray.train.precision import Precision, autocast, prepare_input, prepare_module, resolve
from ssl_ray.train.state import checkpoint_dir_name, load_state, new_generation, resume_state, save_state, set_rng_state


# Reports go through Ray Train's upload thread: its result queue holds one report and its controller
# takes it on a poll (every 2 s by default), so a synchronous report after a short epoch would wait for
# that poll; the thread keeps the reports in order, and the worker waits for it before it ends.
ASYNC = CheckpointUploadMode.ASYNC
# The controller's poll interval, which also bounds how long a reported checkpoint waits before Ray Train
# registers it (what a restarted worker group resumes from). Ray Train passes RAY_TRAIN_* variables of the
# process that builds the trainer on to its controller; a value already in the environment wins.
TRAINER_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}


def set_trainer_env() -> None:
    """Call before building a ``TorchTrainer`` for ``train_loop_per_worker``."""
    for k, v in TRAINER_ENV.items():
        os.environ.setdefault(k, v)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    """``theta_t <- m * theta_t + (1 - m) * theta`` for parameters; buffers (BN statistics) are copied."""
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1.0 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers()):
        bt.copy_(bo)


def ssl_step(model, objective, views: torch.Tensor, target_model=None,
             precision: Optional[Precision] = None) -> tuple[ObjectiveOutput, torch.Tensor]:
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


def supervised_step(model, x: torch.Tensor, y: torch.Tensor,
                    precision: Optional[Precision] = None) -> tuple[ObjectiveOutput, torch.Tensor]:
    """Cross-entropy of the classifier (the projector's last layer) on the labels; returns it and the logits."""
    x = prepare_input(x, precision)
    with autocast(x.device, precision):
        logits = model(x)
    logits = logits.float()
    loss = F.cross_entropy(logits, y)
    acc = (logits.detach().argmax(1) == y).float().mean()
    return ObjectiveOutput(loss=loss, terms={"cross_entropy": loss.detach(), "accuracy": acc}), logits


def _agree(values: list[float], world: int, device) -> list[float]:
    """Sum ``values`` over the ranks (every rank must take the same stop decision)."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _gather_node_ids(world: int) -> list[str]:
    """The Ray node id of every rank, in rank order (one all_gather)."""
    node = ray.get_runtime_context().get_node_id()
    if world == 1:
        return [node]
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, node)
    return [str(n) for n in out]


def _backend(world: int) -> str:
    if world == 1:
        return "none"
    import torch.distributed as dist

    return str(dist.get_backend())


def _resume(ckpt, writer_tags: Dict[str, Any]) -> tuple[Dict[str, Any], Optional[str]]:
    """The state to resume from and, after a fallback past a damaged checkpoint, a generation suffix
    for the checkpoint directories written from now on."""
    resumed = resume_state(ckpt)
    writer_tags["ssl_ray.resumed_from"] = f"epoch {int(resumed.state['epoch'])} ({os.path.basename(resumed.source)})"
    if not resumed.fell_back:
        return resumed.state, None
    writer_tags["ssl_ray.checkpoint_fallback"] = "; ".join(f"{p}: {why}" for p, why in resumed.skipped)[:4000]
    return resumed.state, new_generation()


def train_loop_per_worker(loop_config: Dict[str, Any]) -> None:
    from ssl_ray.faults import maybe_fail

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

    tags: Dict[str, Any] = {}
    start_epoch, generation, state = 0, None, None
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        state, generation = _resume(ckpt, tags)
    elif t.init_checkpoint:
        model.load_state_dict(load_state(t.init_checkpoint)["model"])
        tags["ssl_ray.init_checkpoint"] = t.init_checkpoint
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start_epoch = int(state["epoch"]) + 1
    # An EMA target encoder for objectives that take one (MMCR with momentum > 0).
    momentum = float(getattr(objective, "momentum", 0.0) or 0.0)
    target_model = None
    if momentum > 0 and not supervised:
        target_model = copy.deepcopy(model).to(device)
        if state is not None and "target_model" in state:
            target_model.load_state_dict(state["target_model"])
        target_model.train()
        for p in target_model.parameters():
            p.requires_grad_(False)
    precision = resolve(t.amp, t.channels_last, t.sync_batchnorm, device, world)
    model = ray.train.torch.prepare_model(prepare_module(model, precision))
    if target_model is not None:
        target_model = prepare_module(target_model, dataclasses.replace(precision, sync_batchnorm=False))
    nodes = _gather_node_ids(world)

    writer = None
    if rank == 0 and loop_config.get("mlflow_run_id"):
        from ssl_ray.tracking import MetricWriter

        writer = MetricWriter(loop_config["mlflow_uri"], loop_config["mlflow_run_id"])
        writer.set_tags({"ssl_ray.loader": type(batches).__name__, "ssl_ray.steps_per_epoch": steps_per_epoch,
                         "ssl_ray.world_size": world, "ssl_ray.precision": precision.describe(),
                         "ssl_ray.train.nodes": ",".join(nodes), "ssl_ray.ddp_backend": _backend(world), **tags})

    probed = set(t.checkpoint_schedule())
    kept = set(t.checkpoint_epochs_kept())

    def report(epoch: int, metrics: Dict[str, float], stop: Optional[tuple[str, str]] = None) -> None:
        if writer is not None and metrics:
            writer.log(metrics, step=epoch)
        payload = {"epoch": epoch, "probed": int(epoch in probed), **{k.replace("/", "_"): v for k, v in metrics.items()}}
        if stop is not None:  # no checkpoint of a diverged or collapsed state
            payload.update(status=stop[0], stop_reason=stop[1])
            if writer is not None:
                writer.set_tags({"ssl_ray.status": stop[0], "ssl_ray.stop_reason": stop[1]})
            ray.train.report(payload)
        elif epoch in kept:
            ckpt = None
            if rank == 0:
                tmp = tempfile.mkdtemp(prefix="ssl_ray_ckpt_")  # Ray deletes it once uploaded
                save_state(tmp, model=_unwrap(model), optimizer=optimizer, scheduler=scheduler, epoch=epoch,
                           cfg=cfg.to_dict(), mlflow_run_id=loop_config.get("mlflow_run_id"), target_model=target_model)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(payload, checkpoint=ckpt, checkpoint_dir_name=checkpoint_dir_name(epoch, generation),
                             checkpoint_upload_mode=ASYNC)
        else:
            ray.train.report(payload, checkpoint_upload_mode=ASYNC)

    if start_epoch == 0:
        report(0, {})
        start_epoch = 1

    # Throughput: each epoch's window runs from the end of the previous epoch's steps, so it includes
    # that epoch's report, checkpoint and MLflow write.
    mark = time.perf_counter()
    for epoch in range(start_epoch, t.epochs + 1):
        model.train()
        batches.set_epoch(epoch)
        totals: Dict[str, Any] = {}
        health = EpochHealth()
        images = 0
        for step, (views, labels, _, _) in enumerate(batches):
            maybe_fail("train.step", epoch=epoch, step=step, rank=rank)
            images += views.shape[0]
            if supervised:
                out, z = supervised_step(model, views[:, 0].to(device, non_blocking=True),
                                         labels.to(device, non_blocking=True), precision)
            else:
                out, z = ssl_step(model, objective, views.to(device, non_blocking=True), target_model, precision)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            scheduler.step()
            if target_model is not None:
                ema_update(target_model, _unwrap(model), momentum)
            # sums stay on the device: no step waits for the GPU to report a number
            health.update(out.loss, z)
            totals["train/loss"] = totals.get("train/loss", 0.0) + out.loss.detach().float()
            for k, val in out.terms.items():
                totals[f"train/{k}"] = totals.get(f"train/{k}", 0.0) + torch.as_tensor(val).detach().float()
        metrics = {k: float(v) / steps_per_epoch for k, v in totals.items()}  # waits for the epoch's last step
        now = time.perf_counter()
        metrics["train/images_per_s"] = images * world / (now - mark)  # global: every rank runs the same count
        mark = now
        metrics["train/lr"] = scheduler.get_last_lr()[0]
        nonfinite, std_sum, steps = _agree([health.nonfinite_steps, health.std_sum, health.steps], world, device)
        metrics["train/embedding_std"] = std_sum / max(steps, 1)
        stop = verdict(int(nonfinite), metrics["train/embedding_std"], t.collapse_std, epoch)
        report(epoch, metrics, stop)
        if stop is not None:
            return
