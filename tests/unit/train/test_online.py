"""The online readings: the rows they read, RankMe's known answer, and that reading leaves the model alone."""

import math

import numpy as np
import pytest
import torch

from ssl_ray.config import ExperimentConfig
from ssl_ray.data.datasets import load_dataset
from ssl_ray.models.build import model_from_config
from ssl_ray.probes.geometry import rankme
from ssl_ray.probes.probe_data import build_probe_data, clean_fit_val_rows
from ssl_ray.train.online import KNN, KNN_EMBEDDING, RANKME, OnlineReader, online_rows, read_due


def cfg(**train):
    return ExperimentConfig.from_dict(
        {
            "data": {"dataset": "digits", "image_size": 16},
            "model": {"depth": 2, "width": 8, "projector_dims": [32, 32]},
            "train": {"epochs": 5, **train},
        }
    )


def test_rows_are_the_probes_fit_and_validation_rows_never_test():
    c = cfg(online_memory=400)
    train = load_dataset("digits", "train", 16)
    mem, queries = online_rows(c, train)
    idx, fit, val = clean_fit_val_rows(c, train)
    rows = np.arange(len(train)) if idx is None else idx
    assert len(mem) == 400 and len(queries) == min(400, len(val))
    assert set(mem) <= set(rows[fit]) and set(queries) <= set(rows[val]) and not set(mem) & set(queries)
    # the probes' own validation rows are the same ones (their test rows are another split altogether)
    data = build_probe_data(ExperimentConfig.from_dict({**c.to_dict(), "probe": {"targets": ["class"]}}))
    assert np.array_equal(data.clean_split[1], val)
    # a cap above the split takes every row; the subsample is seeded
    m2, q2 = online_rows(cfg(online_memory=10**6), train)
    assert len(m2) == len(fit) and len(q2) == len(val)
    assert np.array_equal(online_rows(c, train)[0], mem)


def test_rankme_known_spectrum():
    # X = U diag(s) V^T with singular values s: RankMe = exp(H(p)), p = s/|s|_1 (+1e-7)
    rng = np.random.default_rng(0)
    n, d = 1000, 128
    s = 0.9 ** np.arange(d)
    u, _ = np.linalg.qr(rng.normal(size=(n, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    x = (u * s) @ v.T
    p = s / s.sum() + 1e-7
    assert rankme(x) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert rankme(x * 1e3) == pytest.approx(rankme(x), rel=1e-6)  # free of scale
    assert rankme(x @ np.linalg.qr(rng.normal(size=(d, d)))[0]) == pytest.approx(rankme(x), rel=1e-6)  # and rotation


def test_reading_changes_nothing_and_is_in_range():
    c = cfg(online_memory=300)
    torch.manual_seed(0)
    model = model_from_config(c)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = OnlineReader.from_config(c)(model, torch.device("cpu"))
    assert set(r) == {KNN, KNN_EMBEDDING, RANKME}
    assert 0.1 < r[KNN] <= 1.0 and 0.0 < r[KNN_EMBEDDING] <= 1.0 and 1.0 <= r[RANKME] <= 32.0
    assert model.training  # eval mode only while reading; BatchNorm running stats untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_non_finite_embedding_reads_nan():
    c = cfg(online_memory=50)
    model = model_from_config(c)
    with torch.no_grad():
        next(model.projector.parameters()).fill_(float("nan"))
    r = OnlineReader.from_config(c)(model, torch.device("cpu"))
    assert all(math.isnan(v) for v in r.values())


def test_due_epochs():
    assert [e for e in range(11) if read_due(e, 3, 10)] == [0, 3, 6, 9, 10]
    assert not any(read_due(e, 0, 10) for e in range(11))
