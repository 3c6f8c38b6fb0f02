"""MINE: a lower bound on the mutual information between an input and its embedding.

Belghazi et al., "Mutual Information Neural Estimation", ICML 2018. For any statistics network
``T(x, z)`` the Donsker-Varadhan (DV) representation gives::

    I(X; Z) >= E_{P_XZ}[T] - log E_{P_X x P_Z}[exp T]

The estimator, as the sweeps run it (:func:`mine_estimates` with its defaults):

* **Data.** ``x`` and ``z`` are standardized per feature. Each seed splits the pairs at random into a
  training part, a validation part (10%, at most 512) and a held-out evaluation part (20%, at most 512).
* **Critic.** A separable statistics network ``T(x_i, z_j) = f(x_i) . g(z_j)``, with ``f`` and ``g``
  one-hidden-layer ELU networks (64 units, 32 outputs) plus a linear path from input to output. Being
  separable, it scores every pair of a batch with one matrix product, so the marginal term of each
  step uses all ``B (B - 1)`` mismatched pairs of the batch instead of one shuffled pair per sample;
  that makes the DV gradient's bias (the reason for MINE's moving-average correction) negligible at
  B = 256. Separable critics are among those Poole et al. ("On Variational Bounds of Mutual
  Information", ICML 2019) study; the linear path makes the bilinear part ``x^T A z`` easy to learn.
* **Training.** Adam (lr 2e-3) on ``-DV`` for 400 steps of 256 pairs. An exponential moving average of
  the weights (0.95) is what is scored; every 25 steps its DV bound on the validation part is computed,
  and the weights with the best validation bound are kept (early stopping against over-fitting).
* **Estimate.** The DV bound of the kept weights on the held-out part, with the marginal term over
  every mismatched pair ``(x_i, z_j), i != j``. Leaving the matched pairs out of the marginal term
  matters: with them, the estimate can never exceed ``log n`` and is pulled far below the truth well
  before that (3 nats read as 2.1-2.6 on 400 Gaussian pairs, even with the optimal critic). Where it
  is larger, Fano's identification bound from the same critic on the same pairs is taken instead
  (:func:`fano_bound`); both are lower bounds, so their maximum is one.
* **Ceiling.** No estimate from ``n`` held-out samples can certify much more than ``log n`` nats: a
  critic that separates every matched pair from the ``n - 1`` mismatched ones already reaches it. An
  estimate within :data:`SATURATION_MARGIN` nats of ``log n`` (of the mean over seeds) is *saturated*:
  :func:`mine` then returns ``max(estimate, log n)`` with ``saturated=True`` -- "at least this much" --
  rather than a number that would read as less information.

Measured on Gaussian pairs of known information (``tests/unit/probes/test_mine.py``): from 0.5 to 3
nats in 4, 8 and 16 dimensions on 2,000 pairs, the mean of 5 seeds is within 25% (or 0.15 nats) of
the truth and rises with it; 9 and 16 nats in 4 dimensions are flagged saturated.

:func:`mine` averages 5 seeds by default, as the study does (Ben-Shaul et al. 2023, Fig. 3). What the
probes pass as ``x`` is described in ``probe_data.pooled_inputs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Array = Union[np.ndarray, torch.Tensor]

DEFAULT_SEEDS = (0, 1, 2, 3, 4)
HOLDOUT = 0.2  # share of the pairs held out for the estimate ...
MAX_EVAL = 512  # ... at most this many
SATURATION_MARGIN = 1.0  # nats below log(n_eval) at which an estimate counts as saturated


def dv_bound(t: torch.Tensor) -> torch.Tensor:
    """DV bound from a score matrix ``t[..., i, j] = T(x_i, z_j)``: the mean of the matched pairs
    (the diagonal) minus the log-mean-exp over the mismatched pairs ``i != j``. ``(..., n, n) -> (...)``."""
    n = t.shape[-1]
    off = t.masked_fill(torch.eye(n, dtype=torch.bool, device=t.device), -math.inf)
    return t.diagonal(dim1=-2, dim2=-1).mean(-1) - (torch.logsumexp(off.flatten(-2), -1) - math.log(n * (n - 1)))


def fano_bound(t: torch.Tensor) -> torch.Tensor:
    """Fano's lower bound from identification: told ``x_1..x_n`` and one ``z``, the critic names the
    ``x`` it belongs to (the arg-max of its row) with error rate ``Pe``; then
    ``I(X; Z) >= log n - h(Pe) - Pe log(n - 1)``, ``h`` the binary entropy (Fano's inequality; the index
    of the pair carries no more information than ``I(X; Z)``, the argument behind InfoNCE, van den
    Oord et al. 2018). It is what reaches the ceiling when the critic separates pairs well but is not
    sharp enough for the DV bound. ``(..., n, n) -> (...)``."""
    n = t.shape[-1]
    pe = (t.argmax(-1) != torch.arange(n, device=t.device)).to(t.dtype).mean(-1)
    h = -(pe * torch.log(pe.clamp(min=1e-12)) + (1 - pe) * torch.log((1 - pe).clamp(min=1e-12)))
    return math.log(n) - h - pe * math.log(n - 1)


def _init(gens: Sequence[torch.Generator], fan_in: int, *shape: int) -> nn.Parameter:
    """nn.Linear's default initialization, one random stream per seed, stacked: ``(S, *shape)``."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in gens]))


class Encoder(nn.Module):
    """``S`` independent encoders ``e(v) = W2 elu(W1 v + b1) + b2 + L v`` (one per seed), run together
    with batched matmuls on ``(S, n, d)``. Their parameters never mix, and Adam is elementwise, so
    training them at once is training each alone."""

    def __init__(self, gens: Sequence[torch.Generator], dim: int, hidden: int, out: int):
        super().__init__()
        self.w1, self.b1 = _init(gens, dim, dim, hidden), _init(gens, dim, 1, hidden)
        self.w2, self.b2 = _init(gens, hidden, hidden, out), _init(gens, hidden, 1, out)
        self.lin = _init(gens, dim, dim, out)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b2, F.elu(torch.baddbmm(self.b1, v, self.w1)), self.w2) + torch.bmm(v, self.lin)


class SeparableCritic(nn.Module):
    """``T(x_i, z_j) = f(x_i) . g(z_j)`` for every pair: ``(S, n, dx), (S, n, dz) -> (S, n, n)``."""

    def __init__(self, gens: Sequence[torch.Generator], dx: int, dz: int, hidden: int, out: int):
        super().__init__()
        self.f, self.g = Encoder(gens, dx, hidden, out), Encoder(gens, dz, hidden, out)
        self.log_scale = nn.Parameter(torch.zeros(len(gens), 1, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.f(x), self.g(z).transpose(1, 2)) * self.log_scale.exp()


def _standardize(a: torch.Tensor) -> torch.Tensor:
    return (a - a.mean(0)) / a.std(0).clamp(min=1e-6)


@dataclass
class Splits:
    train: torch.Tensor  # (S, n_train) row indices per seed
    val: torch.Tensor  # (S, n_val)
    eval: torch.Tensor  # (S, n_eval)


def _splits(n: int, gens: Sequence[torch.Generator], holdout: float, val: float, max_eval: int) -> Splits:
    n_eval = eval_size(n, holdout, max_eval)
    n_val = min(max_eval, max(2, int(round(n * val))))
    if n - n_eval - n_val < 2:
        raise ValueError(f"MINE needs more pairs than its {n_eval} held-out and {n_val} validation ones (got {n})")
    perms = torch.stack([torch.randperm(n, generator=g) for g in gens])
    return Splits(perms[:, n_eval + n_val:], perms[:, n_eval : n_eval + n_val], perms[:, :n_eval])


def mine_estimates(x: Array, z: Array, seeds: Sequence[int] = DEFAULT_SEEDS, steps: int = 400, batch_size: int = 256,
                   hidden: int = 64, out: int = 32, lr: float = 2e-3, ema: float = 0.95, eval_every: int = 25,
                   holdout: float = HOLDOUT, val: float = 0.1, max_eval: int = MAX_EVAL, scale_lr: float = 0.02) -> np.ndarray:
    """One estimate of ``I(x; z)`` in nats per seed, from paired samples ``x`` (N, Dx) and ``z`` (N, Dz)
    (see the module docstring). Each seed has its own splits, initialization and batches. The estimates
    are held-out DV bounds of ``log(n_eval)`` at most in practice; :func:`mine` flags saturation."""
    seeds = list(seeds)
    xt = _standardize(torch.as_tensor(x).float().flatten(1))
    zt = _standardize(torch.as_tensor(z).float().flatten(1))
    n = xt.shape[0]
    if n < 20 or zt.shape[0] != n:
        raise ValueError(f"MINE needs >= 20 paired samples, got x {tuple(xt.shape)} and z {tuple(zt.shape)}")
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    sp = _splits(n, gens, holdout, val, max_eval)
    net = SeparableCritic(gens, xt.shape[1], zt.shape[1], hidden, out)
    avg = SeparableCritic(gens, xt.shape[1], zt.shape[1], hidden, out)
    avg.load_state_dict(net.state_dict())
    best = SeparableCritic(gens, xt.shape[1], zt.shape[1], hidden, out)
    best.load_state_dict(net.state_dict())
    params, avg_params, best_params = list(net.parameters()), list(avg.parameters()), list(best.parameters())
    opt = torch.optim.Adam([{"params": [p for p in params if p is not net.log_scale]},
                            {"params": [net.log_scale], "lr": scale_lr}], lr=lr)
    n_tr = sp.train.shape[1]
    bs = min(batch_size, n_tr)
    # every step's rows drawn up front: (steps, S, bs) rows of each seed's training part
    picks = torch.stack([torch.stack([torch.randperm(n_tr, generator=g)[:bs] for _ in range(steps)]) for g in gens], 1)
    picks = torch.gather(sp.train.unsqueeze(0).expand(steps, -1, -1), 2, picks) if steps else picks
    best_val = torch.full((len(seeds),), -math.inf)

    def keep_best() -> None:
        with torch.no_grad():
            v = dv_bound(avg(xt[sp.val], zt[sp.val]))
            better = v > best_val
            best_val[better] = v[better]
            for b, a in zip(best_params, avg_params):  # per seed: the better weights replace the kept ones
                b.copy_(torch.where(better.view(-1, *[1] * (a.dim() - 1)), a, b))

    for step in range(steps):
        i = picks[step]
        loss = -dv_bound(net(xt[i], zt[i])).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(avg_params, params, 1.0 - ema)
        if (step + 1) % eval_every == 0 or step == steps - 1:
            keep_best()
    with torch.no_grad():
        t = best(xt[sp.eval], zt[sp.eval])
        return torch.maximum(dv_bound(t), fano_bound(t)).double().numpy()


@dataclass(frozen=True)
class MineResult:
    """The mean and spread of the seeds' estimates, the ceiling ``log(n_eval)``, and whether the mean
    came within :data:`SATURATION_MARGIN` of it (then ``mean`` is the ceiling: "at least this much")."""

    mean: float
    std: float
    ceiling: float
    saturated: bool
    estimates: Tuple[float, ...]


def eval_size(n: int, holdout: float = HOLDOUT, max_eval: int = MAX_EVAL) -> int:
    """Pairs in each seed's held-out part: the ``n`` of the ceiling ``log n``."""
    return min(max_eval, max(2, int(round(n * holdout))))


def mine(x: Array, z: Array, seeds: Sequence[int] = DEFAULT_SEEDS, **kw) -> MineResult:
    """:func:`mine_estimates` over ``seeds``, summarized, with the saturation check."""
    vals = mine_estimates(x, z, seeds, **kw)
    ceiling = math.log(eval_size(len(x), kw.get("holdout", HOLDOUT), kw.get("max_eval", MAX_EVAL)))
    mean = float(vals.mean())
    saturated = mean >= ceiling - SATURATION_MARGIN
    spread = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return MineResult(max(mean, ceiling) if saturated else mean, spread, ceiling, saturated, tuple(float(v) for v in vals))
