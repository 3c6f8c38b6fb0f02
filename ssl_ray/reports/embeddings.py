"""Embeddings before and after training, mapped to 2-D with t-SNE (van der Maaten & Hinton, 2008), for
the report's embedding figure.

A checkpoint's features come from the probe engine's own forward pass (``probes.engine``) on a small
slice of the trial's probe data: up to ``max_points`` held-out images (colored by class and superclass)
and the augmented views of ``sample_images`` images (colored by image: the sample level). t-SNE is
scikit-learn's, seeded, so a report is reproducible.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np

from ssl_ray.models.build import load_model
from ssl_ray.probes.engine import extract_features

Points = Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]]


def tsne_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(N, D) -> (N, 2)``: t-SNE with PCA initialization; perplexity capped for small N."""
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return TSNE(
        n_components=2, init="pca", learning_rate="auto", perplexity=perplexity, random_state=seed
    ).fit_transform(x)


def embedding_points(
    checkpoints: List[Tuple[str, str]], layer: str, max_points: int = 600, sample_images: int = 12, seed: int = 0
) -> Tuple[Points, Dict[str, List[str]]]:
    """``points[(row, level)]`` for each ``(row name, checkpoint dir)`` and level in sample/class/superclass,
    and the class/superclass names for legends."""
    from ssl_ray.data.folders import read_superclass_map
    from ssl_ray.probes.probe_data import build_probe_data

    points: Points = {}
    names: Dict[str, List[str]] = {}
    data = None
    for row, ckpt in checkpoints:
        model, cfg, _ = load_model(ckpt)
        if data is None:  # every checkpoint of a trial shares its probe data
            p = cfg.probe
            small = dataclasses.replace(
                p,
                targets=["sample", "class"],
                max_train_images=min(p.max_train_images, 64),
                max_test_images=min(p.max_test_images, max_points),
                sample_images=min(p.sample_images or sample_images, sample_images),
                sample_train_views=1,
            )
            cfg = dataclasses.replace(cfg, probe=small)
            data = build_probe_data(cfg)
            names["class"] = list(
                getattr(data.test, "class_names", None) or [str(i) for i in range(data.test.num_classes)]
            )
            if cfg.data.superclass_map and data.test.superclasses is not None:
                names["superclass"] = sorted(set(read_superclass_map(cfg.data.superclass_map).values()))
        feats, _ = extract_features(model, data, [layer])
        f = feats[layer]
        clean = tsne_2d(f["clean_test"].numpy(), seed)
        points[(row, "class")] = (clean, data.test.labels.numpy())
        if data.test.superclasses is not None:
            points[(row, "superclass")] = (clean, data.test.superclasses.numpy())
        if data.has_sample and f["sample_test"].numel():
            points[(row, "sample")] = (tsne_2d(f["sample_test"].numpy(), seed), data.sample_target().test.numpy())
    return points, names


def first_and_last(checkpoints: List[Tuple[int, str]]) -> Optional[List[Tuple[str, str]]]:
    """``[("epoch 0 (before)", dir), ("epoch N (after)", dir)]`` from a trial's ``(epoch, dir)`` checkpoints."""
    if not checkpoints:
        return None
    (e0, d0), (e1, d1) = checkpoints[0], checkpoints[-1]
    first = f"epoch {e0}" + (" (init)" if e0 == 0 else "")
    return [(first, d0), (f"epoch {e1} (trained)", d1)] if e1 != e0 else [(first, d0)]
