"""Build a :class:`~ssl_ray.probes.targets.TargetBank` from a supervised trial's checkpoints: the study's
targets of graded randomness, ``random_<r>`` (Ben-Shaul et al. 2023, section 5).

A sweep that probes ``random_<r>`` targets builds its bank itself (``ssl_ray.sweep.bank``). By hand:

    python experiments/supervised_baseline.py
    ssl-ray probe bank --trial-dir results/sweeps/supervised_digits/train/<trial> --out results/bank.npz
    python experiments/sweep_vicreg.py --set probe.target_bank=results/bank.npz

**How a network labels an image.** The label of image x at a checkpoint is the class whose logit is
highest *relative to that logit's own distribution over the labelled images*::

    label(x) = argmax_k (f_k(x) - mean_x' f_k(x')) / std_x' f_k(x')

(the mean and standard deviation over the train and test images together). This is still the network
at that epoch -- the same weights, the same features, the same ranking of images within each class's
logit -- with each output unit's offset and scale calibrated over the data, as a classifier with
balanced priors would be. It matters at initialization: there the raw arg-max is dominated by whichever
output unit has the largest offset, and one class takes 95-100% of the images, a constant rather than a
random-looking function of the input. Standardized, the untrained network's labels spread over the
classes (entropy near that of the true labels) while still being a fixed function of the image. The
same rule labels every epoch, so the bank's targets go from that random-looking function (r = 1) to
the trained classifier's classes (r = 0; 86% agreement with the true ones on the digits).
:meth:`TargetBank.check` refuses a bank whose labels at any epoch use fewer than 80% of the classes or
have normalized entropy below 0.8.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from ssl_ray.data.augment import normalize, to_unit_float
from ssl_ray.data.datasets import load_dataset
from ssl_ray.errors import ConfigError
from ssl_ray.models.build import load_model
from ssl_ray.probes.target_bank import TargetBank


@torch.no_grad()
def logits(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The model's output (the supervised classifier's logits) for uint8 images, float64 on the CPU."""
    model.eval()
    out = [model(normalize(to_unit_float(images[i : i + batch_size]))) for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().cpu()


def network_labels(out: torch.Tensor) -> np.ndarray:
    """``argmax_k`` of each logit standardized over the rows (see the module docstring)."""
    z = (out - out.mean(0)) / out.std(0).clamp(min=1e-12)
    return z.argmax(1).numpy().astype(np.int64)


def build_target_bank(checkpoints: List[Tuple[int, str]]) -> TargetBank:
    """Labels of the full train and test splits at every checkpoint of a supervised trial (unchecked:
    call :meth:`TargetBank.check`)."""
    if len(checkpoints) < 2:
        raise ConfigError("a target bank needs at least two checkpoints (initialization and trained)")
    epochs, train_pred, test_pred, acc = [], [], [], []
    data = None
    for epoch, path in sorted(checkpoints):
        model, cfg, _ = load_model(path)
        if cfg.train.mode != "supervised":
            raise ConfigError(
                f"{path}: not a supervised trial (train.mode={cfg.train.mode!r}); "
                "a target bank needs a classifier's predictions"
            )
        if data is None:
            d = cfg.data
            data = [
                load_dataset(d.dataset, s, d.image_size, d.data_root, d.superclass_map).to_array(d.image_size)
                for s in ("train", "test")
            ]
            truth = np.concatenate([data[0].labels.numpy(), data[1].labels.numpy()])
        n_train = len(data[0].labels)
        labels = network_labels(torch.cat([logits(model, data[0].images), logits(model, data[1].images)]))
        epochs.append(epoch)
        train_pred.append(labels[:n_train])
        test_pred.append(labels[n_train:])
        acc.append(float((labels == truth).mean()))
    return TargetBank(np.array(epochs), np.stack(train_pred), np.stack(test_pred), np.array(acc), data[0].num_classes)


def write_target_bank(trial_dir: str | Path, out: str | Path) -> TargetBank:
    from ssl_ray.checkpoints import read_checkpoints

    bank = build_target_bank([(e, d) for e, d, _ in read_checkpoints(Path(trial_dir).expanduser())])
    bank.check(f"the target bank of {trial_dir}")
    bank.save(out)
    return bank
