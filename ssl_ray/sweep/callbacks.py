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

import time
from typing import Optional, Sequence

from ray import tune

from ssl_ray.checkpoints import scan_checkpoints
from ssl_ray.checkpoints import trial_dir as trial_dir_of
from ssl_ray.config import TRIAL_DRIVER_CPUS, SearchDim
from ssl_ray.config.sweep import trial_experiment
from ssl_ray.probes.backfill import TrialCheckpoints, missing_work
from ssl_ray.probes.fanout import ProbeFanout
from ssl_ray.sweep.trial import is_closing_report, reported_checkpoints
from ssl_ray.tracking import TAG_STATUS, TAG_STOP_REASON, TrialStatus, client, find_trial_run


def trial_checkpoints(
    uri: str, parent_run_id: str, sweep_dir: str, trial_id: str, result: dict, dims: Sequence[SearchDim]
) -> Optional[TrialCheckpoints]:
    """What a completed trial's probes read, from its last Tune result; None if it never trained."""
    if "config" not in result:
        return None
    cfg = trial_experiment(result["config"], dims)
    trial_dir = trial_dir_of(sweep_dir, trial_id)
    if is_closing_report(result) and "mlflow_run_id" in result:
        checkpoints = reported_checkpoints(result)
        return TrialCheckpoints(result["mlflow_run_id"], trial_id, trial_dir, checkpoints, cfg)
    run_id = find_trial_run(uri, parent_run_id, trial_id)  # stopped by the scheduler before its trial function returned
    if run_id is None or not trial_dir.is_dir():
        return None
    return TrialCheckpoints(
        run_id, trial_id, trial_dir, scan_checkpoints(trial_dir, cfg.train.checkpoint_schedule()), cfg
    )


def record_scheduler_stop(uri: str, run_id: str, result: dict, epochs: int) -> None:
    """Tag a trial the scheduler stopped (its last result has no ``checkpoints``): finished if it had reached
    its last epoch, else stopped, with the epoch. Called when Tune completes the trial and again after the
    sweep (``reassert_scheduler_stops``): the stopped trial's own process may still be ending then, and its
    handler of the ending must not leave the trial recorded as errored."""
    c = client(uri)
    epoch = int(result.get("epoch", -1))
    if epoch >= epochs:  # at its last epoch: it had finished training
        c.set_tag(run_id, TAG_STATUS, TrialStatus.FINISHED.value)
        c.set_terminated(run_id, status="FINISHED")
    else:
        c.set_tag(run_id, TAG_STATUS, TrialStatus.STOPPED.value)
        c.set_tag(run_id, TAG_STOP_REASON, f"stopped by the scheduler after epoch {epoch}")
        c.set_terminated(run_id, status="KILLED")


def reassert_scheduler_stops(results, uri: str, parent_run_id: str, dims: Sequence[SearchDim]) -> None:
    """After ``tuner.fit()``, when no trial process is left: every trial the scheduler stopped, tagged so
    (:func:`record_scheduler_stop`)."""
    for r in results:
        m = r.metrics or {}
        config = r.config or m.get("config")  # a Result's metrics may leave the config out
        if r.error is not None or is_closing_report(m) or not config or "trial_id" not in m:
            continue
        run_id = find_trial_run(uri, parent_run_id, m["trial_id"])
        if run_id is not None:
            record_scheduler_stop(uri, run_id, m, trial_experiment(config, dims).train.epochs)


def submit_missing(fanout: ProbeFanout, trial: TrialCheckpoints) -> int:
    """Queue the probes this trial does not have in MLflow yet; returns the layer tasks queued."""
    n = 0
    for epoch, path, layers in missing_work(fanout.mlflow_uri, trial, writer=fanout.writer(trial.run_id)):
        n += fanout.submit(trial.trial_id, trial.run_id, [(epoch, path)], layers)
    return n


PROGRESS_EVERY_S = 60.0  # a probe progress line while trials train


def probe_slots(
    trials,
    dims: Sequence[SearchDim],
    concurrency: Optional[int],
    cpus: float,
    gpus: float,
    probe_cpus: float,
    probe_gpus: float,
) -> Optional[int]:
    """Trials first, probes in the gaps: how many probe tasks may run while trials are unfinished -- what
    the CPUs (and GPUs) leave once the trials that run at once (``concurrency``, the first unfinished ones)
    have theirs. None (no limit) when every trial has ended."""
    unfinished = [t for t in trials if t.status in ("PENDING", "RUNNING", "PAUSED")]
    if not unfinished:
        return None
    unfinished.sort(key=lambda t: t.status != "RUNNING")  # the running ones hold theirs already
    window = [trial_experiment(t.config, dims).train for t in unfinished[: concurrency or len(unfinished)]]
    need_cpu = sum(t.workers * t.cpus_per_worker + TRIAL_DRIVER_CPUS for t in window)
    need_gpu = sum(t.workers * t.gpus() for t in window)
    slots = int((cpus - need_cpu + 1e-6) // max(probe_cpus, 1e-3))
    if probe_gpus > 0:
        slots = min(slots, int((gpus - need_gpu + 1e-6) // probe_gpus))
    return max(0, slots)


class ProbeOnCompleteCallback(tune.Callback):
    def __init__(
        self,
        sweep_dir: str,
        parent_run_id: str,
        fanout: Optional[ProbeFanout],
        dims: Sequence[SearchDim],
        concurrency: Optional[int] = None,
    ):
        self.sweep_dir, self.parent_run_id, self.fanout = sweep_dir, parent_run_id, fanout
        self.dims, self.concurrency = tuple(dims), concurrency

    def __getstate__(self) -> dict:  # a running fan-out belongs to one driver: never pickled with the sweep
        return {**self.__dict__, "fanout": None}

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        plan = trial_checkpoints(
            self.fanout.mlflow_uri, self.parent_run_id, self.sweep_dir, trial.trial_id, result, self.dims
        )
        if plan is None:
            return
        if not is_closing_report(result):  # the scheduler stopped it
            record_scheduler_stop(self.fanout.mlflow_uri, plan.run_id, result, plan.config.train.epochs)
        submit_missing(self.fanout, plan)

    def signer(self):
        from ssl_ray.sweep.signed_state import StateSigner

        if getattr(self, "_signer", None) is None:  # made here: a callback restored from an older sweep has none
            self._signer = StateSigner(self.sweep_dir)
        return self._signer

    def on_step_end(self, iteration, trials, **info):
        import ray

        from ssl_ray.sweep.signals import check

        check()  # a SIGTERM or SIGINT the driver noted ends the sweep here, in plain Python (sweep.signals)
        self.signer().maybe()  # what Tune saved since, signed for resume (sweep.signed_state)
        res = ray.cluster_resources()
        slots = probe_slots(
            trials,
            self.dims,
            self.concurrency,
            res.get("CPU", 0.0),
            res.get("GPU", 0.0),
            self.fanout.num_cpus,
            self.fanout.num_gpus,
        )
        self.fanout.set_slots(slots)
        self.fanout.poll(timeout=0.0, budget_s=0.2)  # Tune warns when a callback takes over 0.5 s
        now = time.time()
        if self.fanout.total_layers and now - getattr(self, "_said", 0.0) >= PROGRESS_EVERY_S:
            self._said = now
            f = self.fanout
            print(
                f"[probes] {f.done_layers}/{f.total_layers} checkpoint x layer tasks done while trials train "
                f"(trials first: {slots} probe task(s) may run now)",
                flush=True,
            )


def attach_fanout(tuner, fanout: ProbeFanout) -> None:
    """Give a restored sweep's probe callback this driver's fan-out. Tune restores callbacks by unpickling
    its run config and takes no new ones on restore; the restored run config is the tuner's."""
    callbacks = tuner._local_tuner.get_run_config().callbacks or []  # ray 2.60: the Tuner keeps it there
    found = [cb for cb in callbacks if isinstance(cb, ProbeOnCompleteCallback)]
    if not found:
        raise RuntimeError("the restored sweep has no probe callback")
    for cb in found:
        cb.fanout = fanout
