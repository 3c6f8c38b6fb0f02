"""Fan the probes of a finished trial out as Ray tasks, one per (checkpoint x layer).

:class:`ProbeFanout` submits the tasks without blocking (it is called from Tune's driver loop),
collects results as they finish, and logs them to the trial's MLflow run through the idempotent
:class:`ssl_ray.tracking.MetricWriter`, with step = the checkpoint's epoch. Tasks are retried by Ray
(``max_retries``, ``retry_exceptions=True``); a task that still fails is recorded (an MLflow tag on
the trial's run and a line in the summary) and does not stop the sweep.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import ray

from ssl_ray.tracking import MetricWriter


@ray.remote
def probe_task(ckpt_dir: str, layer: str, targets: Sequence[str], seed: int) -> dict:
    import torch

    from ssl_ray.probes.engine import probe_checkpoint

    torch.set_num_threads(1)
    epoch, metrics = probe_checkpoint(ckpt_dir, layers=[layer], targets=targets, seed=seed)
    return {"epoch": epoch, "metrics": metrics, "node_id": ray.get_runtime_context().get_node_id()}


@dataclass
class ProbeJob:
    trial_id: str
    run_id: str
    epoch: int
    layer: str
    ckpt_dir: str


@dataclass
class ProbeFanout:
    mlflow_uri: str
    num_cpus: float = 1.0
    max_retries: int = 2
    pending: Dict[ray.ObjectRef, ProbeJob] = field(default_factory=dict)
    done: List[ProbeJob] = field(default_factory=list)
    failed: List[Tuple[ProbeJob, str]] = field(default_factory=list)
    _writers: Dict[str, MetricWriter] = field(default_factory=dict)

    def submit(self, trial_id: str, run_id: str, checkpoints: Sequence[Tuple[int, str]], layers: Sequence[str],
               targets: Sequence[str], seed: int = 0) -> int:
        task = probe_task.options(num_cpus=self.num_cpus, max_retries=self.max_retries, retry_exceptions=True)
        n = 0
        for epoch, path in checkpoints:
            for layer in layers:
                ref = task.remote(path, layer, list(targets), seed)
                self.pending[ref] = ProbeJob(trial_id, run_id, int(epoch), layer, path)
                n += 1
        return n

    def _writer(self, run_id: str) -> MetricWriter:
        if run_id not in self._writers:
            self._writers[run_id] = MetricWriter(self.mlflow_uri, run_id)
        return self._writers[run_id]

    def _collect(self, ref: ray.ObjectRef) -> None:
        job = self.pending.pop(ref)
        try:
            out = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a probe failure must not stop the sweep
            msg = str(e).strip().splitlines()[-1][:500] if str(e).strip() else type(e).__name__
            self.failed.append((job, msg))
            self._writer(job.run_id).set_tags({f"ssl_ray.probe_failed.epoch{job.epoch}.{job.layer}": msg})
            return
        self._writer(job.run_id).log(out["metrics"], step=out["epoch"])
        self.done.append(job)

    def poll(self, timeout: float = 0.0) -> int:
        """Log every finished task; wait at most ``timeout`` seconds for the first. Returns how many."""
        if not self.pending:
            return 0
        ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
        if not ready and timeout > 0:
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        for ref in ready:
            self._collect(ref)
        return len(ready)

    def drain(self, progress: bool = True, stream=None) -> None:
        """Block until every submitted probe has finished, with a progress line."""
        stream = stream or sys.stderr
        total = len(self.pending) + len(self.done) + len(self.failed)
        t0 = time.time()
        while self.pending:
            self.poll(timeout=1.0)
            if progress:
                finished = total - len(self.pending)
                stream.write(f"\r[probes] {finished}/{total} tasks done, {len(self.failed)} failed, {time.time() - t0:.0f}s")
                stream.flush()
        if progress and total:
            stream.write(f"\r[probes] {total}/{total} tasks done, {len(self.failed)} failed, {time.time() - t0:.0f}s\n")
