"""Weighted k-nearest-neighbour classification: the online accuracy read at every training epoch.

The convention of solo-learn's ``WeightedKNNClassifier`` (after Wu et al., "Unsupervised Feature Learning
via Non-Parametric Instance Discrimination", CVPR 2018, and DINO's evaluation): features are L2-normalized,
the similarity is the cosine ``s(q, m) = <q, m> / (|q| |m|)``, and each query takes its ``k`` most similar
memory rows, each voting for its label with weight ``exp(s / T)``:

    score_c(q) = sum_{m in top-k(q)} exp(s(q, m) / T) [y_m = c],     prediction = argmax_c score_c(q)

with ``k = 20`` and ``T = 0.07``. Ties between classes go to the smallest class index (``torch.argmax``).
Engine-free: torch only, so it runs in a Ray Train worker and in a test alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

K = 20
TEMPERATURE = 0.07


def knn_votes(
    memory_x: torch.Tensor,
    memory_y: torch.Tensor,
    query_x: torch.Tensor,
    num_classes: int,
    k: int = K,
    temperature: float = TEMPERATURE,
    chunk: int = 1024,
) -> torch.Tensor:
    """``(Q, num_classes)`` vote totals ``score_c(q)`` (module docstring), queries in chunks of ``chunk``."""
    if memory_x.shape[0] == 0:
        raise ValueError("kNN: the memory is empty")
    k = min(k, memory_x.shape[0])
    mem = F.normalize(memory_x.float(), dim=1)
    labels = memory_y.long().to(mem.device)
    out = []
    for i in range(0, query_x.shape[0], chunk):
        q = F.normalize(query_x[i : i + chunk].float().to(mem.device), dim=1)
        sim, idx = (q @ mem.T).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], num_classes, device=mem.device)
        votes.scatter_add_(1, labels[idx], torch.exp(sim / temperature))
        out.append(votes)
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_accuracy(
    memory_x: torch.Tensor,
    memory_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    k: int = K,
    temperature: float = TEMPERATURE,
) -> float:
    """The share of queries whose weighted k-NN vote (module docstring) is their label."""
    num_classes = int(max(memory_y.max(), query_y.max())) + 1
    pred = knn_votes(memory_x, memory_y, query_x, num_classes, k, temperature).argmax(1)
    return float((pred.cpu() == query_y.long().cpu()).float().mean())
