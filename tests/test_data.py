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
