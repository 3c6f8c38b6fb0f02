"""Probe one checkpoint: load it, run *one* forward pass over every probe image at every layer, and
score each layer against every target (``scoring.py``).

Engine-free: the Ray fan-out (``fanout.py``) runs :func:`checkpoint_features` once per checkpoint and
:func:`ssl_ray.probes.scoring.score_layer` once per layer; :func:`probe_checkpoint` does both serially.
Metric keys follow the MLflow naming contract: ``probe/<target>/<metric>/<layer>``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from ssl_ray.config import ExperimentConfig, ProbeConfig
from ssl_ray.models.build import load_model, model_from_config
from ssl_ray.models.ssl_model import SSLModel
from ssl_ray.probes.linear import default_device
from ssl_ray.probes.plan import INPUT_LAYER, families_at, layers_at
from ssl_ray.probes.probe_data import ProbeData, build_probe_data, pooled_inputs
from ssl_ray.probes.scoring import FeatureSet, probe_names, score_layer
from ssl_ray.probes.targets import LabelTarget


def probe_layers(cfg: ExperimentConfig, model: Optional[SSLModel] = None) -> List[str]:
    """The taps a trial's checkpoints are probed at: ``probe.layers``, or every tap of its model (the first
    checkpoint adds the ``input``: ``plan.layers_at``)."""
    return list(cfg.probe.layers or (model or model_from_config(cfg)).taps)


@dataclass
class CheckpointFeatures:
    """One forward pass of a checkpoint over every probe image, at every requested layer."""

    epoch: int
    probe: ProbeConfig  # the trial's probe settings, as saved in the checkpoint
    layers: Dict[str, Dict[str, torch.Tensor]]  # layer -> {clean_train, clean_test, sample_train, sample_test}
    inputs: Dict[str, torch.Tensor]  # {clean, sample}: pooled inputs, train rows then test rows
    clean_targets: List[LabelTarget]
    sample_targets: List[LabelTarget]
    splits: Dict[str, Tuple[np.ndarray, np.ndarray]]  # {clean, sample}: (fit rows, validation rows) of the train rows
    schedule: Optional[List[int]] = None  # the trial's probed epochs (which families run where: plan.py)

    def families(self, layer: str) -> List[str]:
        """The probe families this checkpoint's ``layer`` is scored with."""
        return families_at(self.probe, probe_names(self.probe), self.schedule, self.epoch, layer)

    def score(self, layer: str):
        return score_layer(layer, self.feature_sets(layer), self.probe, self.families(layer))

    def feature_sets(self, layer: str) -> List[FeatureSet]:
        f = self.layers[layer]
        out = []
        for group, targets in (("clean", self.clean_targets), ("sample", self.sample_targets)):
            train, test, inputs = f[f"{group}_train"], f[f"{group}_test"], self.inputs[group]
            if group not in self.splits or not len(train):
                out.append(FeatureSet(group, train, train[:0], test, inputs, targets))
                continue
            fit, val = (torch.from_numpy(r) for r in self.splits[group])
            n = len(train)
            order = torch.cat([fit, val, torch.arange(n, len(inputs))])  # inputs: train rows, then test rows
            out.append(FeatureSet(group, train[fit], train[val], test, inputs[order], targets))
        return out


@torch.no_grad()
def extract_features(
    model: SSLModel,
    data: ProbeData,
    layers: Iterable[str],
    batch_size: int = 512,
    device: Optional[torch.device] = None,
) -> Tuple[Dict[str, Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]:
    """Every layer's ``(N, C)`` features of every probe image from one forward pass per image, and the
    pooled inputs MINE pairs them with (also the features of the ``input`` layer, when asked for).
    Features come back as float32 on the CPU."""
    want_input = INPUT_LAYER in layers
    layers = [name for name in layers if name != INPUT_LAYER]
    device = device or default_device()
    model = model.to(device).eval()
    parts: Dict[str, Dict[str, list]] = {name: {} for name in layers}
    inputs: Dict[str, Dict[str, list]] = {"clean": {}, "sample": {}}

    def run(part: str, x: torch.Tensor) -> None:
        feats = model.forward_features(x.to(device, non_blocking=True), layers)
        for name in layers:
            parts[name].setdefault(part, []).append(feats[name].float().cpu())
        inputs["clean" if part.startswith("clean") else "sample"].setdefault(part, []).append(pooled_inputs(x))

    for split in ("train", "test"):
        for x in data.clean_batches(split, batch_size):
            run(f"clean_{split}", x)
    if data.has_sample:
        for x_tr, x_te in data.sample_batches():
            run("sample_train", x_tr)
            run("sample_test", x_te)
    empty = torch.empty(0, 0)
    feats = {name: {part: torch.cat(chunks) for part, chunks in p.items()} for name, p in parts.items()}
    for name in layers:
        for part in ("sample_train", "sample_test"):
            feats[name].setdefault(part, empty)
    pooled = {}
    for group, split_parts in inputs.items():
        rows = [torch.cat(split_parts[k]) for k in (f"{group}_train", f"{group}_test") if k in split_parts]
        pooled[group] = torch.cat(rows) if rows else empty
    if want_input:
        feats[INPUT_LAYER] = {
            part: torch.cat(chunks) if chunks else empty for group in inputs.values() for part, chunks in group.items()
        }
        for part in ("sample_train", "sample_test"):
            feats[INPUT_LAYER].setdefault(part, empty)
    return feats, pooled


def cached_probe_data(cfg: ExperimentConfig) -> ProbeData:
    """The probe data of a trial, built once per process: every checkpoint of a trial has the same (and a
    Ray worker probes many checkpoints in turn). Keyed by the data and probe sections; one trial's kept."""
    key = (cfg.data, cfg.probe)
    if _PROBE_DATA and _PROBE_DATA[0][0] == key:
        return _PROBE_DATA[0][1]
    data = build_probe_data(ExperimentConfig(data=cfg.data, probe=cfg.probe))
    _PROBE_DATA[:] = [(key, data)]
    return data


_PROBE_DATA: list = []  # [((data section, probe section), ProbeData)]: the last trial's


def checkpoint_features(
    ckpt_dir: str | Path, layers: Optional[Iterable[str]] = None, data: Optional[ProbeData] = None
) -> CheckpointFeatures:
    """Load a checkpoint and run its one forward pass over the trial's probe data (``layers``: those the plan
    gives this checkpoint, by default)."""
    model, cfg, epoch = load_model(ckpt_dir)
    schedule = cfg.train.checkpoint_schedule()
    layers = list(layers) if layers is not None else layers_at(probe_layers(cfg, model), schedule, epoch)
    data = data or cached_probe_data(cfg)
    feats, inputs = extract_features(model, data, layers)
    splits = {"clean": data.clean_split, **({"sample": data.sample_split} if data.has_sample else {})}
    return CheckpointFeatures(
        epoch, cfg.probe, feats, inputs, data.clean, [data.sample_target()] if data.has_sample else [], splits, schedule
    )


def probe_checkpoint(
    ckpt_dir: str | Path, layers: Optional[Iterable[str]] = None, probe_cfg: Optional[ProbeConfig] = None
) -> tuple[int, Dict[str, float]]:
    """Every probe of one checkpoint, serially: ``(epoch, {probe/<target>/<metric>/<layer>: value})``
    (targets that cannot be scored are left out; :func:`score_layer` says why)."""
    cf = checkpoint_features(ckpt_dir, layers)
    if probe_cfg is not None:
        cf = dataclasses.replace(cf, probe=probe_cfg)
    out: Dict[str, float] = {}
    for layer in cf.layers:
        out.update(cf.score(layer).metrics)
    return cf.epoch, out
