"""Which loader feeds training, and the in-memory one.

``data.loader``:

- ``ffcv``: a ``.beton`` (``data.beton``) through :class:`ssl_ray.data.ffcv_loader.FFCVViews`.
- ``torchvision``: per-sample torchvision transforms in a DataLoader (any dataset).
- ``memory``: the whole split as one uint8 tensor, augmented a batch at a time by
  :class:`ssl_ray.data.augment.BatchAugment` (``digits``, CIFAR: no decoding, no workers).
- ``auto`` (default): ``ffcv`` when a ``.beton`` is given, else ``memory`` for in-memory datasets
  and ``torchvision`` for image folders.

Every loader has the same surface: ``set_epoch(e)``, ``len()`` (steps per epoch) and iteration
giving ``(views (B, V, 3, S, S), labels, superclasses or None, sample indices)``. Each rank gets a
disjoint shard, and ``(seed, epoch)`` fixes both the order and the augmentations, so resuming at
epoch k reproduces epoch k.
"""

from __future__ import annotations

from typing import Optional

import torch

from ssl_ray.data.augment import BatchAugment, build_augment
from ssl_ray.data.datasets import load_dataset
from ssl_ray.data.protocols import view_specs

LOADERS = ("auto", "memory", "torchvision", "ffcv")


def epoch_order(n: int, seed: int, epoch: int, rank: int, world: int) -> torch.Tensor:
    """This rank's sample indices for ``epoch``: a seeded permutation of all n, split into disjoint
    equal shards (the tail that does not divide evenly is dropped, as DistributedSampler(drop_last))."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // world
    return perm[rank * per_rank : (rank + 1) * per_rank]


def resolve_loader(loader: str, beton: Optional[str], in_memory: bool) -> str:
    if loader != "auto":
        return loader
    if beton is not None:
        return "ffcv"
    return "memory" if in_memory else "torchvision"


class TensorViews:
    """In-memory multi-view batches (see the module docstring)."""

    def __init__(
        self, ds, augment: BatchAugment, views: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        self.images, self.labels, self.superclasses = ds.float_images(), ds.labels, ds.superclasses
        self.augment, self.views, self.batch_size = augment, views, batch_size
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, (len(self.labels) // self.world) // self.batch_size)

    def __iter__(self):
        order = epoch_order(len(self.labels), self.seed, self.epoch, self.rank, self.world)
        g = torch.Generator(device="cpu").manual_seed(self.seed * 7919 + self.epoch * 104729 + self.rank)
        for step in range(len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            sup = self.superclasses[idx] if self.superclasses is not None else None
            yield self.augment(self.images[idx], self.views, g), self.labels[idx], sup, idx


def build_train_views(
    cfg, rank: int = 0, world: int = 1, device: Optional[torch.device] = None, views: Optional[int] = None
):
    """The training loader of one rank for an :class:`ssl_ray.config.ExperimentConfig`."""
    d, t = cfg.data, cfg.train
    views = views or d.views
    batch = cfg.optim.batch_size
    threads = max(1, int(d.num_workers or t.cpus_per_worker))
    if d.beton is not None and resolve_loader(d.loader, d.beton, True) == "ffcv":
        from ssl_ray.data.ffcv_loader import FFCVViews

        specs = view_specs(d.augment, views, d.image_size)
        return FFCVViews(
            d.beton, specs, d.image_size, batch, seed=t.seed, rank=rank, world=world, num_workers=threads, device=device
        )
    ds = load_dataset(
        d.dataset, "train", image_size=d.image_size, data_root=d.data_root, superclass_map=d.superclass_map
    )
    kind = resolve_loader(d.loader, None, ds.in_memory)
    if kind == "memory":
        return TensorViews(
            ds, build_augment(d.augment, d.image_size, d.image_size), views, batch, seed=t.seed, rank=rank, world=world
        )
    from ssl_ray.data.torchvision_loader import TorchvisionViews

    return TorchvisionViews(
        ds,
        view_specs(d.augment, views, d.image_size),
        d.image_size,
        batch,
        order_fn=lambda e: epoch_order(len(ds), t.seed, e, rank, world),
        seed=t.seed,
        num_workers=d.num_workers,
        device=device,
    )
