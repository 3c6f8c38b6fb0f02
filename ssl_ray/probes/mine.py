"""MINE: a lower bound on the mutual information between an input and its embedding.

Belghazi et al., "Mutual Information Neural Estimation", ICML 2018. For any statistics network
``T(x, z)`` the Donsker-Varadhan representation gives::

    I(X; Z) >= E_{P_XZ}[T] - log E_{P_X x P_Z}[exp T]

``T`` (a small MLP on ``[x, z]``, inputs standardized) is trained on 80% of the pairs to raise the bound, with the paper's
bias-corrected gradient (the denominator of the second term's gradient is a moving average). The bound
is then *evaluated on the held-out 20%*, with the marginal term over every (x_i, z_j) pair of that
split (at most ``max_eval`` = 256 samples, so 65,536 pairs), so the estimate is a valid lower bound on
fresh data and not an overfit one. It is in nats and cannot exceed ``log`` of the held-out size. :func:`mine` averages several seeds (each its own split,
initialization and batches, trained together) and reports the spread.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Array = Union[np.ndarray, torch.Tensor]


def dv_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """``mean(T_joint) - log mean(exp(T_marginal))``, computed stably."""
    return t_joint.mean() - (torch.logsumexp(t_marginal.flatten(), 0) - math.log(t_marginal.numel()))


class StatisticsNetworks(nn.Module):
    """``S`` independent statistics networks ``T_s(x, z) = MLP([x, z])`` (two ELU hidden layers), one per
    seed, evaluated together with batched matmuls. Their parameters never mix, and Adam is elementwise,
    so training them at once is training each alone -- at about the cost of one."""

    def __init__(self, seeds: Sequence[int], dx: int, dz: int, hidden: int):
        super().__init__()

        gens = [torch.Generator().manual_seed(s) for s in seeds]

        def init(fan_in: int, *shape: int) -> nn.Parameter:  # nn.Linear's default, one stream per network
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in gens]))

        self.w1x, self.w1z, self.b1 = init(dx + dz, dx, hidden), init(dx + dz, dz, hidden), init(dx + dz, 1, hidden)
        self.w2, self.b2 = init(hidden, hidden, hidden), init(hidden, 1, hidden)
        self.w3, self.b3 = init(hidden, hidden, 1), init(hidden, 1, 1)

    def head(self, h: torch.Tensor, s: Optional[int] = None) -> torch.Tensor:
        """The layers after the first, on first-layer pre-activations: every network on ``(S, n, hidden)``
        -> ``(S, n)``, or network ``s`` alone on ``(n, hidden)`` -> ``(n,)``."""
        w2, b2, w3, b3 = (self.w2, self.b2, self.w3, self.b3) if s is None else (self.w2[s], self.b2[s], self.w3[s], self.b3[s])
        mm = torch.baddbmm if s is None else torch.addmm
        return mm(b3, F.elu(mm(b2, F.elu(h), w2)), w3).squeeze(-1)

    def forward(self, x: torch.Tensor, z: torch.Tensor, z_other: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``T(x_i, z_i)`` and ``T(x_i, z'_i)`` for (S, n, d) batches, sharing the x half of layer 1."""
        hx = torch.baddbmm(self.b1, x, self.w1x)
        t = self.head(torch.cat([hx + torch.bmm(z, self.w1z), hx + torch.bmm(z_other, self.w1z)], 1))
        return t[:, : x.shape[1]], t[:, x.shape[1]:]

    def pairwise(self, s: int, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Network ``s``'s ``T(x_i, z_j)`` for every i, j: ``(n, n)``; no pair is materialized at layer 1."""
        hx = x @ self.w1x[s] + self.b1[s]
        hz = z @ self.w1z[s]
        return self.head((hx.unsqueeze(1) + hz.unsqueeze(0)).flatten(0, 1), s).view(x.shape[0], z.shape[0])


def _standardize(a: torch.Tensor) -> torch.Tensor:
    return (a - a.mean(0)) / a.std(0).clamp(min=1e-6)


def mine_estimates(x: Array, z: Array, seeds: Sequence[int] = (0, 1, 2), steps: int = 200, batch_size: int = 128,
                   hidden: int = 64, lr: float = 1e-3, ema_rate: float = 0.01, holdout: float = 0.2,
                   max_eval: int = 256) -> np.ndarray:
    """One MINE estimate (nats) of ``I(x; z)`` per seed, from paired samples ``x`` (N, Dx), ``z`` (N, Dz).
    Each seed has its own held-out split, initialization and batches."""
    seeds = list(seeds)
    xt = _standardize(torch.as_tensor(x).float().flatten(1))
    zt = _standardize(torch.as_tensor(z).float().flatten(1))
    n = xt.shape[0]
    if n < 10 or zt.shape[0] != n:
        raise ValueError(f"MINE needs >= 10 paired samples, got x {tuple(xt.shape)} and z {tuple(zt.shape)}")
    n_eval = min(max_eval, max(2, int(round(n * holdout))))
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    perms = torch.stack([torch.randperm(n, generator=g) for g in gens])  # (S, n)
    ev, tr = perms[:, :n_eval], perms[:, n_eval:]
    net = StatisticsNetworks(seeds, xt.shape[1], zt.shape[1], hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    bs = min(batch_size, tr.shape[1])
    ema = None
    # every step's batch indices drawn up front: (steps, S, 2, bs) rows of each seed's training split
    picks = torch.stack([torch.randint(0, tr.shape[1], (steps, 2, bs), generator=g) for g in gens], 1)
    picks = torch.gather(tr.unsqueeze(0).unsqueeze(2).expand(steps, -1, 2, -1), 3, picks) if steps else picks
    for step in range(steps):
        i, j = picks[step, :, 0], picks[step, :, 1]
        t_joint, t_marg = net(xt[i], zt[i], zt[j])
        exp_mean = torch.exp(t_marg.clamp(max=50)).mean(1)  # (S,)
        ema = exp_mean.detach() if ema is None else (1 - ema_rate) * ema + ema_rate * exp_mean.detach()
        # Bias-corrected gradient: d/dtheta log E[e^T] ~ E[e^T dT] / EMA(E[e^T]); summed over seeds.
        loss = -(t_joint.mean(1) - exp_mean / ema).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out = []
    with torch.no_grad():
        for s in range(len(seeds)):
            xe, ze = xt[ev[s]], zt[ev[s]]
            pair = net.pairwise(s, xe, ze)
            out.append(float(dv_bound(pair.diagonal(), pair).item()))
    return np.array(out)


def mine(x: Array, z: Array, seeds: Sequence[int] = (0, 1, 2), **kw) -> Tuple[float, float]:
    """``(mean, standard deviation)`` of :func:`mine_estimates` over ``seeds``."""
    vals = mine_estimates(x, z, seeds, **kw)
    return float(vals.mean()), float(vals.std(ddof=1) if len(vals) > 1 else 0.0)
