"""The images every checkpoint of a trial is probed on, and their targets.

Two feature sets:

* ``clean``: the dataset's train and test splits, center-resized to the training image size (seeded
  subsamples beyond ``probe.max_train_images`` / ``max_test_images``). The class, superclass, random
  and permuted targets live here. A stratified (by class), seeded ``probe.val_fraction`` of the train
  rows is held out as validation.
* ``sample``: ``N_s`` train images, each augmented ``A_train + A_test`` times with the trial's view
  protocol; the first ``A_train`` views of every image form the probe's train set (its last
  ``val_fraction`` of them the validation rows), the rest its test set, and the label is the image's
  index.

MINE's input variable (``pooled_inputs``): the normalized image average-pooled to at most 8 x 8 per
channel and flattened (192 numbers for 3 channels). MINE's critic is trained on a few thousand pairs, so
the input must be low-dimensional for the estimate to mean anything; 8 x 8 keeps the coarse layout
(for the bundled digits it is their original resolution: scikit-learn's digits are 8 x 8 images).

Everything is fixed by ``probe.seed``, so every checkpoint of a trial (and a re-run, or a backfill) sees
the very same views. Sample views are generated on the fly in chunks, so a full-size sample set never
has to sit in memory as float images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ssl_ray.config import ExperimentConfig
from ssl_ray.data.augment import BatchAugment, build_augment, normalize, to_unit_float
from ssl_ray.data.containers import ArrayDataset, FileDataset
from ssl_ray.data.datasets import DATASETS, load_dataset
from ssl_ray.errors import ConfigError
from ssl_ray.probes.target_bank import TargetBank
from ssl_ray.probes.target_names import default_targets
from ssl_ray.probes.targets import LabelTarget, clean_targets, label_target, needs_bank, stratified_split

INPUT_SIDE = 8  # MINE sees each input average-pooled to at most 8 x 8 per channel
CHUNK_VIEWS = 512  # sample views generated per chunk


@dataclass
class ProbeData:
    train: ArrayDataset
    test: ArrayDataset
    sample_images: torch.Tensor  # (N_s, 3, S, S) uint8
    train_views: int
    test_views: int
    augment: BatchAugment
    targets: List[str]
    clean: List[LabelTarget]
    seed: int
    clean_split: Tuple[np.ndarray, np.ndarray]  # (fit rows, validation rows) of the clean train split
    val_fraction: float = 0.2
    train_index: Optional[np.ndarray] = None  # the clean rows' indices in the full splits (None: all of them)
    test_index: Optional[np.ndarray] = None

    @property
    def has_sample(self) -> bool:
        return "sample" in self.targets

    @property
    def sample_split(self) -> Tuple[np.ndarray, np.ndarray]:
        """(fit rows, validation rows) of the sample train views: the last ``val_fraction`` of each image's
        ``A_train`` views (at least one when it has two) are its validation rows."""
        a = self.train_views
        k = min(max(1, int(round(self.val_fraction * a))), a - 1) if a >= 2 else 0
        pos = np.tile(np.arange(a), self.sample_images.shape[0])
        return np.flatnonzero(pos < a - k), np.flatnonzero(pos >= a - k)

    def sample_target(self) -> LabelTarget:
        ids = np.arange(self.sample_images.shape[0])
        return label_target(
            "sample", np.repeat(ids, self.train_views), np.repeat(ids, self.test_views), *self.sample_split
        )

    def clean_batches(self, split: str, batch_size: int) -> Iterator[torch.Tensor]:
        images = (self.train if split == "train" else self.test).images
        for i in range(0, images.shape[0], batch_size):
            yield normalize(to_unit_float(images[i : i + batch_size]))

    def sample_batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """``(train views, test views)`` chunks, image-major: image i's A_train views, then image i+1's."""
        a_tr, a_te = self.train_views, self.test_views
        per = max(1, CHUNK_VIEWS // (a_tr + a_te))
        g = torch.Generator().manual_seed(self.seed)
        for i in range(0, self.sample_images.shape[0], per):
            views = self.augment(to_unit_float(self.sample_images[i : i + per]), a_tr + a_te, g)
            yield views[:, :a_tr].flatten(0, 1), views[:, a_tr:].flatten(0, 1)


def pooled_inputs(x: torch.Tensor) -> torch.Tensor:
    """What MINE takes as the input: normalized images average-pooled to <= 8 x 8, flattened."""
    side = min(INPUT_SIDE, x.shape[-1])
    return F.adaptive_avg_pool2d(x, side).flatten(1)


def _take(ds, idx: np.ndarray):
    """The samples ``idx`` of an array or file dataset (a file dataset's images are not decoded)."""
    t = torch.from_numpy(idx)
    sup = ds.superclasses[t] if ds.superclasses is not None else None
    if ds.in_memory:
        return ArrayDataset(ds.images[t], ds.labels[t], sup, ds.num_classes, ds.num_superclasses)
    return FileDataset(
        [ds.paths[i] for i in idx], ds.labels[t], sup, ds.num_classes, ds.num_superclasses, ds.class_names
    )


def subset_index(n: int, limit: int, seed: int) -> Optional[np.ndarray]:
    """The rows (seeded, in dataset order) of a set of ``n`` samples cut to ``limit``; None: all of them."""
    if n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def take(ds, idx: Optional[np.ndarray], image_size: int) -> ArrayDataset:
    """The samples ``idx`` (None: all) of an array or file dataset, in memory at ``image_size``."""
    return (ds if idx is None else _take(ds, idx)).to_array(image_size)


def clean_fit_val_rows(cfg: ExperimentConfig, train) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """``(subset, fit, val)`` of the clean train split: the probe's seeded subsample of the full split
    (:func:`subset_index`) and its stratified (fit, validation) rows, indexed within that subsample."""
    p = cfg.probe
    idx = subset_index(len(train), p.max_train_images, p.seed)
    labels = train.labels.numpy() if idx is None else train.labels[torch.from_numpy(idx)].numpy()
    return (idx, *stratified_split(labels, p.val_fraction, p.seed))


def resolve_targets(cfg: ExperimentConfig, has_superclasses: bool) -> List[str]:
    return list(cfg.probe.targets) if cfg.probe.targets else default_targets(has_superclasses)


def sample_settings(cfg: ExperimentConfig) -> Tuple[int, int, int, str]:
    """``(images, train views, test views, protocol)`` of the sample-level target."""
    p, d = cfg.probe, cfg.data
    source = DATASETS.get(d.dataset)
    n, a_tr, a_te = source.sample_probe
    aug = p.sample_augment or (d.augment if d.augment != "none" else source.sample_augment)
    return (p.sample_images or n, p.sample_train_views or a_tr, p.sample_test_views or a_te, aug)


def build_probe_data(cfg: ExperimentConfig) -> ProbeData:
    d, p = cfg.data, cfg.probe
    full_train = load_dataset(d.dataset, "train", d.image_size, d.data_root, d.superclass_map)
    full_test = load_dataset(d.dataset, "test", d.image_size, d.data_root, d.superclass_map)
    tr_idx, *split = clean_fit_val_rows(cfg, full_train)
    te_idx = subset_index(len(full_test), p.max_test_images, p.seed + 1)
    train, test = take(full_train, tr_idx, d.image_size), take(full_test, te_idx, d.image_size)
    targets = resolve_targets(cfg, train.superclasses is not None)
    bank = None
    if needs_bank(targets):
        if p.target_bank is None:
            raise ConfigError(
                "random_<r> probe targets need a target bank: probe.target_bank (a sweep builds one "
                "before its trials; `ssl-ray probe bank` writes one from a supervised trial)"
            )
        bank = TargetBank.load(p.target_bank).check_dataset(
            len(full_train), len(full_test), full_train.num_classes, f"target bank {p.target_bank}"
        )
    clean = clean_targets(targets, train, test, p.seed, *split, bank=bank, train_index=tr_idx, test_index=te_idx)
    n_s, a_tr, a_te, aug = sample_settings(cfg)
    if "sample" in targets:
        n_s = min(n_s, len(full_train))
        pick = np.sort(np.random.default_rng([p.seed, 7]).choice(len(full_train), size=n_s, replace=False))
        sample_images = _take(full_train, pick).to_array(d.image_size).images
    else:
        sample_images = torch.empty(0, 3, d.image_size, d.image_size, dtype=torch.uint8)
    return ProbeData(
        train,
        test,
        sample_images,
        a_tr,
        a_te,
        build_augment(aug, d.image_size),
        targets,
        clean,
        p.seed,
        tuple(split),
        p.val_fraction,
        tr_idx,
        te_idx,
    )


def clean_inputs(data: ProbeData, batch_size: int = 512) -> Tuple[torch.Tensor, torch.Tensor]:
    """The pooled inputs (:func:`pooled_inputs`) of the clean train and test rows."""
    return tuple(
        torch.cat([pooled_inputs(x) for x in data.clean_batches(split, batch_size)]) for split in ("train", "test")
    )
