"""Our SimCLR loss against a numpy transcription of the official TF2 objective (google-research/simclr,
``tf2/objective.py``, ``add_contrastive_loss`` without a distribution strategy): the official value is
``OFFICIAL_FACTOR`` times ours, for every batch, width and temperature."""

import numpy as np
import pytest
import torch

from ssl_ray.objectives import build_objective
from ssl_ray.objectives.simclr import OFFICIAL_FACTOR

LARGE_NUM = 1e9


def official_tf2_loss(hidden: np.ndarray, temperature: float) -> float:
    """hidden: (2B, D), the first B rows view a of each image, the next B view b (``tf.split(hidden, 2, 0)``)."""
    hidden = hidden / np.linalg.norm(hidden, axis=-1, keepdims=True)  # hidden_norm=True
    h1, h2 = np.split(hidden, 2, 0)
    b = h1.shape[0]
    labels = np.eye(b, 2 * b)  # tf.one_hot(tf.range(b), 2b)
    masks = np.eye(b)
    logits_aa = h1 @ h1.T / temperature - masks * LARGE_NUM
    logits_bb = h2 @ h2.T / temperature - masks * LARGE_NUM
    logits_ab = h1 @ h2.T / temperature
    logits_ba = h2 @ h1.T / temperature

    def softmax_ce(lab, logits):
        logits = logits - logits.max(1, keepdims=True)
        return -(lab * (logits - np.log(np.exp(logits).sum(1, keepdims=True)))).sum(1)

    loss_a = softmax_ce(labels, np.concatenate([logits_ab, logits_aa], 1))
    loss_b = softmax_ce(labels, np.concatenate([logits_ba, logits_bb], 1))
    return float(np.mean(loss_a + loss_b))


@pytest.mark.parametrize("b, d, temperature", [(8, 16, 0.5), (33, 64, 0.1), (4, 3, 1.0)])
def test_simclr_is_the_official_tf2_loss_over_its_stated_factor(b, d, temperature):
    rng = np.random.default_rng(b * d)
    z = rng.normal(size=(b, 2, d))
    ours = build_objective("simclr", temperature=temperature)(torch.tensor(z)).loss.item()
    official = official_tf2_loss(np.concatenate([z[:, 0], z[:, 1]]), temperature)
    assert OFFICIAL_FACTOR == 2.0
    assert official == pytest.approx(OFFICIAL_FACTOR * ours, rel=1e-9)
