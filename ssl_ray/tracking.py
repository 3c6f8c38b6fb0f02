"""MLflow tracking: one experiment per sweep name, one parent run per sweep, one child run per trial.

Runs are found again by tags, never created twice: the parent by ``ssl_ray.sweep_dir``, a child by
``ssl_ray.trial_id``. Metric writes are idempotent: :class:`MetricWriter` logs a ``(key, step)``
only if the run has no value for it yet, so re-running an epoch or a probe never duplicates.

The URI defaults to a SQLite file under ``results/`` (``ssl_ray.config.default_mlflow_uri``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Set

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

TAG_SWEEP_DIR = "ssl_ray.sweep_dir"
TAG_TRIAL_ID = "ssl_ray.trial_id"
TAG_TRIAL_DIR = "ssl_ray.trial_dir"  # where Ray Train keeps the trial's checkpoints
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
TAG_KIND = "ssl_ray.kind"
TAG_STATUS = "ssl_ray.status"  # a trial's end: running, finished, diverged, collapsed, errored
TAG_STOP_REASON = "ssl_ray.stop_reason"

MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def artifact_root_for(uri: str) -> Optional[str]:
    """For a SQLite store, keep artifacts beside the database (not in the working directory)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def ensure_experiment(c: MlflowClient, name: str, uri: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return c.create_experiment(name, artifact_location=artifact_root_for(uri))
    except Exception:  # created concurrently by another process
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _find_run(c: MlflowClient, experiment_id: str, tag: str, value: str) -> Optional[str]:
    escaped = value.replace("'", "\\'")
    runs = c.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{escaped}'", max_results=2)
    return runs[0].info.run_id if runs else None


def get_or_create_parent_run(uri: str, experiment: str, sweep_dir: str, params: Mapping[str, object]) -> str:
    c = client(uri)
    exp_id = ensure_experiment(c, experiment, uri)
    run_id = _find_run(c, exp_id, TAG_SWEEP_DIR, sweep_dir)
    if run_id is None:
        run = c.create_run(exp_id, run_name=f"sweep-{Path(sweep_dir).name}", tags={TAG_SWEEP_DIR: sweep_dir, TAG_KIND: "sweep"})
        run_id = run.info.run_id
        log_params(c, run_id, params)
    else:
        c.update_run(run_id, status="RUNNING")
    return run_id


def get_or_create_trial_run(uri: str, parent_run_id: str, trial_id: str, trial_name: str, params: Mapping[str, object]) -> str:
    c = client(uri)
    exp_id = c.get_run(parent_run_id).info.experiment_id
    run_id = _find_run(c, exp_id, TAG_TRIAL_ID, trial_id)
    if run_id is None:
        tags = {TAG_TRIAL_ID: trial_id, TAG_PARENT: parent_run_id, TAG_KIND: "trial"}
        run_id = c.create_run(exp_id, run_name=trial_name, tags=tags).info.run_id
        log_params(c, run_id, params)
    else:
        c.update_run(run_id, status="RUNNING")
    return run_id


def get_or_create_bank_run(uri: str, parent_run_id: str) -> str:
    """The run of a sweep's target-bank classifier: a child of the sweep's run, but not a trial; found again
    (not made twice) when the bank is trained again after a failure."""
    c = client(uri)
    found = child_runs(c, parent_run_id, kind="bank")
    if found:
        c.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    exp_id = c.get_run(parent_run_id).info.experiment_id
    tags = {TAG_PARENT: parent_run_id, TAG_KIND: "bank"}
    return c.create_run(exp_id, run_name="target bank: supervised classifier", tags=tags).info.run_id


def find_trial_run(uri: str, parent_run_id: str, trial_id: str) -> Optional[str]:
    c = client(uri)
    return _find_run(c, c.get_run(parent_run_id).info.experiment_id, TAG_TRIAL_ID, trial_id)


def log_params(c: MlflowClient, run_id: str, params: Mapping[str, object]) -> None:
    items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def child_runs(c: MlflowClient, parent_run_id: str, kind: str = "trial"):
    """The sweep's child runs of one kind: its trials, or its target ``bank``."""
    exp_id = c.get_run(parent_run_id).info.experiment_id
    return c.search_runs([exp_id], filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}' and tags.`{TAG_KIND}` = '{kind}'",
                         max_results=10000)


class MetricWriter:
    """Idempotent metric logging to one run: a ``(key, step)`` that has a value is never written again."""

    def __init__(self, uri: str, run_id: str):
        self.client = client(uri)
        self.run_id = run_id
        self._steps: Dict[str, Set[int]] = {}
        self._present: Optional[Set[str]] = None

    def _known_steps(self, key: str) -> Set[int]:
        if self._present is None:  # keys the run has at all: the others need no history query
            self._present = set(self.client.get_run(self.run_id).data.metrics)
        if key not in self._steps:
            hist = self.client.get_metric_history(self.run_id, key) if key in self._present else []
            self._steps[key] = {m.step for m in hist}
        return self._steps[key]

    def has(self, key: str, step: int) -> bool:
        return int(step) in self._known_steps(key)

    def log(self, metrics: Mapping[str, float], step: int) -> int:
        """Log the metrics that are new at ``step``; returns how many were written."""
        ts = int(time.time() * 1000)
        new = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items() if int(step) not in self._known_steps(k)]
        for i in range(0, len(new), MAX_BATCH):
            _retry(lambda: self.client.log_batch(self.run_id, metrics=new[i : i + MAX_BATCH]))
        for m in new:
            self._steps[m.key].add(m.step)
        return len(new)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        _retry(lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))


def _retry(fn, attempts: int = 5, delay: float = 0.5):
    """SQLite may report 'database is locked' under concurrent writers; back off and retry."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - MLflow wraps sqlite errors in MlflowException
            if "locked" not in str(e).lower() or i == attempts - 1:
                raise
            time.sleep(delay * (2**i))


def metric_histories(c: MlflowClient, run_id: str, keys: Iterable[str], threads: int = 1) -> Dict[str, list]:
    """``{key: [Metric, ...]}``: one request per key (MLflow has no bulk history read for one run), ``threads``
    of them at a time; a server answers them concurrently."""
    keys = list(keys)
    if threads <= 1:
        return {k: c.get_metric_history(run_id, k) for k in keys}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(keys, pool.map(lambda k: c.get_metric_history(run_id, k), keys)))
