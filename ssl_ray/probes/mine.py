"""MINE: a neural lower bound on the mutual information between two paired arrays, and when to trust it.

Belghazi et al., "Mutual Information Neural Estimation", ICML 2018. For any statistics network
``T(x, z)`` the Donsker-Varadhan (DV) representation gives::

    I(X; Z) >= E_{P_XZ}[T] - log E_{P_X x P_Z}[exp T]

:func:`mine_estimates` estimates ``I(x; z)`` for the arrays it is given (one value per seed). Each seed:

1. **Splits** the pairs at random into a training part, a validation part (10%, at most 512) and a
   held-out evaluation part (20%, at most 512). Everything below is fitted on the training part only.
2. **Whitens** ``x`` and ``z`` (PCA on the training rows, dropping directions whose variance is below
   1e-10 of the largest: exact duplicates and dead units). An invertible linear map of ``x`` or ``z``
   changes the whitened data only by a rotation, and step 3 removes it: the estimate is invariant to
   invertible linear maps of either argument, however ill-conditioned (a critic on per-feature
   standardized data read 2 and 4 nats as 1.2 and 2.2 after such a map).
3. **Reduces to canonical pairs** (Hotelling's CCA of the whitened pair): of the first
   ``canonical.PAIRS`` (16) canonical pairs, those whose correlation on the *validation* rows is significant
   (above 2.5 / sqrt(n_val); ``ssl_ray.probes.canonical``) are kept, the others zeroed. For fixed maps the data
   processing inequality keeps ``I(u; v) <= I(x; z)``, so the held-out bound stays a lower bound on
   ``I(x; z)``. This is what makes a 192-d input readable from ~1,800 pairs: a critic on the raw
   dimensions fits the training pairs' chance correlations and read 1-3 nats as 0.0-0.4. Each variate is
   then Gaussianized by its training ranks (a monotone map of each: the information is unchanged), so that
   heavy-tailed features do not break the critic's Gaussian term.
4. **Critic**: ``T(u_i, v_j) = sum_k [c_k u_ik v_jk - a_k u_ik^2 - b_k v_jk^2] + f(u_i) . g(v_j)``. The
   first term is initialized at the log density ratio of a jointly Gaussian pair with the validated
   correlation (the optimal critic when the data are Gaussian, ``c = rho / (1 - rho^2)``,
   ``a = b = rho^2 / (2 (1 - rho^2))``); the second is MINE's separable network (``f``, ``g``: one ELU
   hidden layer of 64 units, 16 outputs, plus a linear path; initialized to output 0), which learns
   the dependence that is not Gaussian. Separable critics are among those Poole et al. ("On Variational
   Bounds of Mutual Information", ICML 2019) study; scoring every pair of a batch with one matrix
   product lets each step's marginal term use all ``B (B - 1)`` mismatched pairs.
5. **Training**: Adam (lr 2e-3) on ``-DV`` for 100 steps of 256 pairs; an exponential moving average of
   the weights (0.95) is scored on the validation part every 25 steps and the best is kept (the
   Gaussian initialization competes too). Longer training changed no reading of the known-answer tests
   and moved the digits' layers by at most 0.05 nats (200 and 400 steps measured): the Gaussian term
   does the work those sample sizes allow, and the network term mostly overfits.
6. **Estimate**: on the held-out part, the larger of the DV bound (marginal term over every mismatched
   pair) and the InfoNCE bound of the same critic (van den Oord et al. 2018: for each ``z`` the
   matched ``x`` against all ``n`` held-out ``x``; it is bounded by ``log n`` but has far less
   variance than DV near it). Both are lower bounds.

**When a number is not the truth** (:func:`mine`):

* *Saturated*: no estimate from ``n`` held-out pairs can certify much more than ``log n`` nats. A
  mean within :data:`SATURATION_MARGIN` of ``log n`` is reported as ``max(mean, log n)`` with
  ``saturated`` -- "at least this much".
* *Unreliable*: the estimate is compared with ``canonical.gaussian_reference``, the information in the
  linear (canonical) correlations of the *training* rows, corrected by its exact expectation under
  independence. For jointly Gaussian data it is unbiased (within 0.1 nats of 1 and 3 nats at 192 x 32
  and 192 x 128 dimensions on 1,800 pairs), so when the held-out estimate falls below it by more than
  max(:data:`REFERENCE_MARGIN` of it, :data:`FLOOR`) -- a margin inside the 25% the reading must
  meet, because the reference is noisy too -- the estimate has missed information that is there:
  typically dependence spread thinly over many dimensions, which ~1,800 pairs cannot resolve out of
  sample. A spread over seeds above max(:data:`TOLERANCE` of the mean, :data:`FLOOR`) also flags it.
  ``unreliable`` numbers are logged but shown nowhere as a reading. Where the truth is known (the
  probes know it: ``ssl_ray.probes.information``), :func:`disagrees` compares with it directly.
* *What neither sees*: dependence that no linear reduction keeps. Gaussian pairs (1.5 nats) whose layer
  coordinates each pass through ``sinh(3 z)`` after mixing still carry 1.5 nats, but the estimate and its
  Gaussian reference both read about 0, unflagged. Without a known truth, a low reading is a lower bound,
  never evidence of little information.

Measured (``tests/unit/probes/test_mine.py``, 5 seeds): Gaussian pairs in 4, 8 and 16 dimensions from
0.5 to 3 nats within 20% of the truth; at the probes' shapes (a 192-d input, a 32-d or 128-d layer,
1,800 pairs) 1 and 3 nats concentrated in a few canonical pairs within 25%, and spread over 24 pairs
flagged unreliable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_ray.probes.canonical import PAIRS, canonical_pairs, gaussian_reference

Array = Union[np.ndarray, torch.Tensor]

DEFAULT_SEEDS = (0, 1, 2, 3, 4)
HOLDOUT = 0.2  # share of the pairs held out for the estimate ...
MAX_EVAL = 512  # ... at most this many
SATURATION_MARGIN = 1.0  # nats below log(n_eval) at which an estimate counts as saturated
TOLERANCE, FLOOR = 0.25, 0.05  # a reading off by more than max(25% of the truth, 0.05 nats) is unreliable ...
REFERENCE_MARGIN = 0.2  # ... and so is one below the (noisy) Gaussian reference by more than max(20% of it, FLOOR)


def dv_bound(t: torch.Tensor) -> torch.Tensor:
    """DV bound from a score matrix ``t[..., i, j] = T(x_i, z_j)``: the mean of the matched pairs
    (the diagonal) minus the log-mean-exp over the mismatched pairs ``i != j``. ``(..., n, n) -> (...)``."""
    n = t.shape[-1]
    off = t.masked_fill(torch.eye(n, dtype=torch.bool, device=t.device), -math.inf)
    return t.diagonal(dim1=-2, dim2=-1).mean(-1) - (torch.logsumexp(off.flatten(-2), -1) - math.log(n * (n - 1)))


def infonce_bound(t: torch.Tensor) -> torch.Tensor:
    """InfoNCE bound ``mean_j [T(x_j, z_j) - log (1/n) sum_i exp T(x_i, z_j)]`` (at most ``log n``).
    ``(..., n, n) -> (...)``."""
    n = t.shape[-1]
    return (t.diagonal(dim1=-2, dim2=-1) - torch.logsumexp(t, -2)).mean(-1) + math.log(n)


def _bound(t: torch.Tensor) -> torch.Tensor:
    return torch.maximum(dv_bound(t), infonce_bound(t))


def _init(gens: Sequence[torch.Generator], fan_in: int, *shape: int) -> nn.Parameter:
    """nn.Linear's default initialization, one random stream per seed, stacked: ``(S, *shape)``."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in gens]))


class Encoder(nn.Module):
    """``S`` independent encoders ``e(v) = W2 elu(W1 v + b1) + b2 + L v`` (one per seed), run together
    with batched matmuls on ``(S, n, d)``. Their parameters never mix, and Adam is elementwise, so
    training them at once is training each alone. ``zero_out``: start with output 0 (W2, b2, L = 0)."""

    def __init__(self, gens: Sequence[torch.Generator], dim: int, hidden: int, out: int, zero_out: bool = False):
        super().__init__()
        self.w1, self.b1 = _init(gens, dim, dim, hidden), _init(gens, dim, 1, hidden)
        self.w2, self.b2 = _init(gens, hidden, hidden, out), _init(gens, hidden, 1, out)
        self.lin = _init(gens, dim, dim, out)
        if zero_out:
            with torch.no_grad():
                for p in (self.w2, self.b2, self.lin):
                    p.zero_()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b2, F.elu(torch.baddbmm(self.b1, v, self.w1)), self.w2) + torch.bmm(v, self.lin)


class CanonicalCritic(nn.Module):
    """``T(u_i, v_j)`` for every pair of canonical variates (see the module docstring, step 4):
    ``(S, n, m), (S, n, m) -> (S, n, n)``. ``rho`` ``(S, m)``: the validated correlations (0: unused pair)."""

    def __init__(self, gens: Sequence[torch.Generator], m: int, hidden: int, out: int, rho: torch.Tensor):
        super().__init__()
        self.f = Encoder(gens, m, hidden, out, zero_out=True)
        self.g = Encoder(gens, m, hidden, out)
        r2 = rho.clamp(0.0, 0.999) ** 2
        self.c = nn.Parameter(rho.clamp(0.0, 0.999) / (1 - r2))
        self.a = nn.Parameter(r2 / (2 * (1 - r2)))
        self.b = nn.Parameter(r2 / (2 * (1 - r2)))

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t = torch.bmm(u * self.c[:, None], v.transpose(1, 2))
        t = t - (self.a[:, None] * u * u).sum(-1, keepdim=True) - (self.b[:, None] * v * v).sum(-1)[:, None]
        return t + torch.bmm(self.f(u), self.g(v).transpose(1, 2))


@dataclass
class Splits:
    train: torch.Tensor  # (S, n_train) row indices per seed
    val: torch.Tensor  # (S, n_val)
    eval: torch.Tensor  # (S, n_eval)


def eval_size(n: int, holdout: float = HOLDOUT, max_eval: int = MAX_EVAL) -> int:
    """Pairs in each seed's held-out part: the ``n`` of the ceiling ``log n``."""
    return min(max_eval, max(2, int(round(n * holdout))))


def _splits(n: int, gens: Sequence[torch.Generator], holdout: float, val: float, max_eval: int) -> Splits:
    n_eval = eval_size(n, holdout, max_eval)
    n_val = min(max_eval, max(2, int(round(n * val))))
    if n - n_eval - n_val < 2:
        raise ValueError(f"MINE needs more pairs than its {n_eval} held-out and {n_val} validation ones (got {n})")
    perms = torch.stack([torch.randperm(n, generator=g) for g in gens])
    return Splits(perms[:, n_eval + n_val :], perms[:, n_eval : n_eval + n_val], perms[:, :n_eval])


def _prepare(x: Array, z: Array, seeds: Sequence[int], holdout: float, val: float, max_eval: int):
    xt = torch.as_tensor(x).float().flatten(1)
    zt = torch.as_tensor(z).float().flatten(1)
    n = xt.shape[0]
    if n < 20 or zt.shape[0] != n:
        raise ValueError(f"MINE needs >= 20 paired samples, got x {tuple(xt.shape)} and z {tuple(zt.shape)}")
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return xt, zt, gens, _splits(n, gens, holdout, val, max_eval)


def mine_estimates(
    x: Array,
    z: Array,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    steps: int = 100,
    batch_size: int = 256,
    hidden: int = 64,
    out: int = 16,
    lr: float = 2e-3,
    ema: float = 0.95,
    eval_every: int = 25,
    holdout: float = HOLDOUT,
    val: float = 0.1,
    max_eval: int = MAX_EVAL,
    pairs: int = PAIRS,
) -> np.ndarray:
    """One estimate of ``I(x; z)`` in nats per seed, from paired samples ``x`` (N, Dx) and ``z`` (N, Dz)
    (see the module docstring). Each seed has its own splits, canonical pairs, initialization and
    batches. :func:`mine` adds the saturation and reliability checks."""
    seeds = list(seeds)
    xt, zt, gens, sp = _prepare(x, z, seeds, holdout, val, max_eval)
    u, v, rho = (
        torch.stack(t)
        for t in zip(*(canonical_pairs(xt, zt, sp.train[s], sp.val[s], pairs) for s in range(len(seeds))))
    )
    net = CanonicalCritic(gens, pairs, hidden, out, rho)
    avg = CanonicalCritic(gens, pairs, hidden, out, rho)
    best = CanonicalCritic(gens, pairs, hidden, out, rho)
    avg.load_state_dict(net.state_dict())
    best.load_state_dict(net.state_dict())
    params, avg_params, best_params = list(net.parameters()), list(avg.parameters()), list(best.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    n_tr = sp.train.shape[1]
    bs = min(batch_size, n_tr)
    # every step's rows drawn up front: (steps, S, bs) rows of each seed's training part
    picks = (
        torch.stack([torch.stack([torch.randperm(n_tr, generator=g)[:bs] for _ in range(steps)]) for g in gens], 1)
        if steps
        else torch.empty(0, len(seeds), bs, dtype=torch.long)
    )
    picks = torch.gather(sp.train.unsqueeze(0).expand(steps, -1, -1), 2, picks) if steps else picks
    seed_ix = torch.arange(len(seeds))[:, None]
    best_val = torch.full((len(seeds),), -math.inf)

    def keep_best() -> None:
        with torch.no_grad():
            score = _bound(avg(u[seed_ix, sp.val], v[seed_ix, sp.val]))
            better = score > best_val
            best_val[better] = score[better]
            for b, a in zip(best_params, avg_params):  # per seed: the better weights replace the kept ones
                b.copy_(torch.where(better.view(-1, *[1] * (a.dim() - 1)), a, b))

    keep_best()  # the Gaussian initialization competes too
    for step in range(steps):
        i = picks[step]
        loss = -dv_bound(net(u[seed_ix, i], v[seed_ix, i])).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(avg_params, params, 1.0 - ema)
        if (step + 1) % eval_every == 0 or step == steps - 1:
            keep_best()
    with torch.no_grad():
        return _bound(best(u[seed_ix, sp.eval], v[seed_ix, sp.eval])).double().numpy()


@dataclass(frozen=True)
class MineResult:
    """The mean and spread of the seeds' estimates, the ceiling ``log(n_eval)``, whether the mean came
    within :data:`SATURATION_MARGIN` of it (then ``mean`` is the ceiling: "at least this much"), the
    Gaussian reference (mean over the seeds' training rows) and whether the reading is unreliable."""

    mean: float
    std: float
    ceiling: float
    saturated: bool
    estimates: Tuple[float, ...]
    reference: float = float("nan")
    unreliable: bool = False


def disagrees(estimate: float, truth: float) -> bool:
    """Whether ``estimate`` misses ``truth`` by more than max(:data:`TOLERANCE` of it, :data:`FLOOR` nats)."""
    return abs(estimate - truth) > max(TOLERANCE * abs(truth), FLOOR)


def mine(x: Array, z: Array, seeds: Sequence[int] = DEFAULT_SEEDS, **kw) -> MineResult:
    """:func:`mine_estimates` over ``seeds``, summarized, with the saturation and reliability checks."""
    seeds = list(seeds)
    vals = mine_estimates(x, z, seeds, **kw)
    holdout, max_eval = kw.get("holdout", HOLDOUT), kw.get("max_eval", MAX_EVAL)
    ceiling = math.log(eval_size(len(x), holdout, max_eval))
    mean = float(vals.mean())
    saturated = mean >= ceiling - SATURATION_MARGIN
    spread = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    xt, zt, _, sp = _prepare(x, z, seeds, holdout, kw.get("val", 0.1), max_eval)
    reference = float(np.mean([gaussian_reference(xt[rows], zt[rows]) for rows in sp.train]))
    missed = reference - mean > max(REFERENCE_MARGIN * reference, FLOOR)
    unstable = spread > max(TOLERANCE * abs(mean), FLOOR)
    return MineResult(
        max(mean, ceiling) if saturated else mean,
        spread,
        ceiling,
        saturated,
        tuple(float(v) for v in vals),
        reference,
        bool(not saturated and (missed or unstable)),
    )
