"""Run a sweep: a Ray Tune ``Tuner`` over the search space, the probe fan-out, the MLflow parent run.

``run_sweep(cfg)`` expects a validated :class:`SweepConfig` (the CLI validates before calling). It saves
the config as ``<sweep dir>/ssl_ray_sweep.yaml`` (``sweep.claim``: one sweep per directory); ``run_sweep(cfg,
resume_dir=...)`` continues a sweep
with Ray Tune's restore, the config read back from that file (``ssl_ray.sweep.commands``).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from ssl_ray.config import TRIAL_DRIVER_CPUS, SweepConfig, flatten
from ssl_ray.probes.fanout import ProbeFanout
from ssl_ray.provenance import git_commit
from ssl_ray.sweep import environment
from ssl_ray.sweep.bank import ensure_target_bank
from ssl_ray.sweep.callbacks import (
    ProbeOnCompleteCallback,
    attach_fanout,
    reassert_scheduler_stops,
    submit_missing,
    trial_checkpoints,
)
from ssl_ray.sweep.claim import claim
from ssl_ray.sweep.console import ConsoleCallback
from ssl_ray.sweep.search import describe, search_algorithm, trial_scheduler
from ssl_ray.sweep.signals import SweepInterrupted, catch_signals, check
from ssl_ray.sweep.signed_state import snapshot
from ssl_ray.sweep.space import param_space
from ssl_ray.sweep.trial import SweepContext, run_trial
from ssl_ray.tracking import (
    TAG_COMMAND,
    TAG_COMMIT,
    TAG_PROBE_STATUS,
    TAG_STOP_REASON,
    client,
    get_or_create_parent_run,
)
from ssl_ray.uris import mask_uri


def init_ray(cfg: SweepConfig, verbose: bool = False) -> None:
    if ray.is_initialized():
        return
    environment.apply(local=not cfg.address)
    if not cfg.address:  # a local Ray listens on 127.0.0.1 only, its token file private (sweep.loopback)
        from ssl_ray.sweep.loopback import apply_local

        apply_local()
    # The dashboard serves Ray's state API, through which Ray Train frees the resources of a trial that
    # Tune stopped (its placement-group cleaner polls whether the trial's controller is alive); without
    # it, an early-stopped trial's workers' CPUs are never given back. It binds to 127.0.0.1.
    kw = dict(
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=verbose,
        configure_logging=True,
        logging_level="INFO" if verbose else "WARNING",
    )
    if cfg.address:
        ray.init(address=cfg.address, **kw)
    else:
        ray.init(num_cpus=cfg.num_cpus, **kw)


def default_concurrency(cfg: SweepConfig) -> Optional[int]:
    """Trials at once when ``max_concurrent_trials`` is not set: on the local Ray, as many as its CPUs hold;
    on a cluster (``--address``), no limit, so that every pending trial's resource request reaches the
    autoscaler, which adds nodes for them (a cluster's CPUs at start say nothing of what it can grow to)."""
    if cfg.address:
        return None
    t = cfg.base.train
    per_trial = t.workers * t.cpus_per_worker + TRIAL_DRIVER_CPUS  # a trial that cannot start would sit RUNNING
    total = ray.cluster_resources().get("CPU", 1)
    return max(1, int(total // per_trial))


def parent_params(cfg: SweepConfig) -> dict:
    """The sweep run's params: ``search.<key>`` = what is searched, ``base.<key>`` = every other base value
    (a searched key's base value never runs: it reads ``searched``), and how it searches: ``search_alg``,
    ``scheduler``, ``scheduler_metric``, ``scheduler_mode``, ``search_seed``."""
    base = {f"base.{k}": "searched" if k in cfg.search_space else v for k, v in flatten(cfg.base.to_dict()).items()}
    return {**base, **{f"search.{k}": json.dumps(v) for k, v in cfg.search_space.items()}, **describe(cfg)}


def varied_keys(cfg: SweepConfig) -> tuple:
    """The searched keys that take more than one value (a sampled key always does)."""
    return tuple(d.key for d in cfg.dims() if d.kind != "grid" or len(d.values) > 1)


def probe_finished_trials(fanout: ProbeFanout, sweep_dir: Path, parent: str, dims) -> int:
    """On resume: queue the missing probes of every trial that ended before the sweep stopped."""
    from ray.tune import ExperimentAnalysis

    n = 0
    for trial in ExperimentAnalysis(str(sweep_dir)).trials:
        if trial.status != "TERMINATED":
            continue
        plan = trial_checkpoints(
            fanout.mlflow_uri,
            parent,
            str(sweep_dir),
            trial.trial_id,
            {**(trial.last_result or {}), "config": trial.config},
            dims,
        )
        if plan is not None:
            n += submit_missing(fanout, plan)
    return n


def run_sweep(
    cfg: SweepConfig,
    verbose: bool = False,
    progress_stream=None,
    resume_dir: Optional[str] = None,
    command: Optional[str] = None,
    claimed: bool = False,
) -> dict:
    """Run the sweep to the end, probes included; with ``resume_dir``, continue that sweep (Tune's restore:
    finished trials are kept, errored and unfinished ones continue from their latest checkpoints, and the
    missing probes of finished trials are computed). A new sweep claims its directory (``sweep.claim``) unless
    the caller has (``claimed``). Returns ``{sweep_dir, parent_run_id, experiment,
    results, probe_failures, mlflow_uri}``."""
    environment.quiet_driver_logs()
    storage = cfg.resolved_storage()
    sweep_dir = Path(resume_dir).resolve() if resume_dir else storage / cfg.name
    uri = cfg.resolved_mlflow_uri()
    if not resume_dir and not claimed:
        claim(cfg)  # SweepExists when another sweep holds the directory
    parent = get_or_create_parent_run(uri, cfg.name, str(sweep_dir), parent_params(cfg), create=not resume_dir)
    provenance = {TAG_COMMAND: mask_uri(command or "(run_sweep)"), TAG_COMMIT: git_commit()}
    c = client(uri)
    for k, v in provenance.items():  # what produced the sweep; a resume adds its own, keeping the first
        c.set_tag(parent, k + ".resume" if resume_dir else k, v)
    if resume_dir and TAG_STOP_REASON in c.get_run(parent).data.tags:  # "interrupted by SIGTERM": no longer so
        c.delete_tag(parent, TAG_STOP_REASON)

    init_ray(cfg, verbose)
    catch_signals()  # after ray.init, which installs its own SIGTERM handler
    try:
        return _run_sweep(cfg, sweep_dir, uri, parent, progress_stream, resume_dir, verbose)
    except SweepInterrupted as e:
        e.sweep_dir = str(sweep_dir)
        snapshot(sweep_dir)  # Tune's state as the signal left it, signed for resume
        c.set_tag(
            parent,
            TAG_STOP_REASON,
            f"interrupted by {signal.Signals(e.signum).name}; continue with `ssl-ray resume {sweep_dir}`",
        )
        c.set_terminated(parent, status="KILLED")
        ray.shutdown()
        raise


def _run_sweep(
    cfg: SweepConfig, sweep_dir: Path, uri: str, parent: str, progress_stream, resume_dir, verbose: bool
) -> dict:
    c = client(uri)
    started = time.time()
    bank = ensure_target_bank(cfg, sweep_dir, uri, parent, progress_stream)
    if bank is not None:  # every trial's probes read the same bank
        cfg = cfg.replace(base=cfg.base.replace(probe={"target_bank": bank}))
    ctx = SweepContext(str(sweep_dir), uri, parent, varied_keys(cfg), tuple(cfg.dims()), lineage=cfg.scheduler == "pbt")
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, ctx=ctx), {"cpu": TRIAL_DRIVER_CPUS}
    )  # it only drives a TorchTrainer
    fanout = ProbeFanout.from_config(uri, cfg.base.probe)
    if resume_dir:
        queued = probe_finished_trials(fanout, sweep_dir, parent, cfg.dims())
        print(
            f"[resume] {sweep_dir}: {queued} missing probe task(s) of finished trials queued",
            file=progress_stream or sys.stderr,
        )
        # The param space again: Tune stood each non-primitive value of it (the typed base config) in for a placeholder
        # that only this process's resolvers fill, so a trial created after the restore (the searcher's next proposal,
        # the grid's next point) would get the placeholder instead of the config.
        tuner = tune.Tuner.restore(
            str(sweep_dir), trainable, resume_unfinished=True, resume_errored=True, param_space=param_space(cfg)
        )
        attach_fanout(tuner, fanout)
    else:
        concurrency = cfg.max_concurrent_trials or default_concurrency(cfg)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(cfg),
            tune_config=tune.TuneConfig(
                num_samples=cfg.num_samples,
                # random search's generator limits itself (Tune would only warn that it ignores the setting)
                max_concurrent_trials=None if cfg.search_alg == "random" else concurrency,
                trial_dirname_creator=lambda trial: trial.trial_id,
                search_alg=search_algorithm(cfg, concurrency),
                scheduler=trial_scheduler(cfg),
            ),
            run_config=tune.RunConfig(
                name=sweep_dir.name,
                storage_path=str(sweep_dir.parent),
                callbacks=[
                    ProbeOnCompleteCallback(str(sweep_dir), parent, fanout, cfg.dims(), concurrency),
                    ConsoleCallback(varied_keys(cfg), cfg.dims(), len(cfg.trial_list()), progress_stream),
                    CSVLoggerCallback(),
                    JsonLoggerCallback(),
                ],  # Tune's own result files, no TensorBoard
                verbose=2 if verbose else 0,  # Tune's tables only with --verbose; else one line per trial event
            ),
        )
    results = tuner.fit()
    snapshot(sweep_dir)  # Tune's final state, signed for resume
    reassert_scheduler_stops(results, uri, parent, cfg.dims())
    trained = time.time()
    fanout.set_slots(None)  # training is over: the probes take every CPU
    fanout.drain(stream=progress_stream or sys.stderr, tick=check)
    incomplete = [tp.trial_id for tp in fanout.trials.values() if tp.missing]
    c.set_tag(parent, TAG_PROBE_STATUS, "complete" if not incomplete else f"incomplete: {', '.join(incomplete)}")
    # an errored trial or probes given up: the sweep failed, and its run says so (the exit code too:
    # ssl_ray.sweep.commands)
    c.set_terminated(parent, status="FAILED" if results.errors or incomplete else "FINISHED")
    return {
        "sweep_dir": str(sweep_dir),
        "parent_run_id": parent,
        "experiment": cfg.name,
        "results": results,
        "probe_failures": fanout.failures,
        "incomplete": incomplete,
        "mlflow_uri": uri,
        "phases": (started, trained),
    }
