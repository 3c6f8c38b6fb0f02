"""Compute or complete the probes of an existing trial: ``ssl-ray probe --run-id ... | --trial-dir ...``.

A trial is found from either end. From an MLflow run, its ``ssl_ray.trial_dir`` tag (or, for runs made
before that tag, the parent sweep's directory and the trial id) gives the checkpoints. From a trial
directory, every ``state.pt`` under it is a kept checkpoint, and the run id is saved inside each. Only
the (checkpoint, layer) pairs whose probe values are not all in the run's probe table yet are probed, unless
``every`` is set; either way the idempotent writer keeps one value per (key, step). The work goes through the
same Ray fan-out as a sweep's, with its progress line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ssl_ray.checkpoints import read_checkpoints
from ssl_ray.checkpoints import trial_dir as trial_dir_of
from ssl_ray.config import ExperimentConfig
from ssl_ray.data.datasets import dataset_meta
from ssl_ray.errors import ConfigError
from ssl_ray.metric_log import MetricWriter
from ssl_ray.probes.engine import probe_layers
from ssl_ray.probes.plan import layers_at
from ssl_ray.probes.probe_data import resolve_targets
from ssl_ray.probes.scoring import expected_keys, probe_names
from ssl_ray.tracking import (
    TAG_PARENT,
    TAG_PROBE_SKIPPED,
    TAG_SWEEP_DIR,
    TAG_TRIAL_DIR,
    TAG_TRIAL_ID,
    client,
    existing_store,
)


@dataclass
class TrialCheckpoints:
    run_id: str
    trial_id: str
    trial_dir: Path
    checkpoints: List[Tuple[int, str]]  # (epoch, directory), by epoch
    config: ExperimentConfig


def resolve_trial(uri: str, run_id: Optional[str] = None, trial_dir: Optional[str] = None) -> TrialCheckpoints:
    if (run_id is None) == (trial_dir is None):
        raise ConfigError("give exactly one of --run-id and --trial-dir")
    found = None
    if trial_dir is not None:  # checked before the store is opened (which would create it)
        path = Path(trial_dir).expanduser().resolve()
        found = read_checkpoints(path)
    c = client(existing_store(uri, f"run {run_id}" if run_id else f"trial directory {trial_dir}"))
    if run_id is not None:
        try:
            run = c.get_run(run_id)
        except Exception:  # noqa: BLE001 - MLflow raises its own exception type for unknown ids
            raise ConfigError(f"run {run_id}: not found in {uri}") from None
        tags = run.data.tags
        tdir = tags.get(TAG_TRIAL_DIR)
        if tdir is None and TAG_PARENT in tags and TAG_TRIAL_ID in tags:
            tdir = str(trial_dir_of(c.get_run(tags[TAG_PARENT]).data.tags[TAG_SWEEP_DIR], tags[TAG_TRIAL_ID]))
        if tdir is None:
            raise ConfigError(f"run {run_id}: not an ssl_ray trial run (no {TAG_TRIAL_DIR} tag)")
        path = Path(tdir)
        found = read_checkpoints(path)
        trial_id = tags.get(TAG_TRIAL_ID, path.name)
    saved = {s.get("mlflow_run_id") or "" for _, _, s in found} - {""}
    if run_id is None:
        if len(saved) != 1:
            raise ConfigError(f"trial directory {path}: its checkpoints name {len(saved)} MLflow runs; pass --run-id")
        run_id = saved.pop()
        try:
            trial_id = c.get_run(run_id).data.tags.get(TAG_TRIAL_ID, path.name)
        except Exception:  # noqa: BLE001
            raise ConfigError(f"run {run_id} (saved in {path}): not found in {uri}; pass --mlflow-uri") from None
    cfg = ExperimentConfig.from_dict(found[-1][2]["config"])
    probed = set(cfg.train.checkpoint_schedule())  # resume-only checkpoints are not probed
    return TrialCheckpoints(run_id, trial_id, path, [(e, d) for e, d, _ in found if e in probed], cfg)


def plan_layers(cfg: ExperimentConfig) -> Tuple[List[str], List[str], List[str]]:
    """(layers, targets, probe families) a complete probe of this trial covers."""
    d = cfg.data
    layers = probe_layers(cfg)
    has_super = dataset_meta(d.dataset, d.data_root, d.superclass_map)["num_superclasses"] > 0
    return layers, resolve_targets(cfg, has_super), probe_names(cfg.probe)


def missing_work(
    uri: str, trial: TrialCheckpoints, every: bool = False, writer: Optional[MetricWriter] = None
) -> List[Tuple[int, str, List[str]]]:
    """``[(epoch, checkpoint dir, layers to probe)]``: the layers with any probe value missing at that epoch.
    What the run holds is its probe table (``probes.csv`` and any newer MLflow value: ``table.current_table``),
    never the MLflow metric keys alone, which are a curated few (``ssl_ray.probes.curated``). ``writer`` (the
    one that will log the results) keeps what was read."""
    from ssl_ray.probes.table import current_table, table_keys

    taps, targets, probes = plan_layers(trial.config)
    p, schedule = trial.config.probe, trial.config.train.checkpoint_schedule()
    w = writer or MetricWriter(uri, trial.run_id)
    run = w.client.get_run(trial.run_id)
    targets = [t for t in targets if f"{TAG_PROBE_SKIPPED}.{t}" not in run.data.tags]  # skipped with a recorded reason
    have = set() if every else table_keys(current_table(w))
    work = []
    for epoch, path in trial.checkpoints:
        todo = [
            layer
            for layer in layers_at(taps, schedule, epoch)
            if every or not all((k, epoch) in have for k in expected_keys(targets, [layer], probes, p, schedule, epoch))
        ]
        if todo:
            work.append((epoch, path, todo))
    return work


def backfill(
    uri: str,
    run_id: Optional[str] = None,
    trial_dir: Optional[str] = None,
    every: bool = False,
    num_cpus: Optional[float] = None,
    address: Optional[str] = None,
    progress: bool = True,
) -> dict:
    """Probe what is missing (or everything) for one trial; returns a summary with the fan-out's failures."""
    trial = resolve_trial(uri, run_id, trial_dir)
    w = MetricWriter(uri, trial.run_id)
    work = missing_work(uri, trial, every, w)
    out = {
        "run_id": trial.run_id,
        "trial_dir": str(trial.trial_dir),
        "checkpoints": len(trial.checkpoints),
        "tasks": sum(len(layers) for _, _, layers in work),
        "failures": [],
    }
    if not work:
        return out
    import ray

    from ssl_ray.probes.fanout import ProbeFanout

    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        ray.init(address=address, **kw) if address else ray.init(num_cpus=num_cpus, **kw)
        started = True
    try:
        p = trial.config.probe
        fanout = ProbeFanout.from_config(uri, p)
        fanout.adopt(w)  # the histories it read: logging needs no request to stay idempotent
        for epoch, path, layers in work:
            fanout.submit(trial.trial_id, trial.run_id, [(epoch, path)], layers)
        fanout.drain(progress=progress)
        out["failures"] = fanout.failures
        out["missing"] = fanout.trials[trial.run_id].missing
    finally:
        if started:
            ray.shutdown()
    return out
