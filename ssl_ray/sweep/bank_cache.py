"""Target banks shared by sweeps: a bank is cached by what determines it, so a second sweep on the same data
and network reuses it at once.

A bank is the supervised classifier's labels over its training (``ssl_ray.sweep.bank``). What determines it is
the classifier's own config (``bank_config``): the dataset and its loader, the network, the optimizer, the epochs
and the seed stream (:data:`BANK_KEYS`). Its SSL objective, probe settings and resources do not. The cache is
``<storage>/_banks/<key>/target_bank.npz`` (``_banks`` can never be a sweep's name), with the classifier's Ray
Train checkpoints beside it; a file lock keeps two sweeps from training the same bank at once (the second waits
and reuses it).

Every bank has one MLflow run, in the experiment :data:`BANKS_EXPERIMENT` (never among a sweep's trials), found
again by its ``ssl_ray.bank.key`` tag; its params are :data:`BANK_KEYS` only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from pathlib import Path
from typing import Dict, Iterator, Optional

from ssl_ray.config import ExperimentConfig, flatten

BANKS_EXPERIMENT = "ssl_ray_target_banks"
BANKS_DIR = "_banks"
BANK_FILE = "target_bank.npz"
TAG_BANK_KEY = "ssl_ray.bank.key"
# what a bank's labels depend on: the classifier's data, network, optimizer, length and seed
BANK_KEYS = (
    "data.",
    "model.",
    "optim.",
    "train.mode",
    "train.epochs",
    "train.seed",
    "train.workers",
    "train.amp",
    "train.channels_last",
    "train.sync_batchnorm",
    "train.use_gpu",
)


def bank_params(bcfg: ExperimentConfig) -> Dict[str, object]:
    """The bank classifier's settings that determine its labels (its MLflow params, and its cache key)."""
    sections = tuple(p for p in BANK_KEYS if p.endswith("."))
    return {k: v for k, v in sorted(flatten(bcfg.to_dict()).items()) if k in BANK_KEYS or k.startswith(sections)}


def bank_key(bcfg: ExperimentConfig) -> str:
    """A short hash of :func:`bank_params`."""
    blob = json.dumps(bank_params(bcfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_bank_dir(storage: Path, bcfg: ExperimentConfig) -> Path:
    return Path(storage) / BANKS_DIR / bank_key(bcfg)


@contextlib.contextmanager
def bank_lock(bank_dir: Path) -> Iterator[None]:
    """Held while a bank is checked, trained and saved: a second sweep needing the same bank waits, then reuses it.
    The OS releases it when its process dies."""
    bank_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(bank_dir.with_name(bank_dir.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def estimate_seconds(client, bcfg: ExperimentConfig) -> Optional[float]:
    """How long this bank will train, from an earlier bank of the same data and network (its run's duration per
    epoch, times this bank's epochs); None when there is none."""
    exp = client.get_experiment_by_name(BANKS_EXPERIMENT)
    if exp is None:
        return None
    want = {k: str(v) for k, v in bank_params(bcfg).items() if k.startswith(("data.", "model.")) and v is not None}
    for run in client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=50,
    ):
        p, info = run.data.params, run.info
        if all(p.get(k) == v for k, v in want.items()) and info.end_time and p.get("train.epochs"):
            per_epoch = (info.end_time - info.start_time) / 1000 / max(int(p["train.epochs"]), 1)
            return per_epoch * bcfg.train.epochs
    return None
