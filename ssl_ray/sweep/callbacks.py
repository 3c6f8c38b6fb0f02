"""Tune callback: when a trial completes, fan its missing probes out as Ray tasks (without blocking).

The callback is given the driver's live :class:`ProbeFanout`. Tune pickles its run config (callbacks
included) into the sweep directory, and a restored sweep unpickles it: the fan-out is left out of the
pickle, and :func:`attach_fanout` hands the restored callback the new driver's, so a resumed sweep
probes through its own fan-out.

The same planning serves a trial that finished (its last result lists its checkpoints), a trial the
scheduler stopped early (its checkpoints are read from its Ray Train directory), and, on resume, every
trial that had finished before the crash: only the (checkpoint, layer) pairs whose metrics are not all
in MLflow yet are submitted.
"""

from __future__ import annotations

import json
from typing import Optional

from ray import tune

from ssl_ray.checkpoints import scan_checkpoints, trial_dir as trial_dir_of
from ssl_ray.config import ExperimentConfig
from ssl_ray.probes.backfill import TrialCheckpoints, missing_work
from ssl_ray.probes.fanout import ProbeFanout
from ssl_ray.tracking import TAG_STATUS, TAG_STOP_REASON, TrialStatus, client, find_trial_run

def trial_checkpoints(uri: str, parent_run_id: str, sweep_dir: str, trial_id: str, result: dict) -> Optional[TrialCheckpoints]:
    """What a completed trial's probes read, from its last Tune result; None if it never trained."""
    if "config" not in result:
        return None
    cfg = ExperimentConfig.from_dict(result["config"])
    trial_dir = trial_dir_of(sweep_dir, trial_id)
    if "checkpoints" in result and "mlflow_run_id" in result:
        checkpoints = [(int(e), p) for e, p in json.loads(result["checkpoints"])]
        return TrialCheckpoints(result["mlflow_run_id"], trial_id, trial_dir, checkpoints, cfg)
    run_id = find_trial_run(uri, parent_run_id, trial_id)  # stopped by the scheduler before its trial function returned
    if run_id is None or not trial_dir.is_dir():
        return None
    return TrialCheckpoints(run_id, trial_id, trial_dir, scan_checkpoints(trial_dir, cfg.train.checkpoint_schedule()), cfg)


def submit_missing(fanout: ProbeFanout, trial: TrialCheckpoints) -> int:
    """Queue the probes this trial does not have in MLflow yet; returns the layer tasks queued."""
    n = 0
    for epoch, path, layers in missing_work(fanout.mlflow_uri, trial):
        n += fanout.submit(trial.trial_id, trial.run_id, [(epoch, path)], layers)
    return n


class ProbeOnCompleteCallback(tune.Callback):
    def __init__(self, sweep_dir: str, parent_run_id: str, fanout: Optional[ProbeFanout]):
        self.sweep_dir, self.parent_run_id, self.fanout = sweep_dir, parent_run_id, fanout

    def __getstate__(self) -> dict:  # a running fan-out belongs to one driver: never pickled with the sweep
        return {**self.__dict__, "fanout": None}

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        plan = trial_checkpoints(self.fanout.mlflow_uri, self.parent_run_id, self.sweep_dir, trial.trial_id, result)
        if plan is None:
            return
        if "checkpoints" not in result:  # the scheduler stopped it
            c = client(self.fanout.mlflow_uri)
            epoch = int(result.get("epoch", -1))
            if epoch >= plan.config.train.epochs:  # at its last epoch: it had finished training
                c.set_tag(plan.run_id, TAG_STATUS, TrialStatus.FINISHED.value)
                c.set_terminated(plan.run_id, status="FINISHED")
            else:
                c.set_tag(plan.run_id, TAG_STATUS, TrialStatus.STOPPED.value)
                c.set_tag(plan.run_id, TAG_STOP_REASON, f"stopped by the scheduler after epoch {epoch}")
                c.set_terminated(plan.run_id, status="KILLED")
        submit_missing(self.fanout, plan)

    def on_step_end(self, iteration, trials, **info):
        self.fanout.poll(timeout=0.0)


def attach_fanout(tuner, fanout: ProbeFanout) -> None:
    """Give a restored sweep's probe callback this driver's fan-out. Tune restores callbacks by unpickling
    its run config and takes no new ones on restore; the restored run config is the tuner's."""
    callbacks = tuner._local_tuner.get_run_config().callbacks or []  # ray 2.60: the Tuner keeps it there
    found = [cb for cb in callbacks if isinstance(cb, ProbeOnCompleteCallback)]
    if not found:
        raise RuntimeError("the restored sweep has no probe callback")
    for cb in found:
        cb.fanout = fanout
