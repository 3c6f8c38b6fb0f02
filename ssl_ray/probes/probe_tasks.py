"""The Ray tasks of the probe fan-out and the records it keeps (``fanout.py`` drives them).

``features_task`` runs a checkpoint's one forward pass and returns each layer's features as its own
object; ``score_task`` scores one layer against every target.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Set

import ray


@ray.remote
def features_task(ckpt_dir: str, layers: Sequence[str], threads: int) -> list:
    import torch

    from ssl_ray.faults import maybe_fail
    from ssl_ray.probes.engine import checkpoint_features

    torch.set_num_threads(threads)
    cf = checkpoint_features(ckpt_dir, layers)
    maybe_fail("probe.features", epoch=cf.epoch)
    meta = dataclasses.replace(cf, layers={})
    return [(meta, _node_id())] + [cf.layers[name] for name in layers]


@ray.remote
def score_task(head, layer_features: dict, layer: str, threads: int):
    """Every probe of one layer; returns its :class:`~ssl_ray.probes.scoring.LayerScores` and the Ray node
    ids where the features were computed and where they were scored."""
    import torch

    from ssl_ray.faults import maybe_fail

    meta, features_node = head
    torch.set_num_threads(threads)
    maybe_fail("probe.score", epoch=meta.epoch, layer=layer)
    cf = dataclasses.replace(meta, layers={layer: layer_features})
    return cf.score(layer), (features_node, _node_id())


def _node_id() -> str:
    return ray.get_runtime_context().get_node_id()


@dataclass
class ProbeFailure:
    trial_id: str
    run_id: str
    epoch: int
    layer: str
    attempt: int
    error: str
    retried: bool  # another attempt was submitted


@dataclass
class CheckpointJob:
    trial_id: str
    run_id: str
    epoch: int
    ckpt_dir: str
    layers: List[str]
    attempts: Dict[str, int] = field(default_factory=dict)
    retry: Set[str] = field(default_factory=set)
    outstanding: int = 0
    refs: list = field(default_factory=list)  # keeps the features alive while layers are scored


@dataclass
class TrialProbes:
    trial_id: str
    jobs: int = 0
    settled: int = 0
    missing: List[str] = field(default_factory=list)
    nodes: Set[str] = field(default_factory=set)  # Ray nodes the trial's probe tasks ran on
    skipped: Dict[str, str] = field(default_factory=dict)  # target -> why it could not be scored
    rows: List[tuple] = field(default_factory=list)  # probe-table rows scored since the table was last written
    table: Any = None  # the run's probe table (a DataFrame) as last written, once read


def failure_message(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:500]
