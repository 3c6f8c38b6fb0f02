"""Tune callback: when a trial completes, fan its probes out as Ray tasks (without blocking)."""

from __future__ import annotations

import json

from ray import tune

from ssl_ray.config import ExperimentConfig
from ssl_ray.probes.engine import probe_layers
from ssl_ray.probes.fanout import ProbeFanout


def probe_plan(result: dict) -> tuple[list[tuple[int, str]], list[str]] | None:
    """From a finished trial's last result: its kept checkpoints and the layers to probe."""
    if "checkpoints" not in result or "mlflow_run_id" not in result:
        return None
    checkpoints = [(int(e), p) for e, p in json.loads(result["checkpoints"])]
    return checkpoints, probe_layers(ExperimentConfig.from_dict(result["config"]))


class ProbeOnCompleteCallback(tune.Callback):
    def __init__(self, fanout: ProbeFanout):
        self.fanout = fanout

    def on_trial_complete(self, iteration, trials, trial, **info):
        plan = probe_plan(trial.last_result or {})
        if plan is None:
            return
        checkpoints, layers = plan
        self.fanout.submit(trial.trial_id, trial.last_result["mlflow_run_id"], checkpoints, layers)

    def on_step_end(self, iteration, trials, **info):
        self.fanout.poll(timeout=0.0)
