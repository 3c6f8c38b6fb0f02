"""Pixel baselines: how well the raw input predicts each target before any training.

A target's accuracy at a layer means little alone: labels that are a smooth function of the pixels are
easy to fit from *any* features. The study's random targets are such labels -- an untrained network's
classes (r = 1) are a fixed, smooth function of its input -- so the question "does SSL make a layer
better at semantic targets than at random ones" is answered against the same probe on the input itself:
the normalized image average-pooled to at most 8 x 8 per channel (``probe_data.pooled_inputs``, MINE's
input variable), with the very same rows, splits and linear probe (``linear.py``).

Two places read it:

* the sweep's target bank (``ssl_ray.sweep.bank``): :func:`bank_pixel_baselines` scores every epoch of the
  bank (``bank/pixel_linear_val``, ``bank/pixel_linear_test`` at step = bank epoch) and the class and
  chance-control targets;
* every trial's probes: the ``input`` layer at its first checkpoint (``plan.py``), so the probes table and
  ``results.load`` carry every probed target's baseline beside the layers.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import torch

from ssl_ray.config import ProbeConfig
from ssl_ray.probes.linear import softmax_probe_scores
from ssl_ray.probes.probe_data import ProbeData, clean_inputs
from ssl_ray.probes.target_bank import TargetBank
from ssl_ray.probes.targets import LabelTarget, label_target


def pixel_linear_scores(data: ProbeData, targets: List[LabelTarget], p: ProbeConfig) -> Dict[str, Dict[str, float]]:
    """``{target: {"train", "val", "test": accuracy}}`` of the linear probe on the pooled input pixels of the
    clean rows, fitted on the probe's fit rows of the train split (every target in one problem)."""
    train_x, test_x = clean_inputs(data)
    fit, val = (torch.from_numpy(r) for r in data.clean_split)
    evals = {"val": (train_x[val], [t.val for t in targets]), "test": (test_x, [t.test for t in targets])}
    scores = softmax_probe_scores(
        train_x[fit],
        [t.train for t in targets],
        [t.num_classes for t in targets],
        evals,
        C=p.linear_c,
        max_iter=p.linear_max_iter,
    )
    return {t.name: s for t, s in zip(targets, scores)}


def bank_targets(data: ProbeData, bank: TargetBank) -> List[LabelTarget]:
    """One label target per bank epoch (named ``bank_e<epoch>``) on the probe's clean rows."""
    return [
        label_target(f"bank_e{int(epoch)}", *bank.split_labels(i, data.train_index, data.test_index), *data.clean_split)
        for i, epoch in enumerate(bank.epochs)
    ]


def bank_pixel_baselines(
    data: ProbeData, bank: TargetBank, p: ProbeConfig
) -> Tuple[Dict[str, np.ndarray], Dict[str, Dict[str, float]]]:
    """``(per bank epoch, per other target)``: ``{"val", "test": accuracy per bank epoch}`` of the pixel baseline,
    and ``{target: {"train", "val", "test": accuracy}}`` for the other clean targets of ``data`` (class,
    permuted_1.0, ...), all fitted in one problem."""
    targets = bank_targets(data, bank)
    others = [t for t in data.clean if not t.name.startswith("random_")]
    scores = pixel_linear_scores(data, targets + others, p)
    per_epoch = {split: np.array([scores[t.name][split] for t in targets]) for split in ("val", "test")}
    return per_epoch, {t.name: scores[t.name] for t in others}
