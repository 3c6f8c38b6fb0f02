"""Folders and files a command will write, checked before it writes anything: the one answer to "can this
folder be made here?", for the results folder, a sweep's storage, a SQLite store, an export or a .beton.

``os.access`` is no answer: it says yes to root everywhere, on read-only mounts and under ``/proc``. So the
check makes a temporary folder in the nearest existing ancestor and removes it at once: nothing is left.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from ssl_ray.errors import ConfigError


def unwritable(folder: str | os.PathLike) -> Optional[str]:
    """Why ``folder`` cannot be written or created (e.g. ``'/x/a.txt is not a writable directory'``); None
    when it can."""
    folder = Path(folder).expanduser().absolute()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link: creating the folder through it would fail
            return f"{probe} is a broken link"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a writable directory"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ssl_ray_check_", dir=probe))
    except OSError as e:
        return f"{probe} is not a writable directory ({e.strerror or e})"
    return None


def check_writable_dir(folder: str | os.PathLike, what: str) -> Path:
    """``folder`` (absolute), or one ConfigError line naming ``what`` when it cannot be written or created."""
    why = unwritable(folder)
    if why:
        raise ConfigError(f"{what} {folder}: {why}")
    return Path(folder).expanduser().absolute()


def check_new_file(path: str | os.PathLike, what: str) -> Path:
    """A file to be written (or replaced) at ``path``: not a folder, and in a folder that can be written or
    created. Returns it absolute."""
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        raise ConfigError(f"{what} {path}: is a directory; name the file to write")
    why = unwritable(p.parent)
    if why:
        raise ConfigError(f"{what} {path}: cannot write it ({why})")
    return p
