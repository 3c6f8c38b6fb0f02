"""Population Based Training across trials: Tune's exploit carries one trial's weights into another.

PBT (Jaderberg et al. 2017; Ray Tune's ``PopulationBasedTraining``) exploits through Tune checkpoints: a
bottom-quantile trial is restarted from a top-quantile trial's latest checkpoint with a perturbed config.
Our trials train in a Ray Train ``TorchTrainer`` whose checkpoints Ray Train already stores, so the Tune
checkpoint a trial reports is a *reference* to one of them: a directory holding ``train_checkpoint.json``
(``trial_id``, ``train_run``, ``path``, ``epoch``). Nothing is copied and no weights are re-serialized;
Ray Train's checkpoint stays the only format.

* :class:`ForwardToTune` (a Ray Train callback, in the trainer's controller) puts each report and its
  checkpoint's path on a Ray queue; :func:`fit_reporting` runs ``trainer.fit()`` in a thread and forwards
  them with ``tune.report(metrics, checkpoint=<reference>)``, as ``TuneReportCallback`` forwards metrics.
* :func:`start_point`, at a trial's start: no Tune checkpoint -> a fresh Ray Train run named after the
  trial; its own reference (a pause, a sweep resume) -> the same Ray Train run, which resumes itself; another
  trial's reference (an exploit) -> a new Ray Train run ``<trial>-from-<donor>-e<epoch>`` whose workers start
  from the donor's checkpoint (``start_from`` in the loop's config: Train V2 refuses ``resume_from_checkpoint``;
  a restart of that run resumes from its own checkpoints first), logged to this trial's own MLflow run and tagged
  ``ssl_ray.pbt.parent`` / ``ssl_ray.pbt.lineage``. The worker rescales the restored learning rate to the
  trial's own (``ssl_ray.train.optim.rescale_lr``).
"""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ray import tune
from ray.train import Checkpoint, UserCallback
from ray.util.queue import Queue

POINTER = "train_checkpoint.json"
DONE = "__ssl_ray_fit_done__"


class ForwardToTune(UserCallback):
    """Each report's metrics (rank 0's) and its checkpoint's path, onto ``queue``."""

    def __init__(self, queue: Queue):
        self.queue = queue

    def after_report(self, run_context, metrics: List[Dict[str, Any]], checkpoint: Optional[Checkpoint]):
        self.queue.put((dict(metrics[0]), checkpoint.path if checkpoint else None))


@dataclass(frozen=True)
class StartPoint:
    train_run: str  # the Ray Train run (its name under the sweep's train/ folder)
    donor: Optional[Dict[str, Any]] = None  # the reference exploited, when this start is an exploit


def read_reference(checkpoint) -> Dict[str, Any]:
    with checkpoint.as_directory() as d:
        return json.loads((Path(d) / POINTER).read_text())


def start_point(trial_id: str, checkpoint) -> StartPoint:
    """Where a trial starts (module docstring); ``checkpoint`` is ``tune.get_checkpoint()``."""
    if checkpoint is None:
        return StartPoint(trial_id)
    ref = read_reference(checkpoint)
    if ref["trial_id"] == trial_id:
        return StartPoint(ref["train_run"])
    return StartPoint(f"{trial_id}-from-{ref['trial_id']}-e{int(ref['epoch'])}", ref)


def fit_reporting(trainer, queue: Queue, trial_id: str, train_run: str):
    """``trainer.fit()`` in a thread; every report it makes goes to Tune, with a checkpoint reference where
    Ray Train kept a checkpoint. Returns the fit's result (or raises its error)."""
    box: Dict[str, Any] = {}

    def fit() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001 - re-raised in the trial's thread below
            box["error"] = e
        finally:
            queue.put(DONE)

    thread = threading.Thread(target=fit, name="ssl_ray-fit", daemon=True)
    thread.start()
    while True:
        item = queue.get()
        if item == DONE:
            break
        metrics, path = item
        if path is None:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="ssl_ray_ref_") as d:
            ref = {"trial_id": trial_id, "train_run": train_run, "path": path, "epoch": int(metrics.get("epoch", 0))}
            (Path(d) / POINTER).write_text(json.dumps(ref))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
