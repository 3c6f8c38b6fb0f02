"""``train_loop_per_worker``: the whole SSL training of one Ray Train worker, as named steps.

    run = build(cfg, ...)            data, model, objective, optimizer, schedule, precision, DDP
    start = restore(run, ...)        from Ray Train's checkpoint (a restart), or train.init_checkpoint
    for epoch in start..epochs:
        metrics = train_epoch(run)   one pass over the data; the epoch's mean loss and terms
        stop = verdict(...)          a non-finite loss or collapsed embedding ends the run
        online(epoch)                rank 0's kNN accuracy and RankMe (ssl_ray.train.online), when due
        report(run, epoch, ...)      MLflow (rank 0) and ray.train.report, with a checkpoint when kept

State leaves a worker only through ``ray.train.report(metrics, checkpoint=...)`` (uploaded in the
background, in order) and comes back only through ``ray.train.get_checkpoint()``. A checkpoint
(``ssl_ray.train.state``) is written at every epoch the probes read (epoch 0 is the initialization) and
every ``train.resume_every`` epochs, so a restarted worker group loses at most that much work; the
``probed`` flag in the report tells them apart. Rank 0 logs ``train/loss``, ``train/<term>`` and
``train/embedding_std`` and the online readings (``online/knn_val``, ``online/rankme``, ...) to the trial's
MLflow run, with step = epoch; a stopped run gets ``status`` and
``stop_reason`` in its last report and as MLflow tags.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from typing import Any, Dict, Optional

import ray
import ray.train
import ray.train.torch
import torch

from ssl_ray import tracking as tk
from ssl_ray.checkpoints import load_state, new_generation
from ssl_ray.config import ExperimentConfig
from ssl_ray.data.loaders import build_train_views
from ssl_ray.faults import maybe_fail
from ssl_ray.models.build import model_from_config
from ssl_ray.objectives import objective_from_config
from ssl_ray.train.health import EpochHealth, verdict
from ssl_ray.train.online import ONLINE, OnlineReader, read_due
from ssl_ray.train.optim import build_optimizer, build_scheduler, rescale_lr
from ssl_ray.train.precision import prepare_module, resolve
from ssl_ray.train.report import Reporter, ddp_backend, gather_node_ids
from ssl_ray.train.run import Run
from ssl_ray.train.state import resume_state, set_rng_state
from ssl_ray.train.steps import ema_update, ssl_step, supervised_step, unwrap


def build(cfg: ExperimentConfig, rank: int, world: int, device: torch.device) -> Run:
    """The data, the network, the objective, the optimizer and its warm-up/cosine schedule."""
    t = cfg.train
    torch.manual_seed(t.seed)
    torch.set_num_threads(max(1, int(t.cpus_per_worker)))
    batches = build_train_views(cfg, rank, world, device, views=1 if t.mode == "supervised" else cfg.data.views)
    steps = len(batches)
    model = model_from_config(cfg)
    optimizer = build_optimizer(model.parameters(), cfg.optim, world)
    scheduler = build_scheduler(optimizer, cfg.optim.warmup_epochs * steps, t.epochs * steps)
    return Run(cfg, rank, world, device, batches, model, objective_from_config(cfg.objective), optimizer, scheduler)


def restore(run: Run, checkpoint) -> int:
    """Load the state to continue from -- Ray Train's latest checkpoint on a restart (falling back past a
    damaged one), else the weights of ``train.init_checkpoint`` -- then set up precision, DDP and the target
    encoder. Returns the first epoch to train."""
    t, state = run.cfg.train, None
    if checkpoint is not None:
        resumed = resume_state(checkpoint)
        state = resumed.state
        run.tags[tk.TAG_RESUMED_FROM] = f"epoch {int(state['epoch'])} ({os.path.basename(resumed.source)})"
        if resumed.fell_back:
            run.tags[tk.TAG_CHECKPOINT_FALLBACK] = "; ".join(f"{p}: {why}" for p, why in resumed.skipped)[:4000]
            run.generation = new_generation()
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        saved_lr = float(state["config"]["optim"]["lr"])
        if saved_lr != run.cfg.optim.lr:  # a checkpoint of another trial (PBT), trained at another lr
            rescale_lr(run.optimizer, run.scheduler, run.cfg.optim.lr / saved_lr)
            run.tags[tk.TAG_LR_FROM] = f"{saved_lr:g} -> {run.cfg.optim.lr:g}"
        set_rng_state(state["rng"])
    elif t.init_checkpoint:
        run.model.load_state_dict(load_state(t.init_checkpoint)["model"])
        run.tags[tk.TAG_INIT_CHECKPOINT] = t.init_checkpoint
    if run.objective.needs_target_encoder and not run.supervised:
        run.target_model = copy.deepcopy(run.model).to(run.device)
        if state is not None and "target_model" in state:
            run.target_model.load_state_dict(state["target_model"])
        run.target_model.train()
        for p in run.target_model.parameters():
            p.requires_grad_(False)
    run.precision = resolve(t.amp, t.channels_last, t.sync_batchnorm, run.device, run.world)
    run.model = ray.train.torch.prepare_model(prepare_module(run.model, run.precision))
    if run.target_model is not None:
        run.target_model = prepare_module(run.target_model, dataclasses.replace(run.precision, sync_batchnorm=False))
    return 0 if state is None else int(state["epoch"]) + 1


def train_epoch(run: Run, epoch: int) -> tuple[Dict[str, float], EpochHealth, int]:
    """One pass over this worker's shard: ``({train/<name>: epoch mean}, health, images)``."""
    run.model.train()
    run.batches.set_epoch(epoch)
    totals: Dict[str, Any] = {}
    health, images = EpochHealth(), 0
    for step, (views, labels, _, _) in enumerate(run.batches):
        maybe_fail("train.step", epoch=epoch, step=step, rank=run.rank)
        images += views.shape[0]
        if run.supervised:
            out, z = supervised_step(
                run.model,
                views[:, 0].to(run.device, non_blocking=True),
                labels.to(run.device, non_blocking=True),
                run.precision,
            )
        else:
            out, z = ssl_step(
                run.model, run.objective, views.to(run.device, non_blocking=True), run.target_model, run.precision
            )
        run.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        if run.target_model is not None:
            ema_update(run.target_model, unwrap(run.model), run.objective.target_momentum)
        health.update(out.loss, z)  # sums stay on the device: no step waits for the GPU to report a number
        totals["loss"] = totals.get("loss", 0.0) + out.loss.detach().float()
        for k, val in out.terms.items():
            totals[k] = totals.get(k, 0.0) + torch.as_tensor(val).detach().float()
    steps = len(run.batches)
    return {tk.TRAIN + k: float(v) / steps for k, v in totals.items()}, health, images


def train_loop_per_worker(loop_config: Dict[str, Any]) -> None:
    """``loop_config``: ``experiment`` (the validated, normalized :class:`ExperimentConfig`, typed, as the sweep
    made it: ``sweep.trainer.make_trainer``), ``mlflow_uri``, ``mlflow_run_id``, and ``start_from``: a checkpoint
    to continue from when Ray Train has none of this run."""
    ctx = ray.train.get_context()
    cfg = loop_config["experiment"]
    if not isinstance(cfg, ExperimentConfig):
        raise TypeError(f"train_loop_per_worker takes the validated ExperimentConfig, got {type(cfg).__name__}")
    run = build(cfg, ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())
    start = restore(run, ray.train.get_checkpoint() or _start_from(loop_config.get("start_from")))
    report = Reporter(run, loop_config.get("mlflow_uri"), loop_config.get("mlflow_run_id"))
    report.start(gather_node_ids(run.world), ddp_backend(run.world))
    t = cfg.train
    reader = OnlineReader.from_config(cfg) if run.rank == 0 and t.online_every > 0 else None

    def online(epoch: int) -> Dict[str, float]:
        """Rank 0's online readings at the epochs they are due (the other ranks report none)."""
        if reader is None or not read_due(epoch, t.online_every, t.epochs):
            return {}
        t0 = time.perf_counter()
        readings = reader(unwrap(run.model), run.device, run.precision.amp)
        return {**readings, ONLINE + "seconds": time.perf_counter() - t0}

    if start == 0:
        report(0, online(0))  # the initialization
        start = 1
    # Throughput: each epoch's window runs from the end of the previous epoch's steps, so it includes
    # that epoch's report, checkpoint and MLflow write.
    mark = time.perf_counter()
    for epoch in range(start, cfg.train.epochs + 1):
        metrics, health, images = train_epoch(run, epoch)  # the float() of the means waits for the last step
        now = time.perf_counter()
        metrics[tk.TRAIN + "images_per_s"] = images * run.world / (now - mark)  # every rank runs the same count
        metrics[tk.TRAIN + "epoch_s"] = now - mark
        mark = now
        metrics[tk.TRAIN + "lr"] = run.scheduler.get_last_lr()[0]
        nonfinite, std_sum, steps = _agree(
            [health.nonfinite_steps, health.std_sum, health.steps], run.world, run.device
        )
        metrics[tk.TRAIN + "embedding_std"] = std_sum / max(steps, 1)
        stop = verdict(int(nonfinite), metrics[tk.TRAIN + "embedding_std"], cfg.train.collapse_std, epoch)
        metrics.update(online(epoch))
        report(epoch, metrics, stop)
        if stop is not None:
            return


def _start_from(path: Optional[str]):
    """Another run's checkpoint this run starts from, full state (PBT's exploit: ssl_ray/sweep/lineage.py)."""
    return ray.train.Checkpoint(path) if path else None


def _agree(values: list[float], world: int, device) -> list[float]:
    """Sum ``values`` over the ranks (every rank must take the same stop decision)."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
