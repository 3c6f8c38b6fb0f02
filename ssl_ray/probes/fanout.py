"""Fan the probes of finished trials out as Ray tasks, over checkpoint x layer.

For every kept checkpoint, one ``features_task`` runs the checkpoint's single forward pass over the
probe images and returns each layer's features as its own object (``num_returns = 1 + layers``); one
``score_task`` per layer then scores that object against every target. So the forward pass is shared
by every layer, target and metric, and the expensive part (the linear probes and MINE) spreads over
as many cores as there are layers x checkpoints.

:class:`ProbeFanout` is driven from Tune's event loop, so it never blocks there: ``submit`` queues a
trial's checkpoints, ``poll`` collects whatever has finished. At most ``max_concurrent`` checkpoints
are in flight (their features sit in the object store). Tasks have ``num_cpus``/``num_gpus`` each.

Failures: Ray re-runs a task whose *worker died* (``max_retries``). A task that *raises* is recorded --
a ``ssl_ray.probe.failure.<epoch>.<layer>`` tag on the trial's run and an entry in ``failures`` -- and
its layers are submitted again (a fresh forward pass), up to ``max_retries`` more times; a failure never
stops the sweep. Results are logged through the idempotent :class:`ssl_ray.metric_log.MetricWriter` (one
value per (key, step), however often a checkpoint is probed), with step = the checkpoint's epoch.
When a trial's last checkpoint settles, its tidy table of every probe value is written as the run's
``probes/probes.csv`` artifact, its ``ssl_ray.probe.status`` tag says whether anything is missing, and
``ssl_ray.probe.nodes`` lists the Ray nodes its tasks ran on. Tasks read checkpoints by path, so on a
cluster the sweep's storage must be a file system every node mounts (``cluster.yaml``: EFS).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import ray

from ssl_ray.config import ProbeConfig
from ssl_ray.metric_log import MetricWriter
from ssl_ray.probes.curated import curated
from ssl_ray.probes.probe_tasks import (
    CheckpointJob,
    ProbeFailure,
    TrialProbes,
    failure_message,  # noqa: F401
    features_task,
    score_task,
)
from ssl_ray.probes.table import current_table, merge_rows, score_rows, write_probe_table
from ssl_ray.tracking import TAG_PROBE_FAILURE, TAG_PROBE_NODES, TAG_PROBE_SKIPPED, TAG_PROBE_STATUS


@dataclass
class ProbeFanout:
    mlflow_uri: str
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_concurrent: Optional[int] = None
    max_retries: int = 2
    write_tables: bool = True
    mlflow_metrics: str = "curated"  # which probe values MLflow gets (ssl_ray.probes.curated); the table has all
    # At most this many probe tasks in Ray at once (None: no limit). A sweep sets it while trials train, so
    # that probes take only the CPUs no training trial can use (ssl_ray.sweep.callbacks).
    slots: Optional[int] = None
    queue: Deque[CheckpointJob] = field(default_factory=deque)
    waiting: Deque[tuple] = field(
        default_factory=deque
    )  # (job, layer, head ref, features ref): score tasks not yet sent
    features_pending: Dict[ray.ObjectRef, CheckpointJob] = field(default_factory=dict)  # forward passes running
    active: List[CheckpointJob] = field(default_factory=list)
    in_flight: Dict[ray.ObjectRef, Tuple[CheckpointJob, str]] = field(default_factory=dict)
    failures: List[ProbeFailure] = field(default_factory=list)
    trials: Dict[str, TrialProbes] = field(default_factory=dict)
    done_layers: int = 0
    total_layers: int = 0
    _writers: Dict[str, MetricWriter] = field(default_factory=dict)

    @classmethod
    def from_config(cls, uri: str, p: ProbeConfig, **kw) -> "ProbeFanout":
        return cls(
            uri,
            num_cpus=p.num_cpus,
            num_gpus=p.num_gpus,
            max_concurrent=p.max_concurrent,
            max_retries=p.max_retries,
            mlflow_metrics=p.mlflow_metrics,
            **kw,
        )

    # -- submission --------------------------------------------------------------------------
    def submit(self, trial_id: str, run_id: str, checkpoints: Sequence[Tuple[int, str]], layers: Sequence[str]) -> int:
        """Queue the probes of ``checkpoints`` (``[(epoch, dir)]``) at ``layers``; returns the layer tasks queued.
        Each checkpoint is scored with the probe settings saved in it."""
        tp = self.trials.setdefault(run_id, TrialProbes(trial_id))
        for epoch, path in checkpoints:
            self.queue.append(CheckpointJob(trial_id, run_id, int(epoch), str(path), list(layers)))
            tp.jobs += 1
        n = len(checkpoints) * len(layers)
        self.total_layers += n
        self._pump()
        return n

    def set_slots(self, slots: Optional[int]) -> None:
        """Change how many probe tasks may be in Ray at once (None: no limit), and send what now fits."""
        self.slots = slots
        self._pump()

    def _room(self) -> int:
        if self.slots is None:
            return 1 << 30
        return self.slots - len(self.in_flight) - len(self.features_pending)

    def _limit(self) -> int:
        if self.max_concurrent:
            return self.max_concurrent
        cpus = ray.cluster_resources().get("CPU", 1.0)
        return max(1, int(cpus // max(self.num_cpus, 1e-3)))

    def _pump(self) -> None:
        """Send the score tasks whose turn it is, then new checkpoints, as far as the slots allow."""
        opts, limit = self._options(), None
        while True:
            while self.waiting and self._room() > 0:
                job, layer, head, feats = self.waiting.popleft()
                ref = score_task.options(**opts).remote(head, feats, layer, max(1, int(self.num_cpus)))
                self.in_flight[ref] = (job, layer)
            if not self.queue or self._room() <= 0:
                return
            limit = self._limit() if limit is None else limit
            if len(self.active) >= limit:
                return
            job = self.queue.popleft()
            self.active.append(job)
            self._start(job, job.layers)

    def _options(self) -> dict:
        return dict(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries, retry_exceptions=False
        )

    def _start(self, job: CheckpointJob, layers: Sequence[str]) -> None:
        """Send the checkpoint's forward pass; its layers' score tasks wait for slots (``_pump``)."""
        threads = max(1, int(self.num_cpus))
        refs = features_task.options(num_returns=1 + len(layers), **self._options()).remote(
            job.ckpt_dir, list(layers), threads
        )
        job.refs = refs
        self.features_pending[refs[0]] = job
        for layer, feats in zip(layers, refs[1:]):
            job.attempts[layer] = job.attempts.get(layer, 0) + 1
            self.waiting.append((job, layer, refs[0], feats))
            job.outstanding += 1

    # -- collection --------------------------------------------------------------------------
    def adopt(self, writer: MetricWriter) -> None:
        """Log to ``writer.run_id`` through ``writer`` (and what it knows of the run's histories)."""
        self._writers[writer.run_id] = writer

    def writer(self, run_id: str) -> MetricWriter:
        if run_id not in self._writers:
            self._writers[run_id] = MetricWriter(self.mlflow_uri, run_id)
        return self._writers[run_id]

    def _collect(self, ref: ray.ObjectRef) -> None:
        job, layer = self.in_flight.pop(ref)
        job.outstanding -= 1
        w = self.writer(job.run_id)
        tag = f"{TAG_PROBE_FAILURE}.e{job.epoch:04d}.{layer}"
        try:
            scores, nodes = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a probe failure must not stop the sweep
            attempt = job.attempts[layer]
            retried = attempt <= self.max_retries
            f = ProbeFailure(job.trial_id, job.run_id, job.epoch, layer, attempt, failure_message(e), retried)
            self.failures.append(f)
            w.set_tags({tag: f"attempt {attempt} failed: {f.error}" + ("; retrying" if retried else "; gave up")})
            if retried:
                job.retry.add(layer)
            else:
                self.trials[job.run_id].missing.append(f"e{job.epoch}/{layer}")
                self.done_layers += 1
        else:
            tp = self.trials[job.run_id]
            tp.rows += score_rows(job.trial_id, job.run_id, job.epoch, scores.metrics)
            w.log(curated(scores.metrics, self.mlflow_metrics), step=job.epoch)
            tp.nodes.update(nodes)
            new = {t: why for t, why in scores.skipped.items() if t not in tp.skipped}
            if new:
                tp.skipped.update(new)
                w.set_tags({f"{TAG_PROBE_SKIPPED}.{t}": why for t, why in new.items()})
            self.done_layers += 1
            if job.attempts[layer] > 1:
                w.set_tags(
                    {tag: f"failed {job.attempts[layer] - 1} time(s), then succeeded on attempt {job.attempts[layer]}"}
                )
        if job.outstanding == 0:
            self._settle(job)

    def _settle(self, job: CheckpointJob) -> None:
        job.refs = []
        if job.retry:
            layers, job.retry = sorted(job.retry), set()
            self._start(job, layers)
            self._pump()
            return
        self.active.remove(job)
        tp = self.trials[job.run_id]
        tp.settled += 1
        if self.write_tables:
            self._write_table(job.run_id, tp)
        if tp.settled == tp.jobs:
            self._finish_trial(job.run_id, tp)
        self._pump()

    def _write_table(self, run_id: str, tp: TrialProbes) -> None:
        """The run's ``probes.csv``: as the run had it, plus what was scored since (``ssl_ray.probes.table``)."""
        w = self.writer(run_id)
        tp.table = merge_rows(current_table(w) if tp.table is None else tp.table, tp.rows)
        tp.rows = []
        write_probe_table(w, tp.table)

    def _finish_trial(self, run_id: str, tp: TrialProbes) -> None:
        w = self.writer(run_id)
        w.set_tags(
            {
                TAG_PROBE_STATUS: "complete" if not tp.missing else f"incomplete: {', '.join(tp.missing)[:4000]}",
                TAG_PROBE_NODES: ",".join(sorted(tp.nodes))[:4000],
            }
        )
        if self.write_tables:
            from ssl_ray.probes.summary import log_trial_summary

            log_trial_summary(w, tp.table)

    def poll(self, timeout: float = 0.0, budget_s: Optional[float] = None) -> int:
        """Collect finished tasks; wait at most ``timeout`` seconds for the first. With ``budget_s``, stop
        collecting after that long (the rest wait for the next poll: Tune's event loop stays responsive).
        Returns how many were collected."""
        if self.features_pending:  # a finished forward pass frees its slot for a score task
            heads = list(self.features_pending)
            done, _ = ray.wait(heads, num_returns=len(heads), timeout=0)
            for head in done:
                self.features_pending.pop(head)
        self._pump()
        if not self.in_flight:
            if self.features_pending and timeout > 0:
                ray.wait(list(self.features_pending), num_returns=1, timeout=timeout)
            return 0
        refs = list(self.in_flight)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready and timeout > 0:
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        t0 = time.monotonic()
        for i, ref in enumerate(ready):
            if budget_s is not None and i and time.monotonic() - t0 > budget_s:
                return i
            self._collect(ref)
        return len(ready)

    @property
    def pending(self) -> bool:
        return bool(self.in_flight or self.queue or self.waiting or self.features_pending)

    def drain(self, progress: bool = True, stream=None, tick=None) -> None:
        """Block until every queued probe has finished, with a progress line; ``tick()`` between polls (a caller's
        check, which may raise to stop waiting)."""
        stream = stream or sys.stderr
        tty = hasattr(stream, "isatty") and stream.isatty()
        t0, last = time.time(), [-1.0, -1]

        def show(final: bool = False) -> None:
            """A live line on a terminal; in a log, a line per change at most every 30 s."""
            if not progress or not self.total_layers:
                return
            now = time.time()
            if not tty and not final and (self.done_layers == last[1] or now - last[0] < 30):
                return
            last[:] = [now, self.done_layers]
            gave_up = sum(not f.retried for f in self.failures)
            line = (
                f"[probes] {self.done_layers}/{self.total_layers} checkpoint x layer tasks done, "
                f"{len(self.failures)} failed attempts, {gave_up} given up, {now - t0:.0f}s"
            )
            stream.write(("\r" + line + ("\n" if final else "")) if tty else line + "\n")
            stream.flush()

        while self.pending:
            self.poll(timeout=1.0)
            show()
            if tick is not None:
                tick()
        show(final=True)
