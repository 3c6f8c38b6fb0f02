"""Resume unpickles only what this user's sweep signed.

``ssl-ray resume`` hands a sweep directory to Ray Tune's restore, which unpickles ``tuner.pkl``, the trials held in
``experiment_state-*.json``, the search algorithm's state (``searcher-state-*.pkl``, ``search_gen_state-*.json``,
``basic-variant-state-*.json``)
and each trial's ``params.pkl``; unpickling runs code. So while a sweep runs, its driver copies those files into
``ssl_ray_signed/`` with a manifest of their SHA-256 digests, signed with the user's key (the HMAC of
``sweep.claim``), whenever they change (looked at every :data:`EVERY_S` seconds, after ``tuner.fit`` and when a
signal stops it). On resume, :func:`restore_signed`:

* refuses, in one line, a snapshot whose manifest or files do not match the signature, a sweep with no snapshot
  (one started before this, or not by ssl_ray: ``--trust`` signs it as it is), and a live ``tuner.pkl`` that is not
  the signed one (Tune writes it once, when the sweep starts: only a hand changes it);
* puts the signed copies in place of the live state files, and removes any live state file the snapshot lacks, so
  Tune reads signed bytes only. A driver killed between Tune's write and the next snapshot resumes from that
  snapshot's state: Tune's own checkpoints are periodic too, and finished work is found again (checkpoints,
  MLflow runs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional

from ssl_ray.errors import ConfigError
from ssl_ray.sweep.user_key import signature

SNAPSHOT = "ssl_ray_signed"
MANIFEST = "manifest.json"
EVERY_S = 0.25  # a stat of each state file; a copy only when one changed (Tune saves every 1-10 s)
# Tune's own names (TuneController, BasicVariantGenerator, SearchGenerator, Searcher CKPT_FILE_TMPL): all of them, or
# a restore from a snapshot that lags the live files mixes two moments (a resumed Optuna sweep then waited forever)
TOP_PATTERNS = (
    "tuner.pkl",
    "experiment_state-*.json",
    "basic-variant-state-*.json",
    "search_gen_state-*.json",
    "searcher-state*.pkl",
    "*.pkl",
)
NOT_TRIALS = ("train", "bank", SNAPSHOT, SNAPSHOT + ".new", SNAPSHOT + ".old")


def state_files(sweep_dir: Path) -> List[Path]:
    """The files Tune's restore reads and may unpickle: the sweep's own state and each trial's ``params.pkl``."""
    top = {p for pattern in TOP_PATTERNS for p in sweep_dir.glob(pattern) if p.is_file()}
    trials = {p for p in sweep_dir.glob("*/params.pkl") if p.parent.name not in NOT_TRIALS}
    return sorted(top | trials)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sign(files: Dict[str, str]) -> str:
    return signature(json.dumps(files, sort_keys=True).encode())


class StateSigner:
    """Snapshots a running sweep's state when it changed (``maybe``), or now (``now``)."""

    def __init__(self, sweep_dir: str | Path):
        self.sweep_dir = Path(sweep_dir)
        self._seen: Optional[tuple] = None
        self._at = 0.0

    def maybe(self) -> None:
        if time.monotonic() - self._at >= EVERY_S:
            self.now()

    def now(self) -> None:
        self._at = time.monotonic()
        files = state_files(self.sweep_dir)
        seen = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        if seen != self._seen and files:
            snapshot(self.sweep_dir, files)
            self._seen = seen


def snapshot(sweep_dir: Path, files: Optional[List[Path]] = None) -> Path:
    """Copy the state files into a new signed snapshot and put it in place of the old one."""
    files = state_files(sweep_dir) if files is None else files
    new, cur, old = (sweep_dir / (SNAPSHOT + s) for s in (".new", "", ".old"))
    shutil.rmtree(new, ignore_errors=True)
    digests = {}
    for p in files:
        rel = p.relative_to(sweep_dir)
        (new / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, new / rel)
        digests[str(rel)] = _digest(new / rel)  # the copy's: the live file may change while it is copied
    (new / MANIFEST).write_text(json.dumps({"files": digests, "signature": _sign(digests)}, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if cur.exists():
        os.replace(cur, old)
    os.replace(new, cur)
    shutil.rmtree(old, ignore_errors=True)
    return cur


def _verified(folder: Path) -> Optional[Dict[str, str]]:
    """The snapshot's ``{relative path: digest}`` if its manifest is signed by this user and its files match."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
        files = {str(k): str(v) for k, v in m["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not hmac.compare_digest(str(m.get("signature", "")), _sign(files)):
        return None
    for rel, digest in files.items():
        p = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute() or not p.is_file() or _digest(p) != digest:
            return None
    return files


def restore_signed(sweep_dir: Path) -> None:
    """Before Tune's restore: refuse unsigned state, put the signed state in place (see the module docstring)."""
    sweep_dir = Path(sweep_dir)
    folder = next(
        (f for f in (sweep_dir / (SNAPSHOT + s) for s in ("", ".old", ".new")) if _verified(f) is not None), None
    )
    if folder is None:
        raise ConfigError(
            f"--resume {sweep_dir}: its Ray Tune state is not signed with your ssl_ray key (no valid "
            f"{SNAPSHOT}/); resuming unpickles it, which can run code. If you trust this sweep, run "
            f"`ssl-ray resume --trust {sweep_dir}`"
        )
    files = _verified(folder)
    live = sweep_dir / "tuner.pkl"
    if "tuner.pkl" in files and live.is_file() and _digest(live) != files["tuner.pkl"]:
        raise ConfigError(
            f"--resume {sweep_dir}: its tuner.pkl is not the one this sweep signed (it was replaced); "
            f"resuming would unpickle it, which can run code. If you trust it, run "
            f"`ssl-ray resume --trust {sweep_dir}`"
        )
    for p in state_files(sweep_dir):
        if str(p.relative_to(sweep_dir)) not in files:
            p.unlink()
    for rel in files:
        shutil.copy2(folder / rel, sweep_dir / rel)
