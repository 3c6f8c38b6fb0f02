"""Checkpoints on disk: their names, where a trial keeps them, the one reader of ``state.pt``.

Ray Train owns the checkpoint format and storage: a checkpoint is a directory reported through
``ray.train.report`` under ``<sweep dir>/train/<trial id>/``, named ``epoch_0008`` (or
``epoch_0008_r<generation>`` when written after falling back past a damaged one). Ours is the one file
inside it, ``state.pt``, which :func:`load_state` alone opens -- as data (``weights_only=True``): a
checkpoint is never code. Training (:mod:`ssl_ray.train.state`), the probes, backfill, resume, reports
and export all come here.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from ssl_ray.errors import ConfigError

CHECKPOINT_FILE = "state.pt"
TRAIN_DIR = "train"  # <sweep dir>/train/<trial id>/epoch_NNNN/state.pt
REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch", "config")
_DIR_RE = re.compile(r"^epoch_(\d+)(?:_r\d+)?$")


class CorruptCheckpoint(RuntimeError):
    """A checkpoint that cannot be read back as a complete training state."""


def trial_dir(sweep_dir: str | Path, trial_id: str) -> Path:
    """Where Ray Train keeps a trial's checkpoints."""
    return Path(sweep_dir) / TRAIN_DIR / trial_id


def checkpoint_epoch(dir_name: str) -> Optional[int]:
    """``epoch_0008`` or ``epoch_0008_r1732350000`` -> 8; anything else -> None."""
    m = _DIR_RE.match(os.path.basename(str(dir_name).rstrip("/")))
    return int(m.group(1)) if m else None


def checkpoint_dir_name(epoch: int, generation: Optional[str] = None) -> str:
    """Directory name of the checkpoint at ``epoch``; after a fallback, a generation suffix keeps the
    damaged directory of the same epoch untouched."""
    return f"epoch_{epoch:04d}" + (f"_r{generation}" if generation else "")


def new_generation() -> str:
    """A suffix for checkpoint directories written after a fallback (unique per restart)."""
    return str(int(time.time() * 1000))


def checkpoint_dir(path: str | Path) -> Path:
    """A checkpoint directory from itself or its ``state.pt`` (resolved)."""
    p = Path(path).expanduser().resolve()
    return p.parent if p.name == CHECKPOINT_FILE else p


def write_state(ckpt_dir: str | Path, state: Dict[str, Any]) -> None:
    torch.save(state, Path(ckpt_dir) / CHECKPOINT_FILE)


def load_state(path: str | Path, required: Sequence[str] = REQUIRED_KEYS) -> Dict[str, Any]:
    """The training state of a checkpoint (its directory or its ``state.pt``), on the CPU, as data only.
    :class:`CorruptCheckpoint` when it is missing, unreadable or lacks one of ``required``."""
    file = checkpoint_dir(path) / CHECKPOINT_FILE
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, OSError...
        first = str(e).splitlines()[0] if str(e) else ""
        raise CorruptCheckpoint(f"{file}: cannot be read ({type(e).__name__}: {first})") from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CorruptCheckpoint(f"{file}: incomplete training state (missing {', '.join(missing)})")
    return state


def scan_checkpoints(trial: str | Path, epochs: Optional[Iterable[int]] = None) -> List[Tuple[int, str]]:
    """``[(epoch, dir)]`` of the checkpoints of ``epochs`` (None: all) in a trial directory, by name (nothing
    is loaded). The newest directory of an epoch wins: an epoch trained again after a fallback has a newer one."""
    wanted = None if epochs is None else set(int(e) for e in epochs)
    by_epoch: Dict[int, Path] = {}
    for d in sorted(Path(trial).glob("epoch_*"), key=lambda p: p.stat().st_mtime):
        e = checkpoint_epoch(d.name)
        if e is not None and (wanted is None or e in wanted) and (d / CHECKPOINT_FILE).is_file():
            by_epoch[e] = d
    return [(e, str(d)) for e, d in sorted(by_epoch.items())]


def read_checkpoints(trial: str | Path, warn=print) -> List[Tuple[int, str, Dict[str, Any]]]:
    """``[(epoch, dir, state)]`` of every readable ``state.pt`` under a trial directory, by epoch (the
    newest of an epoch wins). A damaged one is reported through ``warn`` and left where it is."""
    trial = Path(trial)
    if not trial.is_dir():
        raise ConfigError(f"trial directory {trial}: no such directory")
    by_epoch: Dict[int, Tuple[int, str, Dict[str, Any]]] = {}
    for file in sorted(trial.rglob(CHECKPOINT_FILE), key=lambda p: p.stat().st_mtime):
        try:
            s = load_state(file, required=("epoch", "config"))
        except CorruptCheckpoint as e:
            warn(f"warning: skipping {e}")
            continue
        by_epoch[int(s["epoch"])] = (int(s["epoch"]), str(file.parent), s)
    if not by_epoch:
        raise ConfigError(f"trial directory {trial}: no checkpoints ({CHECKPOINT_FILE}) under it")
    return [by_epoch[e] for e in sorted(by_epoch)]
