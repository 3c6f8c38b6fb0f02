"""The probe metrics beyond NCC/CDNV, each against an independent computation on data with known
structure: the linear probe against scikit-learn, the geometry against spectra built by hand, MINE
against the analytic mutual information of jointly Gaussian data, the target sets and the target bank."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ssl_ray.errors import ConfigError
from ssl_ray.probes.geometry import participation_ratio, rankme
from ssl_ray.probes.linear import softmax_probe_accuracies
from ssl_ray.probes.metrics import class_mean_distance, linear_probe_accuracy, within_class_variance
from ssl_ray.probes.target_bank import TargetBank, bank_randomness
from ssl_ray.probes.targets import clean_targets, stratified_split


def blobs(n=600, d=16, k=8, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, size=n)
    x = centers[y] + rng.normal(size=(n, d)) * spread
    return x * rng.uniform(0.1, 10, size=d), y  # badly scaled features, as real layers are


def sklearn_accuracy(xtr, ytr, xte, yte, C=1.0):
    sc = StandardScaler().fit(xtr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(C=C, max_iter=1000).fit(sc.transform(xtr), ytr)
    return (m.predict(sc.transform(xte)) == yte).mean()


@pytest.mark.parametrize("spread", [0.5, 3.0])
def test_linear_probe_matches_sklearn(spread):
    x, y = blobs(spread=spread)
    ours = linear_probe_accuracy(x[:400], y[:400], x[400:], y[400:], device=torch.device("cpu"))
    ref = sklearn_accuracy(x[:400], y[:400], x[400:], y[400:])
    assert ours >= ref - 0.01
    assert abs(ours - ref) <= 0.01


def test_linear_probe_separable_is_perfect_and_joint_fit_equals_separate_fits():
    x, y = blobs(spread=0.05)
    assert linear_probe_accuracy(x[:400], y[:400], x[400:], y[400:]) == 1.0
    rng = np.random.default_rng(3)
    y2 = rng.integers(0, 3, size=len(y))  # a second, unrelated label set on the same features
    xt = torch.tensor(x, dtype=torch.float32)
    ys = [torch.tensor(y), torch.tensor(y2)]
    joint = softmax_probe_accuracies(
        xt[:400],
        [t[:400] for t in ys],
        xt[400:],
        [t[400:] for t in ys],
        [8, 3],
        max_iter=500,
        device=torch.device("cpu"),
    )
    alone = [
        softmax_probe_accuracies(
            xt[:400], [t[:400]], xt[400:], [t[400:]], [k], max_iter=500, device=torch.device("cpu")
        )[0]
        for t, k in zip(ys, [8, 3])
    ]
    for (jtr, jte), (atr, ate) in zip(joint, alone):
        assert jtr == pytest.approx(atr, abs=0.006) and jte == pytest.approx(ate, abs=0.006)


def test_within_and_between_class_terms_hand_computed():
    # class 0: (0,0),(2,0) mean (1,0), Var 1; class 1: (10,0),(10,4) mean (10,2), Var 4; ||mu0-mu1||^2 = 85
    x = np.array([[0.0, 0], [2, 0], [10, 0], [10, 4]])
    y = np.array([0, 0, 1, 1])
    assert within_class_variance(x, y) == pytest.approx(2.5)
    assert class_mean_distance(x, y) == pytest.approx(85.0)


def exact_spectrum(eigs, n=4000, seed=0):
    """Data whose covariance (1/N) Xc^T Xc has exactly the eigenvalues ``eigs``."""
    rng = np.random.default_rng(seed)
    d = len(eigs)
    u, _ = np.linalg.qr(rng.normal(size=(n, d)) - 0.0)
    u -= u.mean(0)
    u, _ = np.linalg.qr(u)  # orthonormal columns, each orthogonal to the ones vector
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (u * np.sqrt(np.asarray(eigs) * n)) @ v.T + 5.0


def test_participation_ratio_and_rankme():
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(20000, 32))
    assert participation_ratio(iso) == pytest.approx(32, rel=0.02)
    assert rankme(iso) == pytest.approx(32, rel=0.02)
    # exact spectrum (4, 1, 1, 1, 1): PR = 8^2 / 20
    assert participation_ratio(exact_spectrum([4, 1, 1, 1, 1])) == pytest.approx(64 / 20, rel=1e-9)
    # rank 3 embedded in 64 dims: both measures see 3 dimensions, not 64
    low = rng.normal(size=(5000, 3)) @ rng.normal(size=(3, 64))
    assert participation_ratio(low) < 3.01 and rankme(low) < 3.5


def test_permuted_and_superclass_targets_and_the_validation_split():
    class DS:
        def __init__(self, labels, sup):
            self.labels, self.superclasses = torch.tensor(labels), torch.tensor(sup)

    y = np.arange(1000) % 10
    train, test = DS(y[:800], y[:800] // 5), DS(y[800:], y[800:] // 5)
    fit, val = stratified_split(y[:800], 0.2, seed=0)
    assert len(val) == 160 and np.bincount(y[:800][val]).tolist() == [16] * 10  # stratified by class
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 800
    ts = {
        t.name: t
        for t in clean_targets(
            ["sample", "class", "superclass", "permuted_0.5", "permuted_1.0"], train, test, 0, fit, val
        )
    }
    assert set(ts) == {"class", "superclass", "permuted_0.5", "permuted_1.0"}  # sample lives on augmented views
    assert ts["superclass"].num_classes == 2 and torch.equal(ts["class"].test, torch.tensor(y[800:]))
    assert torch.equal(ts["class"].val, torch.tensor(y[:800][val]))
    again = clean_targets(["permuted_1.0"], train, test, 0, fit, val)[0]
    assert torch.equal(again.train, ts["permuted_1.0"].train)  # fixed per seed and r
    truth = np.concatenate([y[:800][fit], y[:800][val], y[800:]])
    agree = lambda t: (np.concatenate([t.train, t.val, t.test]) == truth).mean()  # noqa: E731
    assert agree(ts["permuted_1.0"]) < 0.2 < 0.5 < agree(ts["permuted_0.5"]) < 0.7
    with pytest.raises(ConfigError, match="needs a target bank"):
        clean_targets(["random_0.5"], train, test, 0, fit, val)


def graded_bank(y_train, y_test, accs=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), seed=0) -> TargetBank:
    """A bank whose epoch e agrees with the truth on a fraction ``accs[e]`` of the images (balanced labels)."""
    rng = np.random.default_rng(seed)
    truth = np.concatenate([y_train, y_test])
    rows, acc = [], []
    for a in accs:
        lab = rng.integers(0, 10, len(truth))
        keep = rng.random(len(truth)) < a
        lab[keep] = truth[keep]
        rows.append(lab)
        acc.append((lab == truth).mean())
    rows = np.stack(rows)
    return TargetBank(np.arange(len(accs)), rows[:, : len(y_train)], rows[:, len(y_train) :], np.array(acc), 10)


def test_target_bank_randomness_round_trip_and_refusals(tmp_path):
    assert bank_randomness([0.1, 0.5, 0.8, 0.9]) == pytest.approx([1.0, 0.5, 0.125, 0.0])
    y = np.arange(600) % 10
    bank = graded_bank(y[:500], y[500:])
    loaded = TargetBank.load(bank.save(tmp_path / "bank.npz"))
    assert np.array_equal(loaded.train, bank.train) and loaded.num_classes == 10
    assert loaded.nearest(1.0) == 0 and loaded.nearest(0.0) == 5
    assert (loaded.entropies() > 0.95).all() and (loaded.classes_used() == 10).all()
    with pytest.raises(ConfigError, match="improves"):
        bank_randomness([0.5, 0.4])
    # a constant labelling at initialization is refused, naming the epoch and its entropy
    degenerate = graded_bank(y[:500], y[500:])
    degenerate.train[0, :], degenerate.test[0, :] = 3, 3
    degenerate.train[0, :5] = 4
    with pytest.raises(ConfigError, match=r"labels of epoch 0 are degenerate \(normalized entropy 0\.0\d"):
        TargetBank.load(degenerate.save(tmp_path / "degenerate.npz"))
    # a gap in randomness over 0.25 is refused
    with pytest.raises(ConfigError, match="no gap over 0.25"):
        TargetBank.load(
            graded_bank(y[:500], y[500:], accs=(0.1, 0.15, 0.2, 0.25, 0.8, 0.95)).save(tmp_path / "gap.npz")
        )
    (tmp_path / "junk.npz").write_bytes(b"not a bank")
    with pytest.raises(ConfigError, match="not a target bank"):
        TargetBank.load(tmp_path / "junk.npz")


def test_untrained_classifier_labels_spread_over_the_classes(tmp_path):
    """The study's protocol from real checkpoints: epoch 0 is the untrained classifier. Its raw arg-max
    gives nearly one class; the bank's rule (each logit standardized over the images) gives labels
    that use every class with entropy >= 0.8, and training takes them to the true classes. Too few
    checkpoints for the coverage rule: `ssl-ray probe bank` refuses with one line."""
    import subprocess

    from conftest import PY, ROOT

    from ssl_ray.config import ExperimentConfig
    from ssl_ray.data.datasets import load_dataset
    from ssl_ray.models.build import load_model, model_from_config
    from ssl_ray.probes.bank import build_target_bank, logits
    from ssl_ray.probes.target_bank import label_entropy
    from ssl_ray.train.optim import build_optimizer, build_scheduler
    from ssl_ray.train.state import save_state
    from ssl_ray.train.steps import supervised_step
    from ssl_ray.validation import validate_experiment

    raw = {
        "data": {"dataset": "digits", "image_size": 16, "augment": "none"},
        "model": {"backbone": "res", "depth": 2, "width": 16, "projector_dims": [32, 10]},
        "train": {"mode": "supervised"},
        "optim": {"lr": 0.01, "batch_size": 64},
    }
    cfg = validate_experiment(ExperimentConfig.from_dict(raw))
    torch.manual_seed(0)
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    sched = build_scheduler(opt, 0, 100)
    ds = load_dataset("digits", "train", 16)
    x, y = (ds.images.float() / 255 - 0.5) / 0.5, ds.labels
    ckpts = []
    for epoch in range(4):
        if epoch:
            model.train()
            for i in range(0, len(y), 64):
                out, _ = supervised_step(model, x[i : i + 64], y[i : i + 64])
                opt.zero_grad()
                out.loss.backward()
                opt.step()
        d = tmp_path / "trial" / f"epoch_{epoch:04d}"
        d.mkdir(parents=True)
        save_state(
            str(d), model=model, optimizer=opt, scheduler=sched, epoch=epoch, cfg=cfg.to_dict(), mlflow_run_id=None
        )
        ckpts.append((epoch, str(d)))
    untrained, _, _ = load_model(ckpts[0][1])
    raw_labels = logits(untrained, ds.images).argmax(1).numpy()
    assert label_entropy(raw_labels, 10) < 0.5  # the raw arg-max: nearly a constant
    bank = build_target_bank(ckpts)
    assert (bank.entropies() >= 0.8).all() and (bank.classes_used() >= 8).all()
    assert bank.randomness[0] == 1.0 and bank.randomness[-1] == 0.0 and bank.accuracy[-1] > 0.8 > 0.3 > bank.accuracy[0]
    proc = subprocess.run(
        [
            PY,
            "-m",
            "ssl_ray.cli",
            "probe",
            "bank",
            "--trial-dir",
            str(tmp_path / "trial"),
            "--out",
            str(tmp_path / "bank.npz"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "need >= 6 points" in proc.stderr, proc.stderr
    assert not (tmp_path / "bank.npz").exists()


def test_random_targets_come_from_the_bank_and_unscorable_targets_are_skipped(tmp_path):
    """random_<r> takes the bank epoch nearest r; a single-class target next to good ones is skipped
    with a reason while the good ones are scored."""
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.data.datasets import load_dataset
    from ssl_ray.probes.probe_data import build_probe_data
    from ssl_ray.probes.scoring import FeatureSet, score_layer
    from ssl_ray.probes.targets import LabelTarget
    from ssl_ray.validation import validate_experiment

    tr, te = load_dataset("digits", "train", 8), load_dataset("digits", "test", 8)
    bank = graded_bank(tr.labels.numpy(), te.labels.numpy())
    path = bank.save(tmp_path / "bank.npz")
    ssl = validate_experiment(
        ExperimentConfig.from_dict(
            {
                "data": {"dataset": "digits", "image_size": 8},
                "probe": {"target_bank": str(path), "targets": ["class", "random_0.0", "random_1.0", "permuted_1.0"]},
            }
        )
    )
    data = build_probe_data(ssl)
    t = {lt.name: lt for lt in data.clean}
    fit, val = data.clean_split
    for name, row in (("random_1.0", 0), ("random_0.0", 5)):
        _, inv = np.unique(np.concatenate([bank.train[row], bank.test[row]]), return_inverse=True)
        n = len(bank.train[row])
        assert np.array_equal(t[name].train, inv[:n][fit]) and np.array_equal(t[name].val, inv[:n][val])
        assert np.array_equal(t[name].test, inv[n:])
    x = torch.tensor(np.random.default_rng(0).normal(size=(len(tr.labels), 8)), dtype=torch.float32)
    xt = torch.tensor(np.random.default_rng(1).normal(size=(len(te.labels), 8)), dtype=torch.float32)
    one = LabelTarget(
        "superclass",
        torch.zeros(len(fit), dtype=torch.long),
        torch.zeros(len(val), dtype=torch.long),
        torch.zeros(len(xt), dtype=torch.long),
        1,
    )
    inputs = torch.cat([x[fit], x[val], xt])
    fs = FeatureSet("clean", x[fit], x[val], xt, inputs, [t["class"], one, t["permuted_1.0"]])
    scores = score_layer("block1", [fs], ssl.probe, probes=["ncc", "linear", "cdnv"])
    assert scores.skipped == {"superclass": f"a single class in its {len(fit)} train labels"}
    assert not any("/superclass/" in k for k in scores.metrics)
    for target in ("class", "permuted_1.0"):
        for m in ("ncc_val", "ncc_test", "linear_val", "linear_test", "cdnv"):
            assert f"probe/{target}/{m}/block1" in scores.metrics
