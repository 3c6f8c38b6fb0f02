"""The probe metrics beyond NCC/CDNV, each against an independent computation on data with known
structure: the linear probe against scikit-learn, the geometry against spectra built by hand, MINE
against the analytic mutual information of jointly Gaussian data, the target sets and the target bank."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ssl_ray.errors import ConfigError
from ssl_ray.probes.geometry import manifold_geometry, participation_ratio, powerlaw_alpha, rankme
from ssl_ray.probes.linear import softmax_probe_accuracies
from ssl_ray.probes.metrics import class_mean_distance, linear_probe_accuracy, within_class_variance
from ssl_ray.probes.mine import mine
from ssl_ray.probes.targets import TargetBank, bank_randomness, clean_targets


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
    joint = softmax_probe_accuracies(xt[:400], [t[:400] for t in ys], xt[400:], [t[400:] for t in ys], [8, 3],
                                     max_iter=500, device=torch.device("cpu"))
    alone = [softmax_probe_accuracies(xt[:400], [t[:400]], xt[400:], [t[400:]], [k], max_iter=500,
                                      device=torch.device("cpu"))[0] for t, k in zip(ys, [8, 3])]
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


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_powerlaw_alpha_recovers_the_exponent(alpha):
    eigs = np.arange(1, 41, dtype=float) ** -alpha
    assert powerlaw_alpha(exact_spectrum(eigs)) == pytest.approx(alpha, rel=1e-6)
    assert abs(powerlaw_alpha(np.random.default_rng(1).normal(size=(50000, 20)))) < 0.05


def test_manifold_radius_and_dimension_per_class():
    # class 0: covariance eigenvalues (4, 1, 1): R = sqrt(18), D = 36 / 18 = 2
    # class 1: eigenvalues (1, 1, 1):            R = sqrt(3),  D = 3
    x0 = exact_spectrum([4, 1, 1], n=300, seed=0)
    x1 = exact_spectrum([1, 1, 1], n=500, seed=1) + 100
    x = np.concatenate([x0, x1])
    y = np.array([0] * 300 + [1] * 500)
    r, d = manifold_geometry(x, y)
    assert r == pytest.approx((math.sqrt(18) + math.sqrt(3)) / 2, rel=1e-9)
    assert d == pytest.approx((2 + 3) / 2, rel=1e-9)
    # the batched-by-class computation equals per-class eigendecompositions on random data
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 5)), rng.integers(0, 7, size=300)
    rs, ds = [], []
    for c in range(7):
        lam = np.linalg.eigvalsh(np.cov(x[y == c].T, bias=True))
        rs.append(np.sqrt((lam ** 2).sum()))
        ds.append(lam.sum() ** 2 / (lam ** 2).sum())
    assert manifold_geometry(x, y) == pytest.approx((np.mean(rs), np.mean(ds)), rel=1e-9)


@pytest.mark.parametrize("d,rho", [(2, 0.8), (1, 0.9)])
def test_mine_close_to_analytic_gaussian_mutual_information(d, rho):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, d))
    z = rho * x + math.sqrt(1 - rho ** 2) * rng.normal(size=(4000, d))
    true_mi = -0.5 * d * math.log(1 - rho ** 2)
    est, spread = mine(x, z, seeds=(0, 1, 2), steps=500, batch_size=256)
    assert est == pytest.approx(true_mi, abs=0.12)
    assert spread < 0.1
    indep, _ = mine(x, rng.normal(size=(4000, d)), steps=300)
    assert abs(indep) < 0.05


def test_random_and_superclass_targets():
    class DS:
        def __init__(self, labels, sup):
            self.labels, self.superclasses = torch.tensor(labels), torch.tensor(sup)

    y = np.arange(1000) % 10
    train, test = DS(y[:800], y[:800] // 5), DS(y[800:], y[800:] // 5)
    ts = {t.name: t for t in clean_targets(["sample", "class", "superclass", "random_0.5", "random_1.0"], train, test, seed=0)}
    assert set(ts) == {"class", "superclass", "random_0.5", "random_1.0"}  # sample lives on augmented views
    assert ts["superclass"].num_classes == 2 and torch.equal(ts["class"].test, torch.tensor(y[800:]))
    again = clean_targets(["random_1.0"], train, test, seed=0)[0]
    assert torch.equal(again.train, ts["random_1.0"].train)  # fixed per seed and r
    agree = lambda t: (np.concatenate([t.train, t.test]) == y).mean()  # noqa: E731
    assert agree(ts["random_1.0"]) < 0.2 < 0.5 < agree(ts["random_0.5"]) < 0.7


def test_target_bank_randomness_and_round_trip(tmp_path):
    acc = [0.1, 0.5, 0.8, 0.9]
    assert bank_randomness(acc) == pytest.approx([1.0, 0.5, 0.125, 0.0])
    rng = np.random.default_rng(0)
    bank = TargetBank(np.array([0, 1, 2, 3]), rng.integers(0, 10, (4, 50)), rng.integers(0, 10, (4, 20)), np.array(acc), 10)
    loaded = TargetBank.load(bank.save(tmp_path / "bank.npz"))
    assert np.array_equal(loaded.train, bank.train) and loaded.num_classes == 10
    assert loaded.nearest(0.45) == 1 and loaded.nearest(1.0) == 0 and loaded.nearest(0.0) == 3
    with pytest.raises(ConfigError, match="improves"):
        bank_randomness([0.5, 0.4])
    (tmp_path / "junk.npz").write_bytes(b"not a bank")
    with pytest.raises(ConfigError, match="not a target bank"):
        TargetBank.load(tmp_path / "junk.npz")


def test_supervised_target_bank_from_a_trained_classifier(tmp_path):
    """The study's protocol: a supervised classifier's predictions at successive epochs, written by
    `ssl-ray probe bank` from real checkpoints, become random_<r> targets with r from 1 to 0."""
    import subprocess

    from conftest import PY, ROOT
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.data.datasets import load_dataset
    from ssl_ray.probes.engine import model_from_config
    from ssl_ray.probes.probe_data import build_probe_data
    from ssl_ray.train.loop import supervised_step
    from ssl_ray.train.state import save_state
    from ssl_ray.train.optim import build_optimizer, build_scheduler

    raw = {"data": {"dataset": "digits", "image_size": 8, "augment": "none"},
           "model": {"backbone": "res", "depth": 1, "width": 16, "projector_dims": [32, 10]}, "train": {"mode": "supervised"},
           "optim": {"lr": 0.01, "batch_size": 64}}
    cfg = ExperimentConfig.from_dict(raw).validate()
    torch.manual_seed(0)
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    sched = build_scheduler(opt, 0, 100)
    ds = load_dataset("digits", "train", 8)
    x, y = (ds.images.float() / 255 - 0.5) / 0.5, ds.labels
    for epoch in range(4):
        if epoch:
            for i in range(0, len(y), 64):
                out, _ = supervised_step(model, x[i:i + 64], y[i:i + 64])
                opt.zero_grad()
                out.loss.backward()
                opt.step()
        d = tmp_path / "trial" / f"epoch_{epoch:04d}"
        d.mkdir(parents=True)
        save_state(str(d), model=model, optimizer=opt, scheduler=sched, epoch=epoch, cfg=cfg.to_dict(), mlflow_run_id=None)
    bank_path = tmp_path / "bank.npz"
    proc = subprocess.run([PY, "-m", "ssl_ray.cli", "probe", "bank", "--trial-dir", str(tmp_path / "trial"), "--out", str(bank_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bank = TargetBank.load(bank_path)
    assert list(bank.epochs) == [0, 1, 2, 3] and bank.randomness[0] == 1.0 and bank.randomness[-1] == 0.0
    assert bank.accuracy[-1] > 0.8 > 0.3 > bank.accuracy[0]
    # an SSL trial probed against the bank: random_1.0 = the untrained classifier, random_0.0 = the trained one
    ssl = ExperimentConfig.from_dict({"data": {"dataset": "digits", "image_size": 8},
                                      "probe": {"randomness": "supervised", "target_bank": str(bank_path),
                                                "targets": ["class", "random_0.0", "random_1.0"]}}).validate()
    data = build_probe_data(ssl)
    t = {lt.name: lt for lt in data.clean}
    for name, row in (("random_1.0", 0), ("random_0.0", 3)):
        _, inv = np.unique(np.concatenate([bank.train[row], bank.test[row]]), return_inverse=True)
        assert np.array_equal(np.concatenate([t[name].train, t[name].test]), inv)
    with pytest.raises(ConfigError, match="needs probe.target_bank"):
        ExperimentConfig.from_dict({"probe": {"randomness": "supervised"}}).validate()
