"""This user's ssl_ray key (``~/.config/ssl_ray/sweep.key``, mode 0600, made on first use) and the HMAC-SHA256 it
signs a sweep's settings (``sweep.claim``) and Tune state (``sweep.signed_state``) with."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def key_file() -> Path:
    return Path(os.environ.get("SSL_RAY_KEY_FILE", Path.home() / ".config" / "ssl_ray" / "sweep.key"))


def _key() -> bytes:
    path = key_file()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        except FileExistsError:  # made by a sweep started at the same moment
            pass
    return path.read_text().strip().encode()


def signature(settings: bytes) -> str:
    return hmac.new(_key(), settings, hashlib.sha256).hexdigest()
