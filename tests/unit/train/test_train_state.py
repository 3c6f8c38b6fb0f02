"""The pieces of fault tolerance that need no cluster: the collapse monitor, the stop verdict, what a
checkpoint holds, and reading a damaged one."""

import math
import random

import numpy as np
import pytest
import torch

from ssl_ray.checkpoints import CorruptCheckpoint, checkpoint_dir_name, checkpoint_epoch, load_state
from ssl_ray.config import ExperimentConfig
from ssl_ray.models.build import model_from_config
from ssl_ray.tracking import TrialStatus
from ssl_ray.train.health import EpochHealth, normalized_embedding_std, verdict
from ssl_ray.train.optim import build_optimizer, build_scheduler
from ssl_ray.train.state import rng_state, save_state, set_rng_state
from ssl_ray.validation import validate_experiment


def test_normalized_embedding_std_by_hand():
    # two samples, (3, 4) and (-3, 4): normalized (0.6, 0.8) and (-0.6, 0.8); biased std per dim (0.6, 0)
    z = torch.tensor([[3.0, 4.0], [-3.0, 4.0]])
    assert float(normalized_embedding_std(z)) == pytest.approx(0.3)
    # every image on the same vector: collapsed, whatever the scale
    assert float(normalized_embedding_std(torch.full((64, 16), 7.0))) == 0.0
    # spread over the sphere: about 1/sqrt(D)
    g = torch.Generator().manual_seed(0)
    assert float(normalized_embedding_std(torch.randn(4096, 128, generator=g))) == pytest.approx(128**-0.5, rel=0.02)
    # views are more samples: (B, V, D) is read as (B*V, D)
    zz = torch.randn(8, 2, 16, generator=g)
    assert float(normalized_embedding_std(zz)) == pytest.approx(float(normalized_embedding_std(zz.reshape(16, 16))))


def test_verdict():
    assert verdict(0, 0.08, 1e-4, 3) is None
    status, reason = verdict(2, 0.08, 1e-4, 3)
    assert status == TrialStatus.DIVERGED and reason == "non-finite loss in 2 step(s) of epoch 3"
    assert verdict(0, math.nan, 1e-4, 3)[0] == TrialStatus.DIVERGED
    status, reason = verdict(0, 1e-6, 1e-4, 5)
    assert status == TrialStatus.COLLAPSED and "epoch 5" in reason and "1.00e-06 < train.collapse_std 0.0001" in reason
    assert verdict(0, 1e-6, 0.0, 5) is None  # 0 disables the collapse check
    h = EpochHealth()
    h.update(1.0, torch.full((4, 3), 2.0))
    h.update(float("inf"), torch.full((4, 3), 2.0))
    assert h.nonfinite_steps == 1 and h.embedding_std == 0.0
    h.update(torch.tensor(float("nan")), None)
    assert h.nonfinite_steps == 2 and h.steps == 3


def test_checkpoint_names():
    assert checkpoint_dir_name(8) == "epoch_0008" and checkpoint_epoch("epoch_0008") == 8
    assert checkpoint_epoch(checkpoint_dir_name(8, "1732350000")) == 8
    assert checkpoint_epoch("/a/b/epoch_0012/") == 12
    assert checkpoint_epoch("checkpoint_manager_snapshot.json") is None


def test_checkpoint_holds_the_whole_training_state_and_restores_every_rng(tmp_path):
    cfg = validate_experiment(ExperimentConfig.from_dict({"model": {"depth": 1, "width": 4, "projector_dims": [8]}}))
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    sched = build_scheduler(opt, 1, 10)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    save_state(
        str(tmp_path), model=model, optimizer=opt, scheduler=sched, epoch=7, cfg=cfg.to_dict(), mlflow_run_id="abc"
    )
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    state = load_state(str(tmp_path))
    assert state["epoch"] == 7 and state["mlflow_run_id"] == "abc" and state["data_seed"] == cfg.train.seed
    assert {"model", "optimizer", "scheduler", "rng", "config"} <= set(state)
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    set_rng_state(state["rng"])
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]
    assert set(rng_state()) >= {"torch", "numpy", "python"}


def test_damaged_checkpoint_is_reported_not_loaded(tmp_path):
    cfg = validate_experiment(ExperimentConfig.from_dict({"model": {"depth": 1, "width": 4, "projector_dims": [8]}}))
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    save_state(
        str(tmp_path),
        model=model,
        optimizer=opt,
        scheduler=build_scheduler(opt, 1, 10),
        epoch=1,
        cfg=cfg.to_dict(),
        mlflow_run_id=None,
    )
    f = tmp_path / "state.pt"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(CorruptCheckpoint, match="state.pt: cannot be read"):
        load_state(str(tmp_path))
    torch.save({"model": {}, "epoch": 1}, f)
    with pytest.raises(CorruptCheckpoint, match="incomplete training state \\(missing optimizer, scheduler, config\\)"):
        load_state(str(tmp_path))
