"""Which layers of which checkpoint are probed, with which probe families: the one plan that the score
tasks follow and that completeness (backfill, resume, the probe status) is judged against.

* Every probed checkpoint: every tap of the model (``probe.layers`` or all of them), every family
  except ``mine``.
* ``mine`` (MINE, the costly one) runs at ``probe.mine_epochs`` only: by default the first, the middle
  and the last probed checkpoint (0, 4 and 20 of the default run's 0, 1, 2, 4, 8, 16, 20) -- enough to
  draw it over training at about 3/7 of the cost. ``information`` (the exact value MINE is checked
  against) is cheap and runs everywhere.
* ``input``: the pooled input pixels themselves (what MINE pairs the layers with), probed like a layer
  at the first checkpoint only (they do not change in training): every target's pixel baseline. It is
  never a candidate for a trial's best layer, and MINE and the information families skip it.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from ssl_ray.config import ProbeConfig

INPUT_LAYER = "input"
INFORMATION_FAMILIES = ("information", "mine")  # label-free readings of I(input; layer): not for the input itself


def mine_epochs(p: ProbeConfig, schedule: Optional[Sequence[int]]) -> Optional[List[int]]:
    """The epochs MINE runs at: ``probe.mine_epochs`` (those in the schedule), else the first, middle and
    last of ``schedule``. None (no schedule known): every checkpoint."""
    if schedule is None:
        return None
    sched = sorted(schedule)
    if p.mine_epochs is not None:
        return sorted(set(p.mine_epochs) & set(sched))
    return sorted({sched[0], sched[len(sched) // 2], sched[-1]})


def layers_at(taps: Sequence[str], schedule: Optional[Sequence[int]], epoch: int) -> List[str]:
    """The layers probed at ``epoch``: the taps, and the input at the first probed checkpoint."""
    first = schedule is None or epoch == min(schedule)
    return list(taps) + ([INPUT_LAYER] if first else [])


def families_at(
    p: ProbeConfig, families: Sequence[str], schedule: Optional[Sequence[int]], epoch: int, layer: str
) -> List[str]:
    """The probe families run on ``layer`` at ``epoch`` (out of ``families``, the trial's)."""
    mine_at = mine_epochs(p, schedule)
    out = []
    for name in families:
        if layer == INPUT_LAYER and name in INFORMATION_FAMILIES:
            continue
        if name == "mine" and mine_at is not None and epoch not in mine_at:
            continue
        out.append(name)
    return out
