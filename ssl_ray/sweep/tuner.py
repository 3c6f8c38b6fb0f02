"""Run a sweep: a Ray Tune ``Tuner`` over the search space, the probe fan-out, the MLflow parent run.

``run_sweep(cfg)`` expects a validated :class:`SweepConfig` (the CLI validates before calling).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import ray
from ray import tune

from ssl_ray.config import TRIAL_DRIVER_CPUS, SweepConfig, flatten
from ssl_ray.probes.fanout import TAG_STATUS, ProbeFanout
from ssl_ray.sweep.callbacks import ProbeOnCompleteCallback
from ssl_ray.sweep.trial import SweepContext, run_trial
from ssl_ray.tracking import client, get_or_create_parent_run


def init_ray(cfg: SweepConfig, verbose: bool = False) -> None:
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    kw = dict(include_dashboard=False, log_to_driver=verbose, configure_logging=True,
              logging_level="INFO" if verbose else "WARNING")
    if cfg.address:
        ray.init(address=cfg.address, **kw)
    else:
        ray.init(num_cpus=cfg.num_cpus, **kw)


def default_concurrency(cfg: SweepConfig) -> int:
    t = cfg.base.train
    per_trial = t.workers * t.cpus_per_worker
    total = ray.cluster_resources().get("CPU", 1)
    return max(1, int(total // per_trial))


def run_sweep(cfg: SweepConfig, verbose: bool = False, progress_stream=None) -> dict:
    """Run the sweep to the end, probes included. Returns ``{sweep_dir, parent_run_id, experiment, results}``."""
    storage = cfg.resolved_storage()
    sweep_dir = storage / cfg.name
    uri = cfg.resolved_mlflow_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    storage.mkdir(parents=True, exist_ok=True)
    parent = get_or_create_parent_run(uri, cfg.name, str(sweep_dir), {f"base.{k}": v for k, v in flatten(cfg.base.to_dict()).items()})

    init_ray(cfg, verbose)
    ctx = SweepContext(str(sweep_dir), uri, parent, tuple(cfg.search_space))
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), {"cpu": TRIAL_DRIVER_CPUS})  # it only drives a TorchTrainer
    fanout = ProbeFanout.from_config(uri, cfg.base.probe)
    tuner = tune.Tuner(
        trainable,
        param_space=cfg.param_space(),
        tune_config=tune.TuneConfig(
            num_samples=cfg.num_samples,
            max_concurrent_trials=cfg.max_concurrent_trials or default_concurrency(cfg),
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=str(storage),
            callbacks=[ProbeOnCompleteCallback(fanout)],
            verbose=1,
        ),
    )
    results = tuner.fit()
    fanout.drain(stream=progress_stream or sys.stderr)
    incomplete = [tp.trial_id for tp in fanout.trials.values() if tp.missing]
    c = client(uri)
    c.set_tag(parent, TAG_STATUS, "complete" if not incomplete else f"incomplete: {', '.join(incomplete)}")
    c.set_terminated(parent, status="FAILED" if results.errors else "FINISHED")
    return {"sweep_dir": str(sweep_dir), "parent_run_id": parent, "experiment": cfg.name, "results": results,
            "probe_failures": fanout.failures, "mlflow_uri": uri}
