"""What a sweep prints while it runs: one line per trial event, instead of Ray Tune's tables.

    [trial 3c2a1_00001] lam=25 width=16: started (2/4)
    [trial 3c2a1_00001] lam=25 width=16: epoch 8/20, loss 21.37, kNN val 0.912, RankMe 41.2 (42 s)
    [trial 3c2a1_00001] lam=25 width=16: finished, MLflow run 0f3e...; its probes are queued (1 min 45 s)
    [trial 3c2a1_00002] lam=10 width=32: waiting 60 s for its training workers (Ray has 0.0 of 2 CPUs free)

An epoch line appears at every epoch with online readings (``train.online_every``), or, with them off, at
the checkpoints the probes read (1, 2, 4, 8, ... and the last). A trial that has not reported for a minute says what
it waits for.
"""

from __future__ import annotations

import sys
import time
from typing import Dict, Sequence

from ray import tune

from ssl_ray.config import SearchDim
from ssl_ray.config.sweep import trial_experiment
from ssl_ray.sweep.trial import is_closing_report, trial_label
from ssl_ray.train.online import KNN, RANKME

WAIT_NOTE_S = 60.0
ONLINE_SHOWN = ((KNN, "kNN val"), (RANKME, "RankMe"))


class ConsoleCallback(tune.Callback):
    def __init__(self, varied_keys: Sequence[str], dims: Sequence[SearchDim], total: int, stream=None):
        self.keys, self.dims, self.total = tuple(varied_keys), tuple(dims), total
        self.stream = stream
        self.started: Dict[str, float] = {}
        self.last_report: Dict[str, float] = {}
        self.noted: Dict[str, float] = {}
        self.shown: Dict[str, int] = {}  # the last epoch line printed per trial
        self.count = 0

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the sweep; a stream is this process's
        return {**self.__dict__, "stream": None}

    def _say(self, trial, text: str) -> None:
        """One line; after its start, with the time since the trial started."""
        from ssl_ray.sweep.summary import elapsed

        label = trial_label(trial.config, self.keys)
        since = self.started.get(trial.trial_id)
        took = (
            f" ({elapsed(time.time() - since)})"
            if since is not None and not text.startswith(("started", "restarts"))
            else ""
        )
        print(
            f"[trial {trial.trial_id}] {label + ': ' if label else ''}{text}{took}",
            file=self.stream or sys.stdout,
            flush=True,
        )

    def on_trial_start(self, iteration, trials, trial, **info):
        again = trial.trial_id in self.started  # PBT restarts a trial from another's checkpoint
        self.count += 0 if again else 1
        self.started[trial.trial_id] = self.last_report[trial.trial_id] = time.time()
        self._say(
            trial,
            "restarts from a checkpoint (a PBT exploit, a pause or a resume)"
            if again
            else f"started ({self.count}/{self.total})",
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last_report[trial.trial_id] = time.time()
        epoch, epochs = result.get("epoch"), trial_experiment(trial.config, self.dims).train.epochs
        online = [(name, result[key]) for key, name in ONLINE_SHOWN if isinstance(result.get(key), float)]
        # the trial function's closing report repeats the last epoch's numbers: shown only if that epoch's own report
        # never reached this callback (Tune can hand a finishing trial's last two results over as one)
        final = is_closing_report(result)
        shown_by_trial = self.__dict__.setdefault("shown", {})  # a callback restored from an older sweep has none
        shown = shown_by_trial.setdefault(trial.trial_id, 0)
        if epoch is None or epoch == 0 or (final and epoch <= shown) or not (result.get("probed", 0) or online):
            return
        shown_by_trial[trial.trial_id] = max(shown, epoch)
        loss = result.get("train_loss")
        parts = [f"epoch {epoch}/{epochs}"] + ([f"loss {loss:.4g}"] if isinstance(loss, float) else [])
        self._say(trial, ", ".join(parts + [f"{name} {v:.3g}" for name, v in online]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        status = r.get("status", "stopped by the scheduler" if "mlflow_run_id" not in r else "finished")
        reason = f" ({r['stop_reason']})" if r.get("stop_reason") else ""
        run = f", MLflow run {r['mlflow_run_id']}" if r.get("mlflow_run_id") else ""
        self._say(trial, f"{status}{reason}{run}; its probes are queued")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(trial, f"errored; see {trial.local_path or 'its trial directory'}")

    def on_step_end(self, iteration, trials, **info):
        now = time.time()
        for t in trials:
            if t.status != "RUNNING" or t.trial_id not in self.last_report:
                continue
            quiet = now - self.last_report[t.trial_id]
            if quiet >= WAIT_NOTE_S and now - self.noted.get(t.trial_id, 0.0) >= WAIT_NOTE_S:
                self.noted[t.trial_id] = now
                self._say(t, f"no report for {quiet:.0f} s: {waiting_for()}")


def waiting_for() -> str:
    """What a quiet trial most likely waits for: CPUs held by other trials or probe tasks, or its own epoch."""
    import ray

    total, free = ray.cluster_resources().get("CPU", 0.0), ray.available_resources().get("CPU", 0.0)
    if free < 1.0:
        return f"waiting for CPUs for its training workers (Ray has {free:.2f} of {total:g} CPUs free)"
    return "training (an epoch of this size takes longer than a minute here)"
