"""Every view protocol against a table written from the papers and the authors' code (not from
protocols.py): SimCLR (Chen et al. 2020, App. A and B.9), BYOL (Grill et al. 2020, Table 6), MMCR
(Yerxa et al. 2023; ThomasYerxa/mmcr, mmcr/imagenet/data.py and mmcr/cifar_stl/data.py)."""

import pytest

from ssl_ray.data.protocols import view_specs

FIELDS = (
    "crop_scale",
    "hflip_p",
    "jitter_p",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "grayscale_p",
    "blur_p",
    "solarize_p",
)
#               crop          flip jit_p  b    c    s    h    gray blur  sol
SIMCLR_IN = ((0.08, 1.0), 0.5, 0.8, 0.8, 0.8, 0.8, 0.2, 0.2, 0.5, 0.0)  # s = 1.0, blur 0.5
SIMCLR_C = ((0.08, 1.0), 0.5, 0.8, 0.4, 0.4, 0.4, 0.1, 0.2, 0.0, 0.0)  # s = 0.5, no blur
BYOL_1 = ((0.08, 1.0), 0.5, 0.8, 0.4, 0.4, 0.2, 0.1, 0.2, 1.0, 0.0)
BYOL_2 = ((0.08, 1.0), 0.5, 0.8, 0.4, 0.4, 0.2, 0.1, 0.2, 0.1, 0.2)
MMCR_CIFAR = ((0.08, 1.0), 0.5, 0.8, 0.4, 0.4, 0.4, 0.1, 0.2, 0.0, 0.0)  # CifarBatchTransform

PAPER_TABLE = {
    # (protocol, image size, views): the views in order
    ("simclr", 224, 2): [SIMCLR_IN, SIMCLR_IN],
    ("simclr", 64, 2): [SIMCLR_IN, SIMCLR_IN],
    ("simclr", 32, 2): [SIMCLR_C, SIMCLR_C],
    ("byol", 224, 2): [BYOL_1, BYOL_2],
    ("byol", 32, 4): [BYOL_1, BYOL_2, BYOL_1, BYOL_2],
    ("mmcr", 224, 4): [BYOL_1, BYOL_2, BYOL_1, BYOL_2],  # Barlow_Transform: 2i first view, 2i+1 second
    ("mmcr", 64, 2): [BYOL_1, BYOL_2],
    ("mmcr", 32, 3): [MMCR_CIFAR, MMCR_CIFAR, MMCR_CIFAR],
}


@pytest.mark.parametrize("key", list(PAPER_TABLE), ids=lambda k: f"{k[0]}-{k[1]}px-{k[2]}views")
def test_protocol_parameters_match_the_papers(key):
    name, size, views = key
    specs = view_specs(name, views, size)
    got = [tuple(tuple(getattr(s, f)) if f == "crop_scale" else getattr(s, f) for f in FIELDS) for s in specs]
    for i, (g, want) in enumerate(zip(got, PAPER_TABLE[key])):
        for f, a, b in zip(FIELDS, g, want):
            assert a == pytest.approx(b), f"{name} at {size} px, view {i}: {f} is {a}, the paper's is {b}"
    assert all(s.blur_sigma == (0.1, 2.0) for s in specs if s.blur_p > 0)
    assert all(s.crop_ratio == pytest.approx((3 / 4, 4 / 3)) for s in specs)
