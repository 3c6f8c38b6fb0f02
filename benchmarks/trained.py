"""A real trained trial for the probe benchmarks: the default sweep's base config (VICReg, RES-4-32 on
digits) trained by Ray Train's ``TorchTrainer`` with the project's own ``train_loop_per_worker``, so the
checkpoints are exactly what a sweep keeps. Cached by config under ``results/benchmarks/.cache``."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def base_config(epochs: int) -> dict:
    """The base of the default recipe (configs/vicreg_digits.yaml) trained for ``epochs``."""
    from ssl_ray.sweep.recipe import recipe

    cfg = recipe(str(ROOT / "configs" / "vicreg_digits.yaml"))["base"]
    cfg["train"]["epochs"] = epochs
    return cfg


def trained_checkpoints(epochs: int, cache: Path = ROOT / "results" / "benchmarks" / ".cache") -> List[Tuple[int, str]]:
    """``[(epoch, checkpoint dir)]`` of a trained trial, training it (about 20 s per epoch) if not cached."""
    cfg = base_config(epochs)
    key = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    out = cache / f"trial-{key}"
    found = sorted((int(p.parent.name.split("_")[-1]), str(p.parent)) for p in out.glob("*/*/state.pt"))
    if found and found[-1][0] == epochs:
        return found
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from ssl_ray.config import ExperimentConfig
    from ssl_ray.sweep import environment
    from ssl_ray.train.loop import train_loop_per_worker
    from ssl_ray.validation import validate_experiment

    cfg = validate_experiment(ExperimentConfig.from_dict(cfg))
    environment.apply()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"experiment": cfg},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 2}),
        run_config=ray.train.RunConfig(
            name="trial", storage_path=str(out), checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None)
        ),
    )
    trainer.fit()
    if started:
        ray.shutdown()
    return sorted((int(p.parent.name.split("_")[-1]), str(p.parent)) for p in out.glob("*/*/state.pt"))
