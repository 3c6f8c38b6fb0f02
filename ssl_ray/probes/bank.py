"""Build a :class:`~ssl_ray.probes.targets.TargetBank` from a supervised trial's checkpoints: the study's
targets of graded randomness (``probe.randomness: supervised``).

    python experiments/supervised_baseline.py --search data.augment=[digits]
    ssl-ray probe bank --trial-dir results/sweeps/supervised_digits/train/<trial> --out results/bank.npz
    python experiments/sweep_vicreg.py --set probe.randomness=supervised --set probe.target_bank=results/bank.npz
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from ssl_ray.data.augment import normalize, to_unit_float
from ssl_ray.data.datasets import load_dataset
from ssl_ray.errors import ConfigError
from ssl_ray.probes.engine import load_model
from ssl_ray.probes.targets import TargetBank


@torch.no_grad()
def predictions(model, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Arg-max class of the model's output (the supervised classifier's logits) for uint8 images."""
    out = [model(normalize(to_unit_float(images[i : i + batch_size]))).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.int64)


def build_target_bank(checkpoints: List[Tuple[int, str]]) -> TargetBank:
    """Predictions on the full train and test splits at every checkpoint of a supervised trial."""
    if len(checkpoints) < 2:
        raise ConfigError("a target bank needs at least two checkpoints (initialization and trained)")
    epochs, train_pred, test_pred, acc = [], [], [], []
    data = None
    for epoch, path in sorted(checkpoints):
        model, cfg, _ = load_model(path)
        if cfg.train.mode != "supervised":
            raise ConfigError(f"{path}: not a supervised trial (train.mode={cfg.train.mode!r}); "
                              "a target bank needs a classifier's predictions")
        if data is None:
            d = cfg.data
            data = [load_dataset(d.dataset, s, d.image_size, d.data_root, d.superclass_map).to_array(d.image_size)
                    for s in ("train", "test")]
            truth = np.concatenate([data[0].labels.numpy(), data[1].labels.numpy()])
        ptr, pte = predictions(model, data[0].images), predictions(model, data[1].images)
        epochs.append(epoch)
        train_pred.append(ptr)
        test_pred.append(pte)
        acc.append(float((np.concatenate([ptr, pte]) == truth).mean()))
    return TargetBank(np.array(epochs), np.stack(train_pred), np.stack(test_pred), np.array(acc), data[0].num_classes)


def write_target_bank(trial_dir: str | Path, out: str | Path) -> TargetBank:
    from ssl_ray.probes.backfill import find_checkpoints

    bank = build_target_bank([(e, d) for e, d, _ in find_checkpoints(Path(trial_dir).expanduser())])
    bank.save(out)
    return bank
