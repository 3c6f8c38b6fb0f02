import math

import pytest
import torch

from ssl_ray.config import OptimConfig
from ssl_ray.train.optim import LARS, build_optimizer, warmup_cosine


def test_lars_one_step_hand_computed():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    w.grad = torch.tensor([[0.6, 0.8]])  # with wd 0: ||u|| = 1
    b.grad = torch.tensor([2.0])
    opt = LARS([w, b], lr=0.1, weight_decay=0.0, momentum=0.9, eta=0.01)
    opt.step()
    # weights: u = g * eta * ||w|| / ||g|| = g * 0.05 -> w - 0.1 * u
    torch.testing.assert_close(w.detach(), torch.tensor([[3.0 - 0.1 * 0.03, 4.0 - 0.1 * 0.04]]))
    # bias: excluded -> plain momentum SGD: b - 0.1 * 2
    torch.testing.assert_close(b.detach(), torch.tensor([0.8]))


def test_lars_weight_decay_only_on_weights():
    w = torch.nn.Parameter(torch.ones(2, 2))
    b = torch.nn.Parameter(torch.ones(2))
    w.grad = torch.zeros(2, 2)
    b.grad = torch.zeros(2)
    LARS([w, b], lr=1.0, weight_decay=0.5, eta=1.0).step()
    # u = 0.5 * w, scaled by ||w|| / ||u|| = 2 -> u = w -> w - 1 * w = 0
    torch.testing.assert_close(w.detach(), torch.zeros(2, 2))
    torch.testing.assert_close(b.detach(), torch.ones(2))


def test_lr_scaled_by_global_batch_and_schedule():
    opt = build_optimizer(
        [torch.nn.Parameter(torch.ones(1))], OptimConfig(optimizer="sgd", lr=0.1, batch_size=128), world_size=4
    )
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 512 / 256)
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0)
