"""PBT's exploit through our checkpoints, piece by piece (the whole sweep: tests/e2e/test_search.py, slow):
where a trial starts from a Tune checkpoint reference, and the learning rate of a state restored from
another trial."""

import json

import pytest
import torch

from ssl_ray.sweep.lineage import POINTER, StartPoint, start_point
from ssl_ray.train.optim import build_scheduler, rescale_lr


def reference(tmp_path, **ref):
    from ray.train import Checkpoint

    d = tmp_path / f"ref_{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    (d / POINTER).write_text(json.dumps(ref))
    return Checkpoint.from_directory(str(d))


def test_start_points(tmp_path):
    assert start_point("t1", None) == StartPoint("t1")  # a fresh trial: a Ray Train run of its own name
    own = reference(tmp_path, trial_id="t1", train_run="t1-from-t2-e4", path="/x/epoch_0006", epoch=6)
    assert start_point("t1", own) == StartPoint("t1-from-t2-e4")  # its own reference: that run resumes itself
    donor = {"trial_id": "t2", "train_run": "t2", "path": "/x/t2/epoch_0004", "epoch": 4}
    got = start_point("t1", reference(tmp_path, **donor))
    assert got.train_run == "t1-from-t2-e4" and got.donor == donor  # an exploit: a new run from the donor's state


def test_rescale_lr_keeps_the_schedule_position():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = build_scheduler(opt, warmup_steps=2, total_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    before = opt.param_groups[0]["lr"]
    rescale_lr(opt, sched, 0.25)
    assert opt.param_groups[0]["lr"] == pytest.approx(before * 0.25)
    sched.step()
    ref_opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=0.25e-3)
    ref = build_scheduler(ref_opt, warmup_steps=2, total_steps=10)
    for _ in range(6):
        ref_opt.step()
        ref.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(
        ref_opt.param_groups[0]["lr"]
    )  # as if trained at 0.25e-3 throughout
