"""Does this interpreter's environment hold exactly the packages of requirements.lock?

    .venv/bin/python scripts/check_lock.py              # list every difference; exit 1 if there is one
    .venv/bin/python scripts/check_lock.py --unlocked   # print the installed packages the lock does not name

scripts/setup.sh runs both after installing from the lock (removing what --unlocked names), and
tests/unit/test_lock.py runs the same comparison inside the test suite. Names are compared as PEP 503 normalizes
them (``PyYAML`` is ``pyyaml``, ``typing_extensions`` is ``typing-extensions``) and versions as PEP 440 values,
local tag included: the lock's ``torch==2.14.1`` is not met by ``2.14.1+cpu``, nor ``2.14.1+cu128`` by ``2.14.1``.
Standard library and ``packaging`` only (``packaging`` is in the lock; pip's vendored copy stands in).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import sys
import sysconfig
from pathlib import Path
from typing import Dict, Iterable, List

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - a venv whose install stopped before packaging
    from pip._vendor.packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PROJECT = "ssl-ray"
# installed but never locked: the project itself (installed from the checkout), and pip's own tooling unless the
# lock pins it (setuptools is in the lock, torch needs it, so it must match there)
TOOLING = ("pip", "setuptools", "wheel")
# locked, but setup leaves it out with SSL_RAY_SKIP_FFCV=1 (no system packages to compile it against)
OPTIONAL_WHEN_SKIPPED = ("ffcv",)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def normalize(name: str) -> str:
    """PEP 503's normal form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(a: str, b: str) -> bool:
    """Equal as PEP 440 versions, local tag included (``1.0`` is ``1.0.0``; ``2.14.1`` is not ``2.14.1+cpu``)."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def parse_lock(text: str) -> Dict[str, str]:
    """{normalized name: version} from a pip-compile style lock: one ``name==version`` per package; comments,
    ``# via`` lines, options (``-c``, ``--index-url``) and environment markers are ignored. A package pinned
    twice, or a requirement line that is not an exact pin, is an error: the lock must say one version."""
    pins: Dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = PIN.match(line)
        if not m:
            raise ValueError(f"requirements.lock line {n} is not an exact pin (name==version): {raw!r}")
        name = normalize(m.group(1))
        if name in pins:
            raise ValueError(f"requirements.lock pins {name} twice (line {n})")
        pins[name] = m.group(2)
    return pins


def read_lock(path: Path = LOCK) -> Dict[str, str]:
    return parse_lock(path.read_text())


def site_packages() -> List[str]:
    """The environment's own package folders (purelib and platlib; one folder in a venv on Linux)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def installed(dists: Iterable | None = None) -> Dict[str, str]:
    """{normalized name: version} of every distribution installed in this interpreter's environment (its
    site-packages: not whatever else is on sys.path, such as the copies setuptools vendors under
    ``setuptools/_vendor``, which it puts on sys.path once imported); a name found twice (two .dist-info folders)
    keeps both versions, joined by " and ", so that it never matches a pin."""
    found: Dict[str, str] = {}
    for d in importlib.metadata.distributions(path=site_packages()) if dists is None else dists:
        name = d.metadata["Name"]
        if not name:
            continue
        key = normalize(name)
        found[key] = f"{found[key]} and {d.version}" if key in found and found[key] != d.version else d.version
    return found


def drift(lock: Dict[str, str], have: Dict[str, str], skip_ffcv: bool = False) -> List[str]:
    """Every way ``have`` differs from ``lock``, one line each; empty when the environment is exactly the lock."""
    out = []
    for name, want in sorted(lock.items()):
        got = have.get(name)
        if got is None:
            if not (skip_ffcv and name in OPTIONAL_WHEN_SKIPPED):
                out.append(f"missing: {name}=={want}")
        elif not same_version(got, want):
            out.append(f"wrong version: {name} {got} installed, the lock says {want}")
    out += [f"not in the lock: {name} {have[name]}" for name in unlocked(lock, have)]
    return out


def unlocked(lock: Dict[str, str], have: Dict[str, str]) -> List[str]:
    """The installed distributions the lock does not name, apart from the project itself and pip's tooling."""
    return sorted(n for n in have if n not in lock and n != PROJECT and n not in TOOLING)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--unlocked", action="store_true", help="print the installed packages the lock does not name")
    args = parser.parse_args(argv)
    lock, have = read_lock(args.lock), installed()
    if args.unlocked:
        print("\n".join(unlocked(lock, have)))
        return 0
    problems = drift(lock, have, skip_ffcv=os.environ.get("SSL_RAY_SKIP_FFCV", "0") == "1")
    for p in problems:
        print(f"[setup] lock: {p}", file=sys.stderr)
    if problems:
        print(
            f"[setup] error: {sys.prefix} does not match {args.lock.name} ({len(problems)} differences)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
