"""Where a worker's epoch goes: the trial's MLflow run (rank 0) and ``ray.train.report``, with a checkpoint at the
kept epochs; and the tags that say how the worker group trained (its nodes, its DDP backend)."""

from __future__ import annotations

import tempfile
from typing import Dict, Optional

import ray
import ray.train
from ray.train import CheckpointUploadMode

from ssl_ray import tracking as tk
from ssl_ray.checkpoints import checkpoint_dir_name
from ssl_ray.metric_log import MetricWriter
from ssl_ray.train.online import ONLINE
from ssl_ray.train.run import Run
from ssl_ray.train.state import save_state
from ssl_ray.train.steps import unwrap

# Reports go through Ray Train's upload thread: its result queue holds one report and its controller
# takes it on a poll (ssl_ray.sweep.environment), so a synchronous report after a short epoch would wait
# for that poll; the thread keeps the reports in order, and the worker waits for it before it ends.
ASYNC = CheckpointUploadMode.ASYNC


class Reporter:
    """Where an epoch's results go: the trial's MLflow run (rank 0) and ``ray.train.report``, with a
    checkpoint at the kept epochs."""

    def __init__(self, run: Run, mlflow_uri: Optional[str], run_id: Optional[str]):
        t = run.cfg.train
        self.run, self.run_id = run, run_id
        self.probed, self.kept = set(t.checkpoint_schedule()), set(t.checkpoint_epochs_kept())
        self.writer = None
        if run.rank == 0 and run_id:
            self.writer = MetricWriter(mlflow_uri, run_id)

    def start(self, nodes: list, backend: str) -> None:
        if self.writer is not None:
            r = self.run
            self.writer.set_tags(
                {
                    tk.TAG_LOADER: type(r.batches).__name__,
                    tk.TAG_STEPS_PER_EPOCH: len(r.batches),
                    tk.TAG_WORLD_SIZE: r.world,
                    tk.TAG_PRECISION: r.precision.describe(),
                    tk.TAG_TRAIN_NODES: ",".join(nodes),
                    tk.TAG_DDP_BACKEND: backend,
                    **r.tags,
                }
            )

    def __call__(self, epoch: int, metrics: Dict[str, float], stop: Optional[tuple] = None) -> None:
        r = self.run
        if self.writer is not None and metrics:
            self.writer.log(metrics, step=epoch)
        # train/<x> reaches Tune as train_<x>; online/<x> keeps its name, which schedulers and searchers read
        payload = {
            "epoch": epoch,
            "probed": int(epoch in self.probed),
            **{k if k.startswith(ONLINE) else k.replace("/", "_"): v for k, v in metrics.items()},
        }
        if stop is not None:  # no checkpoint of a diverged or collapsed state
            status = tk.TrialStatus(stop[0]).value
            payload.update(status=status, stop_reason=stop[1])
            if self.writer is not None:
                self.writer.set_tags({tk.TAG_STATUS: status, tk.TAG_STOP_REASON: stop[1]})
            ray.train.report(payload)
        elif epoch in self.kept:
            ckpt = None
            if r.rank == 0:
                tmp = tempfile.mkdtemp(prefix="ssl_ray_ckpt_")  # Ray deletes it once uploaded
                save_state(
                    tmp,
                    model=unwrap(r.model),
                    optimizer=r.optimizer,
                    scheduler=r.scheduler,
                    epoch=epoch,
                    cfg=r.cfg.to_dict(),
                    mlflow_run_id=self.run_id,
                    target_model=r.target_model,
                )
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(
                payload,
                checkpoint=ckpt,
                checkpoint_dir_name=checkpoint_dir_name(epoch, r.generation),
                checkpoint_upload_mode=ASYNC,
            )
        else:
            ray.train.report(payload, checkpoint_upload_mode=ASYNC)


def gather_node_ids(world: int) -> list[str]:
    """The Ray node id of every rank, in rank order (one all_gather); ``local`` in Ray Train's local mode
    (``ScalingConfig(num_workers=0)``: the loop in the calling process, no Ray cluster started)."""
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    if world == 1:
        return [node]
    import torch.distributed as dist

    out: list = [None] * world
    dist.all_gather_object(out, node)
    return [str(n) for n in out]


def ddp_backend(world: int) -> str:
    if world == 1:
        return "none"
    import torch.distributed as dist

    return str(dist.get_backend())
