"""One Tune trial = a function trainable that builds and fits a Ray Train ``TorchTrainer``.

This is the Train-V2-inside-Tune pattern: the trainer's ``RunConfig(name=<trial id>)`` carries a
``TuneReportCallback`` that forwards each epoch's metrics to Tune. All checkpoints are kept
(``num_to_keep=None``) because the probes need every scheduled epoch. Re-running a trial with the
same name and storage path makes Ray Train resume from its latest checkpoint, and the trial's MLflow
run is found again by its ``ssl_ray.trial_id`` tag, so a resumed trial keeps logging to the same run.

The run's ``ssl_ray.status`` tag says how the trial ended: ``finished``, ``diverged`` or ``collapsed``
(with ``ssl_ray.stop_reason``), or ``errored``; the same status goes to Tune in the trial's last result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.util.queue import Queue

from ssl_ray.checkpoints import TRAIN_DIR, trial_dir
from ssl_ray.config import flatten
from ssl_ray.config.sweep import trial_experiment
from ssl_ray.sweep import environment, lineage
from ssl_ray.sweep.trainer import make_trainer, probed_checkpoints
from ssl_ray.tracking import (
    HEALTH_STOPS,
    TAG_PBT_LINEAGE,
    TAG_PBT_PARENT,
    TAG_STATUS,
    TAG_STOP_REASON,
    TAG_TRIAL_DIR,
    TrialStatus,
    client,
    find_trial_run,
    get_or_create_trial_run,
)
from ssl_ray.train.online import ONLINE


@dataclass(frozen=True)
class SweepContext:
    """What every trial needs to know about its sweep (passed with ``tune.with_parameters``)."""

    sweep_dir: str
    mlflow_uri: str
    parent_run_id: str
    varied_keys: tuple = ()  # the searched keys that take more than one value: what names a trial
    dims: tuple = ()  # the sweep's SearchDims (their conditions): what trial_experiment applies to the base
    lineage: bool = False  # PBT: trials continue from each other's checkpoints (ssl_ray/sweep/lineage.py)


# The key of a trial function's closing report: its probed checkpoints, as JSON ``[[epoch, path], ...]``. Only that
# report has it: a trial the scheduler stopped early never sends one.
CHECKPOINTS = "checkpoints"


def is_closing_report(result: Dict[str, Any]) -> bool:
    """Whether a Tune result is the trial function's closing report (its training ended and it said so)."""
    return CHECKPOINTS in result


def reported_checkpoints(result: Dict[str, Any]) -> List[Tuple[int, str]]:
    """``[(epoch, path)]`` of a closing report's probed checkpoints."""
    return [(int(e), p) for e, p in json.loads(result[CHECKPOINTS])]


def trial_label(config: Dict[str, Any], keys: tuple) -> str:
    """``lam=10 width=32``: the varied hyperparameters' values (the key's last part; ``objective.name`` as
    ``objective``)."""
    parts = []
    for k in keys:
        section, name = k.split(".")
        if name not in config.get(section, {}):  # a conditional key this trial does not search
            continue
        v, short = config[section][name], section if k == "objective.name" else name
        parts.append(f"{short}={v:g}" if isinstance(v, float) else f"{short}={v}")
    return " ".join(parts)


def run_trial(config: Dict[str, Any], ctx: SweepContext) -> None:
    exp = trial_experiment(config, ctx.dims)  # the validated base, typed, with this trial's searched values
    tctx = tune.get_context()
    trial_id = tctx.get_trial_id()
    label = trial_label(config, ctx.varied_keys)
    run_name = label or trial_id  # the trial id is the run's ssl_ray.trial_id tag
    run_id = get_or_create_trial_run(ctx.mlflow_uri, ctx.parent_run_id, trial_id, run_name, flatten(exp.to_dict()))
    c = client(ctx.mlflow_uri)
    c.set_tag(run_id, TAG_TRIAL_DIR, str(trial_dir(ctx.sweep_dir, trial_id)))
    c.set_tag(run_id, TAG_STATUS, TrialStatus.RUNNING.value)
    t = exp.train
    environment.apply()
    start = lineage.start_point(trial_id, tune.get_checkpoint()) if ctx.lineage else lineage.StartPoint(trial_id)
    if start.donor is not None:
        record_exploit(c, run_id, start.donor, ctx)
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0}) if ctx.lineage else None
    trainer = make_trainer(
        exp,
        name=start.train_run,
        storage_path=str(Path(ctx.sweep_dir) / TRAIN_DIR),
        mlflow_uri=ctx.mlflow_uri,
        mlflow_run_id=run_id,
        callbacks=[lineage.ForwardToTune(queue) if queue is not None else TuneReportCallback()],
        start_from=start.donor["path"] if start.donor else None,
    )
    if start.train_run != trial_id:
        c.set_tag(run_id, TAG_TRIAL_DIR, str(Path(ctx.sweep_dir) / TRAIN_DIR / start.train_run))
    try:
        result = (
            lineage.fit_reporting(trainer, queue, trial_id, start.train_run) if queue is not None else trainer.fit()
        )
    except SystemExit:  # Tune ended this run of the trial function to pause it (PBT's exploit): not an error
        raise
    except BaseException as e:
        if c.get_run(run_id).data.tags.get(TAG_STATUS) == TrialStatus.STOPPED.value:
            raise  # the scheduler stopped it (the driver tagged it so): its ending is not an error
        c.set_tag(run_id, TAG_STATUS, TrialStatus.ERRORED.value)
        c.set_tag(
            run_id,
            TAG_STOP_REASON,
            f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:4000],
        )
        c.set_terminated(run_id, status="FAILED")
        raise
    final = result.metrics or {}  # the metrics of the latest checkpoint
    tags = c.get_run(run_id).data.tags
    status = record_end(c, run_id)
    tune.report(
        {
            "epoch": final.get("epoch", t.epochs),
            "train_loss": final.get("train_loss", float("nan")),
            **last_online(final, c, run_id),  # what the searcher and the scheduler read of a finished trial
            CHECKPOINTS: json.dumps(probed_checkpoints(result.best_checkpoints or [])),
            "mlflow_run_id": run_id,
            "trial_label": label,
            "status": status.value,
            "stop_reason": tags.get(TAG_STOP_REASON, "") if status != TrialStatus.FINISHED else "",
        }
    )


def last_online(final: Dict[str, Any], c, run_id: str) -> Dict[str, float]:
    """The online readings of the trial's last epoch: from its last report, or, when this run of the trial
    function reported nothing (it restarted at its last epoch: a PBT pause, a resume), from its MLflow run."""
    got = {k: v for k, v in final.items() if k.startswith(ONLINE)}
    return got or {k: v for k, v in c.get_run(run_id).data.metrics.items() if k.startswith(ONLINE)}


def record_exploit(c, run_id: str, donor: Dict[str, Any], ctx: SweepContext) -> None:
    """Tag a trial that PBT continues from another trial's checkpoint: its parent, and the whole lineage."""
    donor_run = find_trial_run(ctx.mlflow_uri, ctx.parent_run_id, donor["trial_id"]) or "?"
    step = f"epoch {int(donor['epoch'])} from {donor['trial_id']} ({donor_run})"
    before = c.get_run(run_id).data.tags.get(TAG_PBT_LINEAGE)
    if before and before.split("; ")[-1] == step:  # the same exploit, started again (a sweep resume)
        return
    c.set_tag(run_id, TAG_PBT_PARENT, donor["trial_id"])
    c.set_tag(run_id, TAG_PBT_LINEAGE, (f"{before}; " if before else "") + step)


def record_end(c, run_id: str) -> TrialStatus:
    """Tag a trial whose training ended: finished, unless its rank 0 stopped it as diverged or collapsed. A
    finished trial keeps no stop reason: an earlier attempt's crash (before a resume) moves to
    ``ssl_ray.stop_reason.earlier``, for the record."""
    tags = c.get_run(run_id).data.tags
    status = TrialStatus(tags[TAG_STATUS]) if tags.get(TAG_STATUS) in HEALTH_STOPS else TrialStatus.FINISHED
    if status == TrialStatus.FINISHED:
        c.set_tag(run_id, TAG_STATUS, status.value)
        if tags.get(TAG_STOP_REASON):
            c.set_tag(run_id, TAG_STOP_REASON + ".earlier", tags[TAG_STOP_REASON])
            c.delete_tag(run_id, TAG_STOP_REASON)
    c.set_terminated(run_id, status="FINISHED" if status == TrialStatus.FINISHED else "FAILED")
    return status
