"""The sweep's own target bank: one supervised classifier trial, trained through the same Ray Train
path as the SSL trials (``train_loop_per_worker`` in a ``TorchTrainer``), before them.

Its labels at initialization and at every epoch of training form the ``random_<r>`` targets
(``ssl_ray.probes.bank``). It is cached as ``<sweep dir>/bank/target_bank.npz``: a resumed sweep, or
one run again in the same directory, reuses it. Its MLflow run (a child of the sweep's parent run,
tagged ``ssl_ray.kind=bank``) holds the classifier's training curve and, per epoch, the bank's
``bank/accuracy`` (agreement with the true labels), ``bank/randomness``, ``bank/label_entropy``
(normalized), ``bank/classes_used`` and the pixel baseline of its labels, ``bank/pixel_linear_val`` and
``bank/pixel_linear_test`` (``ssl_ray.probes.baseline``); the class and chance-control targets' pixel
baselines are ``bank/<target>/pixel_linear_{val,test}`` at step 0.

**Independent of the trials.** The classifier draws its initialization and its data order from the seed
``BANK_SEED_BASE + train.seed`` (2**31 + the base trial's seed), which no trial can have (trial seeds are
validated below 2**31, and torch keeps a seed's low 32 bits). With the trials' own seed, its epoch-0
weights would equal a trial's at the same width, tensor for tensor, and ``random_1.0`` -- that network's
labels -- would be partly a function of the trial's own initial features. The run records the seed as
its ``train.seed`` param and the ``ssl_ray.bank.seed_stream`` tag.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import ray

from ssl_ray.config import BANK_SEED_BASE, ExperimentConfig, SweepConfig
from ssl_ray.errors import ConfigError
from ssl_ray.metric_log import MetricWriter
from ssl_ray.probes.bank import build_target_bank
from ssl_ray.probes.target_bank import TargetBank
from ssl_ray.probes.targets import needs_bank
from ssl_ray.sweep import environment
from ssl_ray.sweep.bank_cache import (
    BANK_FILE,
    BANKS_EXPERIMENT,
    TAG_BANK_KEY,
    bank_key,
    bank_lock,
    bank_params,
    cached_bank_dir,
    estimate_seconds,
)
from ssl_ray.sweep.signals import interruptible
from ssl_ray.sweep.trainer import make_trainer, probed_checkpoints
from ssl_ray.tracking import (
    TAG_BANK_PATH,
    TAG_BANK_RUN,
    TAG_BANK_SEED,
    TAG_STATUS,
    TAG_STOP_REASON,
    TrialStatus,
    client,
    find_bank_run,
    get_or_create_bank_run,
    log_missing_params,
)

BANK_DIR = "bank"  # a sweep's own bank, before banks were shared (bank_cache)
BANK_LR_FACTOR = 0.0625  # the classifier learns at a sixteenth of the SSL learning rate, so its accuracy
# rises over several epochs and the bank's randomness levels cover [0, 1] without a gap


def bank_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / BANK_DIR / BANK_FILE


def bank_config(base: ExperimentConfig, cpus: Optional[float] = None) -> ExperimentConfig:
    """The supervised classifier of the bank: the base trial's data and backbone, cross-entropy on the
    class labels, a checkpoint at every epoch. ``cpus``: the CPUs the bank may hold (it trains alone,
    before the trials); each worker takes its share, never less than a trial's worker."""
    epochs = base.probe.bank_epochs
    train = dict(
        mode="supervised",
        online_every=0,
        epochs=epochs,
        checkpoint_epochs=list(range(epochs + 1)),
        resume_every=1,
        init_checkpoint=None,
        seed=bank_seed(base),
    )
    if cpus is not None:
        train["cpus_per_worker"] = max(base.train.cpus_per_worker, float(cpus // base.train.workers))
    # derived from the validated base; only known-good values change
    return base.replace(
        train=train,
        optim=dict(lr=base.optim.lr * BANK_LR_FACTOR, warmup_epochs=min(base.optim.warmup_epochs, 1)),
        probe=dict(targets=["class"]),
    )


def bank_seed(base: ExperimentConfig) -> int:
    """The bank classifier's seed: its own stream, above every trial's (see the module docstring)."""
    return BANK_SEED_BASE + base.train.seed


def log_pixel_baselines(
    w: MetricWriter, base: ExperimentConfig, bank: TargetBank, path: Path
) -> Tuple[Dict[str, np.ndarray], Dict[str, Dict[str, float]]]:
    """Score the pooled input pixels against every bank epoch and the base trial's other clean targets, on the
    probes' own rows and splits, and log them to the bank's run (``ssl_ray.probes.baseline``)."""
    from ssl_ray.probes.baseline import bank_pixel_baselines
    from ssl_ray.probes.probe_data import build_probe_data

    cfg = base.replace(probe={"target_bank": str(path)})
    per_epoch, others = bank_pixel_baselines(build_probe_data(cfg), bank, cfg.probe)
    for e, val, test in zip(bank.epochs, per_epoch["val"], per_epoch["test"]):
        w.log({"bank/pixel_linear_val": float(val), "bank/pixel_linear_test": float(test)}, step=int(e))
    w.log(
        {f"bank/{t}/pixel_linear_{split}": float(acc[split]) for t, acc in others.items() for split in ("val", "test")},
        step=0,
    )
    return per_epoch, others


def sweep_needs_bank(cfg: SweepConfig) -> bool:
    """True when the sweep probes random_<r> targets and was given no bank."""
    from ssl_ray.data.datasets import dataset_meta
    from ssl_ray.probes.probe_data import resolve_targets

    b = cfg.base
    if b.probe.target_bank is not None:
        return False
    has_super = dataset_meta(b.data.dataset, b.data.data_root, b.data.superclass_map)["num_superclasses"] > 0
    return needs_bank(resolve_targets(b, has_super))


def ensure_target_bank(cfg: SweepConfig, sweep_dir: Path, uri: str, parent_run_id: str, stream=None) -> Optional[str]:
    """The bank the sweep's random_<r> targets come from: ``probe.target_bank`` if given, this sweep's own (a sweep
    made before banks were shared), the cached one of the same data and network (``bank_cache``), or a new one
    trained now and cached. The sweep's run is tagged with the bank's path and run. None when no target needs one."""
    stream = stream or sys.stderr
    if not sweep_needs_bank(cfg):
        return cfg.base.probe.target_bank
    if bank_path(sweep_dir).is_file():  # a sweep from before the cache, resumed
        return _reuse(bank_path(sweep_dir), None, uri, parent_run_id, stream) or _train(
            cfg, bank_path(sweep_dir), uri, parent_run_id, stream
        )
    bcfg = bank_config(cfg.base)  # its key leaves resources out: _train gives it the CPUs it may hold
    bdir = cached_bank_dir(cfg.resolved_storage(), bcfg)
    with bank_lock(bdir):  # a second sweep needing this bank waits here, then reuses it
        return _reuse(bdir / BANK_FILE, bcfg, uri, parent_run_id, stream) or _train(
            cfg, bdir / BANK_FILE, uri, parent_run_id, stream
        )


def _reuse(path: Path, bcfg: Optional[ExperimentConfig], uri: str, parent_run_id: str, stream) -> Optional[str]:
    if not path.is_file():
        return None
    try:
        TargetBank.load(path)
    except ConfigError as e:
        print(f"[bank] rebuilding: {e}", file=stream, flush=True)
        return None
    run_id = find_bank_run(uri, BANKS_EXPERIMENT, TAG_BANK_KEY, bank_key(bcfg)) if bcfg is not None else None
    _tag_sweep(uri, parent_run_id, path, run_id)
    print(f"[bank] reusing the target bank {path}", file=stream, flush=True)
    return str(path)


def _tag_sweep(uri: str, parent_run_id: str, path: Path, run_id: Optional[str]) -> None:
    c = client(uri)
    c.set_tag(parent_run_id, TAG_BANK_PATH, str(path))
    if run_id:
        c.set_tag(parent_run_id, TAG_BANK_RUN, run_id)


def _train(cfg: SweepConfig, path: Path, uri: str, parent_run_id: str, stream) -> str:
    """Train the bank's classifier through Ray Train, check its labels, save it to ``path`` and log it."""
    # On the local Ray a sweep starts itself, the bank takes every CPU (on 2 cores: its epochs in 2 threads
    # instead of 1; the tests' 12-epoch bank, 8 s less). A cluster's nodes may differ: there it keeps a trial's shape.
    bcfg = bank_config(cfg.base, None if cfg.address else ray.cluster_resources().get("CPU"))
    key = bank_key(bcfg)
    run_id = get_or_create_bank_run(uri, BANKS_EXPERIMENT, TAG_BANK_KEY, key)
    w = MetricWriter(uri, run_id)
    estimate = estimate_seconds(w.client, bcfg)
    per_trial = max(cfg.base.with_values(searched).train.epochs for searched in cfg.searched_combinations())
    how_long = (
        f"about {estimate:.0f} s, as an earlier bank of this data and network took"
        if estimate is not None
        else f"about as long as {bcfg.train.epochs} epochs of a trial; this sweep's trials train {per_trial}"
    )
    print(
        f"[bank] training the supervised classifier of the random_<r> targets: {bcfg.train.epochs} epochs, {how_long}. "
        f"It is cached for every later sweep on the same data and network: {path.parent}",
        file=stream,
        flush=True,
    )
    log_missing_params(w.client, run_id, bank_params(bcfg))
    environment.apply()
    t0 = time.time()
    trainer = make_trainer(bcfg, name="classifier", storage_path=str(path.parent), mlflow_uri=uri, mlflow_run_id=run_id)
    result = interruptible(trainer.fit)  # a SIGTERM while the bank trains ends the sweep (sweep.signals)
    bank = build_target_bank(probed_checkpoints(result.best_checkpoints or []))
    for e, acc, r, h, used in zip(bank.epochs, bank.accuracy, bank.randomness, bank.entropies(), bank.classes_used()):
        w.log(
            {"bank/accuracy": acc, "bank/randomness": r, "bank/label_entropy": h, "bank/classes_used": used},
            step=int(e),
        )
    try:
        bank.check("the sweep's target bank")
    except ConfigError as e:
        w.set_tags({TAG_STATUS: TrialStatus.REFUSED.value, TAG_STOP_REASON: str(e)[:4000]})
        w.client.set_terminated(run_id, status="FAILED")
        raise
    bank.save(path)
    per_epoch, others = log_pixel_baselines(w, cfg.base, bank, path)
    w.set_tags(
        {
            TAG_STATUS: TrialStatus.FINISHED.value,
            TAG_BANK_PATH: str(path),
            TAG_BANK_SEED: f"{bcfg.train.seed} (2**31 + train.seed {cfg.base.train.seed}; no trial seed reaches 2**31)",
        }
    )
    w.client.set_terminated(run_id, status="FINISHED")
    _tag_sweep(uri, parent_run_id, path, run_id)
    r = np.sort(bank.randomness)
    first, last = int(np.argmax(bank.randomness)), int(np.argmin(bank.randomness))
    print(
        f"[bank] {len(bank.epochs)} targets in {time.time() - t0:.0f} s, randomness {r[0]:.2f} to {r[-1]:.2f} "
        f"(largest gap {np.diff(r).max():.2f}), label entropy >= {bank.entropies().min():.2f}: {path}",
        file=stream,
        flush=True,
    )
    print(
        f"[bank] pixel baseline (linear probe on the pooled input, test): r=1 labels {per_epoch['test'][first]:.2f}, "
        f"r=0 labels {per_epoch['test'][last]:.2f}" + "".join(f", {t} {acc['test']:.2f}" for t, acc in others.items()),
        file=stream,
        flush=True,
    )
    return str(path)
