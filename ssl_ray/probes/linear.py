"""The linear probe: full-batch multinomial logistic regression in torch (on the GPU when there is one).

It minimizes the objective scikit-learn's ``LogisticRegression(C=C)`` does, on standardized features::

    L(W, b) = (1/N) sum_i CE(softmax(W^T x_i + b), y_i) + ||W||_F^2 / (2 C N)

(the bias is not penalized), with L-BFGS and a strong-Wolfe line search. Several label sets on the
same features are fitted in *one* problem: their weight blocks sit side by side in ``W``, every step
costs one ``X @ W``, and since the blocks do not interact the joint minimizer is the per-target one.
That is how the probe engine fits the class, superclass and random targets of a layer at once.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

Array = Union[np.ndarray, torch.Tensor]


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def standardize(train: torch.Tensor, *others: torch.Tensor) -> List[torch.Tensor]:
    """Zero mean, unit variance per feature, with the train set's statistics (constant features -> 0)."""
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True).clamp(min=1e-6)
    return [(t - mean) / std for t in (train, *others)]


def fit_softmax_probes(
    x: torch.Tensor,
    labels: Sequence[torch.Tensor],
    num_classes: Sequence[int],
    C: float = 1.0,
    max_iter: int = 100,
    tol: float = 1e-5,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fit one multinomial logistic regression per label set in ``labels`` on features ``x`` (N, D),
    jointly. Returns ``W`` (D, sum K) and ``b`` (sum K,); target t owns columns
    ``sum(num_classes[:t]) : sum(num_classes[:t+1])``."""
    n, d = x.shape
    total = int(sum(num_classes))
    w = torch.zeros(d, total, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(total, dtype=x.dtype, device=x.device, requires_grad=True)
    bounds = np.cumsum([0, *num_classes]).tolist()
    ys = [y.to(x.device) for y in labels]
    reg = 1.0 / (2.0 * C * n)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=10,
        tolerance_grad=tol,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad(set_to_none=True)
        logits = torch.addmm(b, x, w)
        loss = sum(F.cross_entropy(logits[:, lo:hi], y) for lo, hi, y in zip(bounds[:-1], bounds[1:], ys))
        loss = loss + reg * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def softmax_probe_scores(
    train_x: torch.Tensor,
    train_ys: Sequence[torch.Tensor],
    num_classes: Sequence[int],
    evals: Dict[str, Tuple[torch.Tensor, Sequence[torch.Tensor]]],
    C: float = 1.0,
    max_iter: int = 100,
    device: Optional[torch.device] = None,
) -> List[Dict[str, float]]:
    """Per label set, ``{"train": acc, <name>: acc, ...}``: a linear probe fitted on ``train_x`` (all label
    sets at once) and scored on the train rows and on each ``evals[name] = (x, labels per set)``."""
    dev = device or default_device()
    names = list(evals)
    xtr, *xs = standardize(train_x.to(dev, torch.float32), *[evals[k][0].to(dev, torch.float32) for k in names])
    w, b = fit_softmax_probes(xtr, train_ys, num_classes, C=C, max_iter=max_iter)
    bounds = np.cumsum([0, *num_classes]).tolist()
    with torch.no_grad():
        preds = {k: torch.addmm(b, x, w) for k, x in zip(["train", *names], [xtr, *xs])}
    labels = {"train": train_ys, **{k: evals[k][1] for k in names}}
    out = []
    for t, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        out.append(
            {
                k: float((p[:, lo:hi].argmax(1) == labels[k][t].to(dev)).double().mean().item()) if len(p) else math.nan
                for k, p in preds.items()
            }
        )
    return out


def softmax_probe_accuracies(
    train_x: torch.Tensor,
    train_ys: Sequence[torch.Tensor],
    test_x: torch.Tensor,
    test_ys: Sequence[torch.Tensor],
    num_classes: Sequence[int],
    C: float = 1.0,
    max_iter: int = 100,
    device: Optional[torch.device] = None,
) -> List[Tuple[float, float]]:
    """``[(train accuracy, test accuracy)]`` of a linear probe per label set, all fitted at once."""
    scores = softmax_probe_scores(
        train_x, train_ys, num_classes, {"test": (test_x, test_ys)}, C=C, max_iter=max_iter, device=device
    )
    return [(s["train"], s["test"]) for s in scores]


def linear_probe_accuracy(
    train_x: Array,
    train_y: Array,
    test_x: Array,
    test_y: Array,
    C: float = 1.0,
    max_iter: int = 100,
    device: Optional[torch.device] = None,
) -> float:
    """Test accuracy of a multinomial logistic-regression probe trained on ``(train_x, train_y)``."""
    ytr = torch.as_tensor(train_y).long()
    yte = torch.as_tensor(test_y).long()
    k = int(max(ytr.max().item(), yte.max().item())) + 1
    return softmax_probe_accuracies(
        torch.as_tensor(train_x), [ytr], torch.as_tensor(test_x), [yte], [k], C=C, max_iter=max_iter, device=device
    )[0][1]
