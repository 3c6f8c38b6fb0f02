"""The training state a checkpoint holds, and how a restarted worker gets it back.

A checkpoint directory (reported through ``ray.train.report``; Ray Train owns the format and the
storage) holds one ``state.pt``: model, optimizer, scheduler, the EMA target encoder if any, the epoch,
every RNG state (torch CPU and CUDA, numpy, Python's ``random``), the data-order seed, the experiment
config and the trial's MLflow run id. Loading is data only (``weights_only=True``).

:func:`resume_state` loads the latest checkpoint Ray Train hands back. If that one is damaged (a
truncated write, a full disk, a bad copy), it falls back to the newest readable sibling checkpoint with
a warning. Nothing is deleted: the damaged directory stays where it was, and checkpoints written after a
fallback get a fresh directory name (:func:`ssl_ray.checkpoints.checkpoint_dir_name`) so they never overwrite it.
The file itself is read and written by :mod:`ssl_ray.checkpoints`.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ssl_ray.checkpoints import CorruptCheckpoint, checkpoint_epoch, load_state, write_state

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# RNG state as plain tensors and ints (weights_only=True loads nothing else)


def rng_state() -> Dict[str, Any]:
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": int(py_version), "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(s: Dict[str, Any]) -> None:
    if isinstance(s, torch.Tensor):  # checkpoints written before numpy/python states were kept
        torch.set_rng_state(s)
        return
    torch.set_rng_state(s["torch"])
    n = s["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = s["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


# ---------------------------------------------------------------------------------------------
# Save and load


def save_state(
    path: str,
    *,
    model,
    optimizer,
    scheduler,
    epoch: int,
    cfg: Dict[str, Any],
    mlflow_run_id: Optional[str],
    target_model=None,
) -> None:
    """Write ``state.pt`` into ``path`` (a directory that becomes a Ray Train checkpoint)."""
    extra = {"target_model": target_model.state_dict()} if target_model is not None else {}
    write_state(
        path,
        {
            **extra,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": int(epoch),
            "rng": rng_state(),
            "data_seed": int(cfg["train"]["seed"]),
            "config": cfg,
            "mlflow_run_id": mlflow_run_id or "",
        },
    )


@dataclass
class Resumed:
    state: Dict[str, Any]
    source: str  # the checkpoint directory the state came from
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (damaged directory, why)

    @property
    def fell_back(self) -> bool:
        return bool(self.skipped)


def _siblings(checkpoint) -> List[Tuple[int, str]]:
    """Checkpoint directories beside ``checkpoint`` in its storage, newest epoch first."""
    import pyarrow.fs as pafs

    fs = checkpoint.filesystem
    parent = os.path.dirname(checkpoint.path.rstrip("/"))
    infos = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    found = [(checkpoint_epoch(i.base_name), i.path) for i in infos if i.type == pafs.FileType.Directory]
    return sorted(((e, p) for e, p in found if e is not None), key=lambda t: (t[0], t[1]), reverse=True)


def _load_from(checkpoint) -> Dict[str, Any]:
    with checkpoint.as_directory() as d:
        return load_state(d)


def resume_state(checkpoint) -> Resumed:
    """The state of ``checkpoint`` (a ``ray.train.Checkpoint``), or of the newest readable checkpoint before
    it when it is damaged. Raises :class:`CorruptCheckpoint` when no checkpoint of the run can be read."""
    try:
        return Resumed(_load_from(checkpoint), checkpoint.path)
    except CorruptCheckpoint as e:
        skipped = [(checkpoint.path, str(e))]
    from ray.train import Checkpoint

    latest = checkpoint.path.rstrip("/")
    latest_epoch = checkpoint_epoch(latest)
    for epoch, path in _siblings(checkpoint):
        if path.rstrip("/") == latest or (latest_epoch is not None and epoch > latest_epoch):
            continue
        try:
            state = _load_from(Checkpoint(path, filesystem=checkpoint.filesystem))
        except CorruptCheckpoint as e:
            skipped.append((path, str(e)))
            continue
        for bad, why in skipped:
            log.warning(
                "ssl_ray: damaged checkpoint %s (%s); resuming from %s instead. Nothing was deleted.", bad, why, path
            )
        return Resumed(state, path, skipped)
    raise CorruptCheckpoint("no readable checkpoint to resume from: " + "; ".join(why for _, why in skipped))
