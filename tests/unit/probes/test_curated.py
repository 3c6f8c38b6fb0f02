"""What a trial's MLflow run carries by default: the readings a reader compares (``probes.curated``)."""

from ssl_ray.probes.curated import curated, curated_pairs

TARGETS = [
    "sample",
    "class",
    "superclass",
    "random_0.0",
    "random_0.25",
    "random_0.5",
    "random_1.0",
    "permuted_0.5",
    "permuted_1.0",
]
METRICS = [
    "ncc_train",
    "ncc_val",
    "ncc_test",
    "linear_train",
    "linear_val",
    "linear_test",
    "cdnv",
    "within_var",
    "mi_exact",
    "mi_gaussian",
    "mine",
    "mine_std",
    "rankme",
    "alpha",
    "participation_ratio",
]


def test_curated_keeps_the_levels_the_random_ends_and_the_chance_control():
    layer = {f"probe/{t}/{m}/block2": 0.5 for t in TARGETS for m in METRICS}
    kept = curated({**layer, "train/loss": 1.0, "online/knn_val": 0.9})
    assert "train/loss" in kept and "online/knn_val" in kept  # not probe keys: always kept
    probe = {k for k in kept if k.startswith("probe/")}
    want = {
        f"probe/{t}/{m}/block2"
        for t in ("sample", "class", "superclass", "random_0.0", "random_1.0", "permuted_1.0")
        for m in ("ncc_test", "linear_test")
    } | {f"probe/class/{m}/block2" for m in ("cdnv", "mi_exact", "mine", "rankme")}
    assert probe == want and len(probe) == 16
    assert curated(layer, "all") == layer


def test_the_ends_follow_the_targets_a_trial_has():
    pairs = curated_pairs(["class", "random_0.5", "random_0.75", "permuted_0.25"])
    assert {t for t, _ in pairs} == {"class", "random_0.5", "random_0.75", "permuted_0.25"}
    assert curated_pairs(["class"]) == {
        ("class", m) for m in ("ncc_test", "linear_test", "cdnv", "mi_exact", "mine", "rankme")
    }
