"""A sweep's directory belongs to one sweep: claimed once, signed, and trusted on resume only when signed.

``claim(cfg)`` creates ``<storage>/<name>/ssl_ray_sweep.yaml`` with ``O_EXCL``: of two sweeps started at
the same moment under one name, exactly one gets the directory, and a second sweep under a finished
one's name never joins it (its trials, settings and MLflow parent run stay apart). The settings never
hold a password (the tracking URI is masked). Beside them, ``ssl_ray_sweep.sig`` holds an HMAC-SHA256
of the file under this user's key (``~/.config/ssl_ray/sweep.key``, mode 0600, made on first use).

What ``resume`` trusts: ``ssl-ray resume`` has Ray Tune unpickle the sweep's state (``tuner.pkl`` and
its trials), and unpickling runs code. So it continues only a directory whose settings carry this
user's signature, that this user owns and that no other user may write to, and Tune reads only the state
files the sweep signed as it ran (``sweep.signed_state``). A sweep copied from
someone else can be trusted explicitly with ``ssl-ray resume --trust DIR`` (it signs the settings).
"""

from __future__ import annotations

import hmac
import os
import re
import stat
from pathlib import Path

from ssl_ray.config import SWEEP_FILE, SweepConfig, dump_yaml
from ssl_ray.errors import ConfigError
from ssl_ray.sweep.user_key import key_file, signature

SIGNATURE_FILE = "ssl_ray_sweep.sig"


class SweepExists(ConfigError):
    """The sweep directory already holds a sweep."""


def settings_text(cfg: SweepConfig, sweep_dir: Path) -> str:
    """The sweep's settings, with its storage and tracking URI resolved (the URI's password masked)."""
    from ssl_ray.uris import mask_uri

    d = cfg.to_dict()
    d.update(storage_path=str(sweep_dir.parent), mlflow_uri=mask_uri(cfg.resolved_mlflow_uri()))
    return dump_yaml(d)  # never an alias: resume reads it back with the strict loader


def claim(cfg: SweepConfig) -> Path:
    """Make ``cfg``'s sweep directory this sweep's: its settings written with O_EXCL and signed.
    :class:`SweepExists` when another sweep holds it."""
    sweep_dir = cfg.resolved_storage() / cfg.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    text = settings_text(cfg, sweep_dir).encode()
    try:
        fd = os.open(sweep_dir / SWEEP_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise SweepExists(
            f"a sweep named {cfg.name!r} already exists in {sweep_dir}; continue it with "
            f"`ssl-ray resume {sweep_dir}`, or start a new one with another --name"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(text)
    (sweep_dir / SIGNATURE_FILE).write_text(signature(text) + "\n")
    return sweep_dir


def next_name(name: str) -> str:
    """``vicreg_digits`` -> ``vicreg_digits-2`` -> ``vicreg_digits-3``."""
    m = re.fullmatch(r"(.*)-(\d+)", name)
    return f"{m.group(1)}-{int(m.group(2)) + 1}" if m else f"{name}-2"


def claim_free(cfg: SweepConfig, tries: int = 1000) -> SweepConfig:
    """Claim the first free name of ``name``, ``name-2``, ``name-3``, ...; the sweep under the name it got."""
    for _ in range(tries):
        try:
            claim(cfg)
            return cfg
        except SweepExists:
            cfg = cfg.replace(name=next_name(cfg.name))
    raise ConfigError(f"no free sweep name after {tries} tries; give one with --name")


def trust(sweep_dir: Path) -> None:
    """Sign a sweep's settings and its Ray Tune state, as they are, as this user's (``ssl-ray resume --trust``)."""
    from ssl_ray.sweep.signed_state import snapshot

    settings = sweep_dir / SWEEP_FILE
    (sweep_dir / SIGNATURE_FILE).write_text(signature(settings.read_bytes()) + "\n")
    snapshot(sweep_dir)


def check_trusted(sweep_dir: Path) -> None:
    """Refuse (one line) to resume a sweep this user did not start: see the module's docstring."""
    settings, sig = sweep_dir / SWEEP_FILE, sweep_dir / SIGNATURE_FILE
    for p in (sweep_dir, settings, sweep_dir / "tuner.pkl"):
        if not p.exists():
            continue
        st = p.stat()
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(
                f"--resume {sweep_dir}: {p} is owned or writable by another user; resuming unpickles "
                f"Ray Tune's state there, which can run code, so ssl_ray resumes only your own sweeps"
            )
    ok = sig.is_file() and hmac.compare_digest(sig.read_text().strip(), signature(settings.read_bytes()))
    if not ok:
        raise ConfigError(
            f"--resume {sweep_dir}: its settings are not signed with your ssl_ray key ({key_file()}); "
            f"resuming unpickles Ray Tune's state, which can run code. If you trust this sweep, "
            f"run `ssl-ray resume --trust {sweep_dir}`"
        )
    from ssl_ray.sweep.signed_state import restore_signed

    restore_signed(sweep_dir)  # Tune's state as this user's sweep signed it, or a one-line refusal
