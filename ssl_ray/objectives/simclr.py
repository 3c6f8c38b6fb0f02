"""SimCLR's NT-Xent loss, with cosine similarity.

Paper: T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for Contrastive Learning
of Visual Representations", ICML 2020. Official code: google-research/simclr (``objective.py``).

For N = B*V embeddings (L2-normalized), with ``s_ij = <z_i, z_j> / temperature``, anchor i and its
positives P(i) (the other V-1 views of the same image)::

    loss = mean_i  -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a != i} exp(s_ia) )

At V = 2 this is NT-Xent: the mean over the 2B anchors of the cross-entropy of the positive against
the 2B-2 other embeddings. For V > 2 each anchor averages the cross-entropy over its V-1 positives
(the multi-positive form of Khosla et al., 2020). Negatives come from the global batch under DDP.

**Scale: half the official value.** The official TF2 objective (``tf2/objective.py``,
``add_contrastive_loss``) returns ``reduce_mean(loss_a + loss_b)``: per image, the cross-entropy of view
a's anchor *plus* view b's, averaged over the B images -- :data:`OFFICIAL_FACTOR` = 2 times this loss
(``tests/unit/objectives/test_simclr_official.py`` checks it against a transcription of that code). The
loss here stays the mean over anchors, so its value does not grow with V. An official setting carries
over as follows: ``adamw`` -- unchanged (Adam divides out a gradient's scale; the weight decay is
decoupled); ``sgd`` -- twice the learning rate and half the weight decay; ``lars`` -- no single setting:
the adapted weights behave as the official run's at the same learning rate and half the weight decay
(the trust ratio divides out the scale of ``g + wd * p``, not the balance between its terms), but the 1-D
parameters (biases, normalization), which LARS leaves unadapted here as the official code does, then step
half as far, and ssl_ray's LARS has one learning rate for both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_ray.config.hparams import SimCLRHparams
from ssl_ray.objectives.base import OBJECTIVES, Objective, ObjectiveOutput, check_views
from ssl_ray.objectives.distributed import gather_batch

OFFICIAL_FACTOR = 2.0  # google-research/simclr's TF2 loss = OFFICIAL_FACTOR * this one, at V = 2


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    b, v, _ = z.shape
    flat = F.normalize(z.reshape(b * v, -1), dim=1)
    sim = flat @ flat.T / temperature
    self_mask = torch.eye(b * v, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    image = torch.arange(b, device=z.device).repeat_interleave(v)
    pos = (image[:, None] == image[None, :]) & ~self_mask
    return -(log_prob.masked_fill(~pos, 0.0).sum(1) / (v - 1)).mean()


@OBJECTIVES.register("simclr")
class SimCLR(Objective):
    name = "simclr"
    Hparams = SimCLRHparams

    def forward(self, z: torch.Tensor) -> ObjectiveOutput:
        check_views(z)
        loss = nt_xent(gather_batch(z), self.temperature)
        return ObjectiveOutput(loss=loss, terms={"nt_xent": loss.detach()})
