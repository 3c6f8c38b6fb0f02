"""The online readings: how well the representation clusters, read at every epoch of training.

solo-learn and lightly show an online k-NN accuracy every epoch; Ray Tune's schedulers and search
algorithms need exactly such a number at every epoch to stop, promote or exploit trials on what the study
measures (a training loss cannot be compared across objectives or coefficients). At every
``train.online_every``-th epoch (and the last), rank 0 reads, with the model in eval mode:

* ``online/knn_val``: weighted 20-NN accuracy (:mod:`ssl_ray.probes.knn`: cosine, votes ``exp(s/0.07)``) of
  the backbone's last tap -- the representation;
* ``online/knn_val_embedding``: the same on the projector's output, the embedding the objective shapes;
* ``online/rankme``: RankMe (Garrido et al. 2023, :func:`ssl_ray.probes.geometry.rankme`) of the embedding.

The memory is a seeded subsample of at most ``train.online_memory`` labeled rows of the probe's *fit* rows
(the clean train split as the probes cut it: :func:`ssl_ray.probes.probe_data.clean_fit_val_rows`); the
queries are at most as many of the probe's *validation* rows. Neither touches the test split, nor any row a
probe scores as test. RankMe reads the memory and the queries together. A reading of a non-finite embedding
is NaN (a search algorithm then counts the trial as failed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch

from ssl_ray.config import ONLINE_METRICS, ExperimentConfig
from ssl_ray.data.augment import normalize, to_unit_float
from ssl_ray.data.datasets import load_dataset
from ssl_ray.probes.geometry import rankme
from ssl_ray.probes.knn import knn_accuracy
from ssl_ray.probes.probe_data import clean_fit_val_rows, take

ONLINE = "online/"
READINGS = KNN, KNN_EMBEDDING, RANKME = ONLINE_METRICS  # named once, in the config (what a sweep may read)
ROWS_SALT = 23  # the memory and query subsample's seed stream: [probe.seed, ROWS_SALT]
BATCH = 512


def online_rows(cfg: ExperimentConfig, train) -> tuple[np.ndarray, np.ndarray]:
    """``(memory, queries)``: indices into the full train split ``train`` (module docstring)."""
    idx, fit, val = clean_fit_val_rows(cfg, train)
    rows = np.arange(len(train)) if idx is None else idx
    rng = np.random.default_rng([cfg.probe.seed, ROWS_SALT])
    cap = cfg.train.online_memory
    pick = [np.sort(rng.choice(part, size=min(cap, len(part)), replace=False)) for part in (fit, val)]
    return rows[pick[0]], rows[pick[1]]


def read_due(epoch: int, every: int, epochs: int) -> bool:
    """Whether ``epoch`` gets the online readings: every ``every``-th epoch (0: never) and the last."""
    return every > 0 and (epoch % every == 0 or epoch == epochs)


@dataclass
class OnlineReader:
    images: torch.Tensor  # (M + Q, 3, S, S) uint8: the memory, then the queries
    labels: torch.Tensor  # (M + Q,)
    memory: int  # M

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> "OnlineReader":
        d = cfg.data
        train = load_dataset(d.dataset, "train", d.image_size, d.data_root, d.superclass_map)
        mem, queries = online_rows(cfg, train)
        ds = take(train, np.concatenate([mem, queries]), d.image_size)
        return cls(ds.images, ds.labels.long(), len(mem))

    @torch.inference_mode()
    def __call__(self, model, device: torch.device, amp: Optional[torch.dtype] = None) -> Dict[str, float]:
        """The readings of ``model`` (an :class:`~ssl_ray.models.ssl_model.SSLModel`, unwrapped from DDP)."""
        rep_tap, emb_tap = model.backbone.taps[-1], model.taps[-1]
        was_training = model.training
        model.eval()
        feats: Dict[str, list] = {rep_tap: [], emb_tap: []}
        try:
            for i in range(0, self.images.shape[0], BATCH):
                x = normalize(to_unit_float(self.images[i : i + BATCH])).to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    out = model.forward_features(x, [rep_tap, emb_tap])
                for k, v in out.items():
                    feats[k].append(v.float().cpu())
        finally:
            model.train(was_training)
        rep, emb = torch.cat(feats[rep_tap]), torch.cat(feats[emb_tap])
        if not (torch.isfinite(rep).all() and torch.isfinite(emb).all()):
            return {k: math.nan for k in READINGS}
        m, y = self.memory, self.labels
        return {
            KNN: knn_accuracy(rep[:m], y[:m], rep[m:], y[m:]),
            KNN_EMBEDDING: knn_accuracy(emb[:m], y[:m], emb[m:], y[m:]),
            RANKME: rankme(emb),
        }
