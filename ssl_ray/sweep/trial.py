"""One Tune trial = a function trainable that builds and fits a Ray Train ``TorchTrainer``.

This is the Train-V2-inside-Tune pattern: the trainer's ``RunConfig(name=<trial id>)`` carries a
``TuneReportCallback`` that forwards each epoch's metrics to Tune. All checkpoints are kept
(``num_to_keep=None``) because the probes need every scheduled epoch. Re-running a trial with the
same name and storage path makes Ray Train resume from its latest checkpoint.
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

from ssl_ray.config import ExperimentConfig, flatten, get_path
from ssl_ray.tracking import TAG_TRIAL_DIR, client, get_or_create_trial_run
from ssl_ray.train.loop import train_loop_per_worker


@dataclass(frozen=True)
class SweepContext:
    """What every trial needs to know about its sweep (passed with ``tune.with_parameters``)."""

    sweep_dir: str
    mlflow_uri: str
    parent_run_id: str
    search_keys: tuple = ()


def trial_label(config: Dict[str, Any], keys: tuple) -> str:
    short = {"objective.name": "obj"}
    parts = []
    for k in keys:
        v = get_path(config, k)
        parts.append(f"{short.get(k, k.split('.')[-1])}={v:g}" if isinstance(v, float) else f"{short.get(k, k.split('.')[-1])}={v}")
    return ",".join(parts)


def run_trial(config: Dict[str, Any], ctx: SweepContext) -> None:
    exp = ExperimentConfig.from_dict(config).validate()
    tctx = tune.get_context()
    trial_id = tctx.get_trial_id()
    label = trial_label(config, ctx.search_keys)
    run_name = f"{trial_id} {label}".strip()
    run_id = get_or_create_trial_run(ctx.mlflow_uri, ctx.parent_run_id, trial_id, run_name, flatten(config))
    train_dir = Path(ctx.sweep_dir) / "train"
    client(ctx.mlflow_uri).set_tag(run_id, TAG_TRIAL_DIR, str(train_dir / trial_id))
    t = exp.train
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"experiment": config, "mlflow_uri": ctx.mlflow_uri, "mlflow_run_id": run_id},
        scaling_config=ray.train.ScalingConfig(
            num_workers=t.workers, use_gpu=t.use_gpu, resources_per_worker={"CPU": t.cpus_per_worker}
        ),
        run_config=ray.train.RunConfig(
            name=trial_id,
            storage_path=str(train_dir),
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None),
            failure_config=ray.train.FailureConfig(max_failures=t.max_failures),
        ),
    )
    result = trainer.fit()
    kept: List[tuple[int, str]] = sorted(
        {(int(m["epoch"]), c.path) for c, m in (result.best_checkpoints or [])}
    )
    final = result.metrics or {}
    tune.report(
        {
            "epoch": final.get("epoch", t.epochs),
            "train_loss": final.get("train_loss", float("nan")),
            "checkpoints": json.dumps(kept),
            "mlflow_run_id": run_id,
            "trial_label": label,
        }
    )
