"""One Tune trial = a function trainable that builds and fits a Ray Train ``TorchTrainer``.

This is the Train-V2-inside-Tune pattern: the trainer's ``RunConfig(name=<trial id>)`` carries a
``TuneReportCallback`` that forwards each epoch's metrics to Tune. All checkpoints are kept
(``num_to_keep=None``) because the probes need every scheduled epoch. Re-running a trial with the
same name and storage path makes Ray Train resume from its latest checkpoint, and the trial's MLflow
run is found again by its ``ssl_ray.trial_id`` tag, so a resumed trial keeps logging to the same run.

The run's ``ssl_ray.status`` tag says how the trial ended: ``finished``, ``diverged`` or ``collapsed``
(with ``ssl_ray.stop_reason``), or ``errored``; the same status goes to Tune in the trial's last result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import ray.train
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from ssl_ray.checkpoints import TRAIN_DIR, trial_dir
from ssl_ray.config import ExperimentConfig, flatten, get_path
from ssl_ray.sweep import environment
from ssl_ray.tracking import (HEALTH_STOPS, TAG_STATUS, TAG_STOP_REASON, TAG_TRIAL_DIR, TrialStatus, client,
                              get_or_create_trial_run)
from ssl_ray.train.loop import train_loop_per_worker


@dataclass(frozen=True)
class SweepContext:
    """What every trial needs to know about its sweep (passed with ``tune.with_parameters``)."""

    sweep_dir: str
    mlflow_uri: str
    parent_run_id: str
    varied_keys: tuple = ()  # the searched keys that take more than one value: what names a trial


def trial_label(config: Dict[str, Any], keys: tuple) -> str:
    """``lam=10 width=32``: the varied hyperparameters' values (the key's last part; ``objective.name`` as
    ``objective``)."""
    parts = []
    for k in keys:
        v = get_path(config, k)
        parts.append(f"{k.split('.')[-1]}={v:g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}")
    return " ".join(parts)


def run_trial(config: Dict[str, Any], ctx: SweepContext) -> None:
    exp = ExperimentConfig.from_dict(config)  # validated at the edge, with the whole search space
    tctx = tune.get_context()
    trial_id = tctx.get_trial_id()
    label = trial_label(config, ctx.varied_keys)
    run_name = label or trial_id  # the trial id is the run's ssl_ray.trial_id tag
    run_id = get_or_create_trial_run(ctx.mlflow_uri, ctx.parent_run_id, trial_id, run_name, flatten(config))
    c = client(ctx.mlflow_uri)
    c.set_tag(run_id, TAG_TRIAL_DIR, str(trial_dir(ctx.sweep_dir, trial_id)))
    c.set_tag(run_id, TAG_STATUS, TrialStatus.RUNNING.value)
    t = exp.train
    environment.apply()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"experiment": config, "mlflow_uri": ctx.mlflow_uri, "mlflow_run_id": run_id},
        scaling_config=scaling_config(t),
        run_config=ray.train.RunConfig(
            name=trial_id,
            storage_path=str(Path(ctx.sweep_dir) / TRAIN_DIR),
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None),
            failure_config=ray.train.FailureConfig(max_failures=t.max_failures),
        ),
    )
    try:
        result = trainer.fit()
    except BaseException as e:
        c.set_tag(run_id, TAG_STATUS, TrialStatus.ERRORED.value)
        c.set_tag(run_id, TAG_STOP_REASON, f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:4000])
        c.set_terminated(run_id, status="FAILED")
        raise
    final = result.metrics or {}  # the metrics of the latest checkpoint
    tags = c.get_run(run_id).data.tags
    status = record_end(c, run_id)
    tune.report(
        {
            "epoch": final.get("epoch", t.epochs),
            "train_loss": final.get("train_loss", float("nan")),
            "checkpoints": json.dumps(probed_checkpoints(result.best_checkpoints or [])),
            "mlflow_run_id": run_id,
            "trial_label": label,
            "status": status.value,
            "stop_reason": tags.get(TAG_STOP_REASON, "") if status != TrialStatus.FINISHED else "",
        }
    )


def record_end(c, run_id: str) -> TrialStatus:
    """Tag a trial whose training ended: finished, unless its rank 0 stopped it as diverged or collapsed. A
    finished trial keeps no stop reason: an earlier attempt's crash (before a resume) moves to
    ``ssl_ray.stop_reason.earlier``, for the record."""
    tags = c.get_run(run_id).data.tags
    status = TrialStatus(tags[TAG_STATUS]) if tags.get(TAG_STATUS) in HEALTH_STOPS else TrialStatus.FINISHED
    if status == TrialStatus.FINISHED:
        c.set_tag(run_id, TAG_STATUS, status.value)
        if tags.get(TAG_STOP_REASON):
            c.set_tag(run_id, TAG_STOP_REASON + ".earlier", tags[TAG_STOP_REASON])
            c.delete_tag(run_id, TAG_STOP_REASON)
    c.set_terminated(run_id, status="FINISHED" if status == TrialStatus.FINISHED else "FAILED")
    return status


def scaling_config(t) -> ray.train.ScalingConfig:
    """A trial's Ray Train workers: ``train.workers`` x (``cpus_per_worker`` CPUs, ``gpus()`` GPUs), placed
    with ``train.placement_strategy``."""
    resources = {"CPU": t.cpus_per_worker}
    if t.gpus() > 0:
        resources["GPU"] = t.gpus()
    return ray.train.ScalingConfig(num_workers=t.workers, use_gpu=t.gpus() > 0, resources_per_worker=resources,
                                   placement_strategy=t.placement_strategy)


def probed_checkpoints(reported) -> List[tuple[int, str]]:
    """``[(epoch, path)]`` of the checkpoints the probes read, from Ray Train's ``(checkpoint, metrics)``
    list in report order. Resume-only checkpoints are left out; where an epoch was checkpointed twice (a
    re-run after falling back past a damaged checkpoint), the later one wins."""
    by_epoch = {}
    for ckpt, m in reported:
        if m.get("probed", 1):
            by_epoch[int(m["epoch"])] = ckpt.path
    return sorted(by_epoch.items())
