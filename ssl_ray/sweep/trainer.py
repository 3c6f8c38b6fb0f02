"""How one training run is handed to Ray Train: the one ``TorchTrainer`` the trials and the target bank both use.

The worker receives the typed, validated :class:`~ssl_ray.config.ExperimentConfig` as it is
(``train_loop_config["experiment"]``; Ray pickles it to each worker): nothing on the way parses it again.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

import ray.train
from ray.train.torch import TorchTrainer

from ssl_ray.config import ExperimentConfig, TrainConfig
from ssl_ray.train.loop import train_loop_per_worker


def make_trainer(
    exp: ExperimentConfig,
    *,
    name: str,
    storage_path: str,
    mlflow_uri: str,
    mlflow_run_id: str,
    callbacks: Iterable = (),
    start_from: Optional[str] = None,
) -> TorchTrainer:
    """A ``TorchTrainer`` of ``train_loop_per_worker`` on ``exp``: its run ``name`` under ``storage_path`` (the same
    name and path again resume from its latest checkpoint), every checkpoint kept (the probes read each scheduled
    epoch), ``train.max_failures`` restarts of the worker group, rank 0 logging to ``mlflow_run_id``.
    ``start_from``: a checkpoint to continue from when Ray Train has none of this run (PBT's exploit)."""
    if not isinstance(exp, ExperimentConfig):
        raise TypeError(f"make_trainer takes the validated ExperimentConfig, got {type(exp).__name__}")
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "experiment": exp,
            "mlflow_uri": mlflow_uri,
            "mlflow_run_id": mlflow_run_id,
            "start_from": start_from,
        },
        scaling_config=scaling_config(exp.train),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=list(callbacks),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None),
            failure_config=ray.train.FailureConfig(max_failures=exp.train.max_failures),
        ),
    )


def scaling_config(t: TrainConfig) -> ray.train.ScalingConfig:
    """A trial's Ray Train workers: ``train.workers`` x (``cpus_per_worker`` CPUs, ``gpus()`` GPUs), placed
    with ``train.placement_strategy``."""
    resources = {"CPU": t.cpus_per_worker}
    if t.gpus() > 0:
        resources["GPU"] = t.gpus()
    return ray.train.ScalingConfig(
        num_workers=t.workers,
        use_gpu=t.gpus() > 0,
        resources_per_worker=resources,
        placement_strategy=t.placement_strategy,
    )


def probed_checkpoints(reported) -> List[tuple[int, str]]:
    """``[(epoch, path)]`` of the checkpoints the probes read, from Ray Train's ``(checkpoint, metrics)``
    list in report order. Resume-only checkpoints are left out; where an epoch was checkpointed twice (a
    re-run after falling back past a damaged checkpoint), the later one wins."""
    by_epoch = {}
    for ckpt, m in reported:
        if m.get("probed", 1):
            by_epoch[int(m["epoch"])] = ckpt.path
    return sorted(by_epoch.items())
