"""Datasets in their true on-disk formats, through both loaders (torchvision and FFCV): counts, fine
and coarse labels, and pixels equal to the sources (raw mode), near-equal at JPEG quality 100."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from fakedata import CLASSES, write_cifar10, write_cifar100, write_imagefolder
from PIL import Image

from ssl_ray.data import load_dataset, view_specs
from ssl_ray.data.beton import inspect_beton, write_beton
from ssl_ray.data.torchvision_loader import TorchvisionViews
from ssl_ray.errors import ConfigError


def to_uint8(views: torch.Tensor) -> np.ndarray:
    """Normalized (B, 3, H, W) -> uint8 (B, H, W, 3)."""
    return ((views * 0.5 + 0.5) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def drain(loader):
    """Every batch of one pass of a loader, as uint8 images and numpy labels/superclasses/indices."""
    out = {"img": [], "y": [], "sup": [], "idx": []}
    for views, y, sup, idx in loader:
        out["img"].append(to_uint8(views[:, 0]))
        out["y"].append(y.numpy())
        out["sup"].append(sup.numpy())
        out["idx"].append(idx.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def torchvision_all(ds, size):
    return drain(
        TorchvisionViews(
            ds,
            view_specs("none", 1, size),
            size,
            batch_size=7,
            order_fn=lambda e: torch.arange(len(ds)),
            drop_last=False,
        )
    )


def ffcv_all(path, size):
    from ssl_ray.data.ffcv_loader import FFCVViews

    return drain(FFCVViews(str(path), view_specs("none", 1, size), size, batch_size=7, shuffle=False, drop_last=False))


def test_cifar100_pickles_through_both_loaders(tmp_path):
    root = write_cifar100(tmp_path / "data", n_train=40, n_test=20)
    with open(root / "cifar-100-python" / "train", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    src = raw[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    ds = load_dataset("cifar100", "train", data_root=str(root))
    assert len(ds) == 40 and len(load_dataset("cifar100", "test", data_root=str(root))) == 20
    assert ds.num_classes == 100 and ds.num_superclasses == 20
    assert ds.labels.tolist() == raw[b"fine_labels"] and ds.superclasses.tolist() == raw[b"coarse_labels"]

    tv = torchvision_all(ds, 32)
    assert len(tv["y"]) == 40
    np.testing.assert_array_equal(tv["img"], src)
    assert tv["y"].tolist() == raw[b"fine_labels"] and tv["sup"].tolist() == raw[b"coarse_labels"]

    beton = write_beton(ds, tmp_path / "c100.beton", write_mode="raw", num_workers=1)
    info = inspect_beton(beton)
    assert info.num_samples == 40 and info.num_classes <= 100 and info.labels.tolist() == raw[b"fine_labels"]
    ff = ffcv_all(beton, 32)
    assert len(ff["y"]) == 40 and ff["idx"].tolist() == list(range(40))
    np.testing.assert_array_equal(ff["img"], src)
    assert ff["y"].tolist() == raw[b"fine_labels"] and ff["sup"].tolist() == raw[b"coarse_labels"]

    # JPEG at quality 100 (4:2:0 chroma, as FFCV's cv2 encoder writes it): close to the source
    jb = write_beton(ds, tmp_path / "c100_jpg.beton", write_mode="jpg", jpeg_quality=100, num_workers=1)
    fj = ffcv_all(jb, 32)
    assert fj["y"].tolist() == raw[b"fine_labels"]
    mse = ((fj["img"].astype(float) - src.astype(float)) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 33, mse  # PSNR in dB; a wrong decode is far below


def test_cifar10_batches(tmp_path):
    root = write_cifar10(tmp_path / "data", n_per_batch=6)
    tr = load_dataset("cifar10", "train", data_root=str(root))
    te = load_dataset("cifar10", "test", data_root=str(root))
    assert len(tr) == 30 and len(te) == 6 and tr.superclasses is None and tr.num_classes == 10
    with open(root / "cifar-10-batches-py" / "data_batch_3", "rb") as f:
        b3 = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(tr.images[12:18].numpy(), b3[b"data"].reshape(-1, 3, 32, 32))
    assert tr.labels[12:18].tolist() == b3[b"labels"]


def test_cifar_pickle_that_names_code_is_refused(tmp_path):
    root = write_cifar10(tmp_path / "data", n_per_batch=2)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(
        ConfigError, match="test_batch: not a CIFAR python-version pickle.*refusing to load builtins.print"
    ):
        load_dataset("cifar10", "test", data_root=str(root))


def test_imagefolder_through_both_loaders(tmp_path):
    root = write_imagefolder(tmp_path / "folder", per_class=(3, 2), size=(24, 24))
    ds = load_dataset("imagefolder", "train", data_root=str(root), superclass_map=str(root / "superclasses.json"))
    classes = sorted(CLASSES)
    supers = sorted(set(CLASSES.values()))
    assert len(ds) == 9 and ds.num_classes == 3 and ds.num_superclasses == 2 and ds.class_names == classes
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.superclasses.tolist() == [supers.index(CLASSES[classes[y]]) for y in ds.labels.tolist()]
    src = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in ds.paths])
    test = load_dataset("imagefolder", "test", data_root=str(root))
    assert len(test) == 6 and test.labels.tolist() == [0, 0, 1, 1, 2, 2]

    tv = torchvision_all(ds, 24)
    np.testing.assert_array_equal(tv["img"], src)
    assert tv["y"].tolist() == ds.labels.tolist() and tv["sup"].tolist() == ds.superclasses.tolist()

    beton = write_beton(ds, tmp_path / "folder.beton", write_mode="raw", num_workers=1)
    ff = ffcv_all(beton, 24)
    np.testing.assert_array_equal(ff["img"], src)
    assert ff["y"].tolist() == ds.labels.tolist() and ff["sup"].tolist() == ds.superclasses.tolist()


def test_imagenet_layout_reads_val_and_varied_sizes(tmp_path):
    root = write_imagefolder(
        tmp_path / "inet", per_class=(2, 1), size=(20, 30), fmt="JPEG", val_name="val", varied_sizes=True
    )
    tr = load_dataset("imagenet", "train", data_root=str(root))
    va = load_dataset("imagenet", "test", data_root=str(root))
    assert len(tr) == 6 and len(va) == 3 and tr.superclasses is None
    arr = va.to_array(16)
    assert arr.images.shape == (3, 3, 16, 16) and arr.images.dtype == torch.uint8
    # varied sizes go through FFCV's center-crop decoder, to the requested size
    beton = write_beton(tr, tmp_path / "inet.beton", write_mode="jpg", jpeg_quality=95, num_workers=1)
    info = inspect_beton(beton)
    assert (info.max_height, info.max_width) == (24, 32)
    ff = ffcv_all(beton, 16)
    assert ff["img"].shape == (6, 16, 16, 3) and ff["y"].tolist() == tr.labels.tolist()


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda root: None, "needs data.data_root"),
        (lambda root: str(root / "nope"), "no such directory"),
        (lambda root: str(write_cifar100(root / "d") and (root / "d")), None),
    ],
)
def test_cifar_root_errors(tmp_path, setup, message):
    from ssl_ray.data.datasets import DATASETS

    root = setup(tmp_path)
    if message is None:
        (tmp_path / "d" / "cifar-100-python" / "test").unlink()
        message = "missing cifar-100-python/test"
    with pytest.raises(ConfigError, match=message):
        DATASETS.get("cifar100").check("cifar100", root)
