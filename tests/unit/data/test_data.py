import torch

from ssl_ray.data import build_augment, load_dataset


def test_digits_split_is_fixed_and_disjoint():
    tr = load_dataset("digits", "train", image_size=16)
    te = load_dataset("digits", "test", image_size=16)
    assert len(tr) + len(te) == 1797
    assert tr.images.shape[1:] == (3, 16, 16) and tr.images.dtype == torch.uint8
    assert set(tr.labels.tolist()) == set(range(10)) == set(te.labels.tolist())
    tr2 = load_dataset("digits", "train", image_size=16)
    assert torch.equal(tr.images, tr2.images) and torch.equal(tr.labels, tr2.labels)
    # no test image is also a train image
    flat_tr = {bytes(x.numpy().tobytes()) for x in tr.images}
    overlap = sum(bytes(x.numpy().tobytes()) in flat_tr for x in te.images)
    assert overlap <= 2  # sklearn's digits has a couple of exact duplicates across the set


def test_augment_shapes_determinism_and_views_differ():
    x = load_dataset("digits", "train").float_images()[:16]
    aug = build_augment("digits")
    v1 = aug(x, 3, torch.Generator().manual_seed(0))
    v2 = aug(x, 3, torch.Generator().manual_seed(0))
    assert v1.shape == (16, 3, 3, 16, 16)
    assert torch.equal(v1, v2)
    assert not torch.allclose(v1[:, 0], v1[:, 1])


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([torch.as_tensor(b[3]) for b in batches])


def test_memory_and_torchvision_loaders_replay_any_epoch():
    """A fresh loader started at epoch 1 (a resume) gives exactly epoch 1's batches; the torchvision
    loader's augmentations do not depend on how many worker processes draw them."""
    from ssl_ray.data.loaders import TensorViews, epoch_order
    from ssl_ray.data.protocols import view_specs
    from ssl_ray.data.torchvision_loader import TorchvisionViews

    ds = load_dataset("digits", "test", image_size=16)

    def memory():
        return TensorViews(ds, build_augment("simclr", 16, 16), 2, 64, seed=4)

    def tv(workers):
        return TorchvisionViews(
            ds,
            view_specs("byol", 2, 16),
            16,
            64,
            order_fn=lambda e: epoch_order(len(ds), 4, e, 0, 1),
            seed=4,
            num_workers=workers,
        )

    for make in (memory, lambda: tv(0)):
        a = make()
        v0, i0 = _epoch(a, 0)
        v1, i1 = _epoch(a, 1)
        w1, j1 = _epoch(make(), 1)
        assert torch.equal(v1, w1) and torch.equal(i1, j1)
        assert not torch.equal(i0, i1) and v0.shape == v1.shape == (5 * 64, 2, 3, 16, 16)
    x1, k1 = _epoch(tv(2), 1)
    assert torch.equal(x1, v1) and torch.equal(k1, i1)


def test_torchvision_views_take_every_seed_a_trial_or_the_bank_can_have():
    """torch takes seeds below 2**64; the per-sample seed of a train.seed from about 8600 up (and of the target
    bank's classifier, from 2**31) used to overflow it, in the first batch of the first epoch."""
    from ssl_ray.config import BANK_SEED_BASE
    from ssl_ray.data.protocols import view_specs
    from ssl_ray.data.torchvision_loader import MultiViewDataset

    ds = load_dataset("digits", "test", image_size=16)
    for seed in (9000, BANK_SEED_BASE - 1, BANK_SEED_BASE + 5):
        views, *_ = MultiViewDataset(ds, view_specs("byol", 2, 16), 16, seed=seed)[3]
        assert views.shape == (2, 3, 16, 16)
