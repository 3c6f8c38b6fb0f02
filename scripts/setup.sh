#!/usr/bin/env bash
# Create or reuse .venv/ at the repo root and install ssl_ray with everything it needs.
#
# Idempotent: a stamp file records a hash of pyproject.toml, requirements.lock, scripts/check_lock.py and this
# script; when all are unchanged and the venv imports ssl_ray, nothing is reinstalled and this returns in about a
# second.
#
#   bash scripts/setup.sh            # install (or verify) everything
#   SSL_RAY_SKIP_FFCV=1 bash ...     # skip the optional FFCV extra (no system packages needed)
#
# Locked installs: requirements.lock pins every package, the dev and ffcv extras included, for Python 3.11 on
# Linux x86_64. Setup installs exactly it (pip install --no-deps -r requirements.lock, without its ffcv line under
# SSL_RAY_SKIP_FFCV=1, then ssl_ray itself with --no-deps), uninstalls whatever else is in .venv, runs pip check,
# and stops with an error if .venv still differs from the lock (scripts/check_lock.py; tests/unit/test_lock.py
# checks the same in the suite). To update the lock after changing a dependency in pyproject.toml, with uv
# (`pip install uv`, in any environment), from the repository root:
#
#   uv pip compile pyproject.toml --extra dev --extra ffcv --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock
#
# It keeps every pin the change allows; add --upgrade-package NAME (or --upgrade, for everything) to move to newer
# releases. Commit the new lock with the change; the next setup installs it.
#
# System packages (installed with apt-get when run as root): FFCV's build dependencies, and PostgreSQL's server,
# which the tests start in a temporary folder (tests/conftest.py's `postgres`; not needed to run a sweep).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY_BIN="${PYTHON:-python3.11}"
STAMP="$VENV/.ssl_ray_installed"
SYS_PKGS=(pkg-config libopencv-dev libturbojpeg0-dev)
TEST_PKGS=(postgresql)

want_hash() {
    cat pyproject.toml requirements.lock scripts/check_lock.py scripts/setup.sh | sha256sum | cut -d' ' -f1
    echo "ffcv=${SSL_RAY_SKIP_FFCV:-0}"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_hash)" ] \
    && "$VENV/bin/python" -c "import ssl_ray" 2>/dev/null; then
    echo "[setup] .venv is up to date (delete $STAMP to force a reinstall)"
    exit 0
fi
rm -f "$STAMP"  # written again only when this install succeeds: one that stops halfway is redone next time

if ! command -v "$PY_BIN" >/dev/null 2>&1; then
    echo "[setup] error: $PY_BIN not found; ssl_ray needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi
if ! "$PY_BIN" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "[setup] error: $PY_BIN is $("$PY_BIN" --version 2>&1); ssl_ray needs Python 3.11" >&2
    exit 2
fi

# System packages FFCV compiles against; PostgreSQL for the tests.
missing_sys() {
    local miss=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || miss+=("$p")
    done
    echo "${miss[@]:-}"
}
EXTRAS="dev"
WANT=("${TEST_PKGS[@]}")
if [ "${SSL_RAY_SKIP_FFCV:-0}" != "1" ]; then
    EXTRAS="dev,ffcv"
    WANT+=("${SYS_PKGS[@]}")
fi
miss="$(missing_sys "${WANT[@]}")"
if [ -n "$miss" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing system packages (FFCV's, and PostgreSQL for the tests): $miss"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $miss >/dev/null
    else
        ffcv_miss="$([ "$EXTRAS" = "dev" ] || missing_sys "${SYS_PKGS[@]}")"
        test_miss="$(missing_sys "${TEST_PKGS[@]}")"
        if [ -n "$ffcv_miss" ]; then
            echo "[setup] error: FFCV needs the system packages: $ffcv_miss" >&2
            echo "[setup]   install them with: sudo apt-get install -y $ffcv_miss" >&2
            echo "[setup]   or skip FFCV (torchvision loaders only): SSL_RAY_SKIP_FFCV=1 bash scripts/setup.sh" >&2
            exit 2
        fi
        echo "[setup] note: the tests start a PostgreSQL server; install it with: sudo apt-get install -y $test_miss" >&2
    fi
fi

# A fresh .venv is 7.06 GiB (the CUDA torch build and its nvidia-* libraries), and pip's downloads in its temporary
# folder add at most 0.3 GiB while it installs (docs/benchmarks.md): 8 GB free is enough, 7 is not. Say so up front
# rather than let pip die halfway with "No space left on device".
NEED_GB=8
free_gb=$(df -Pk "$ROOT" | awk 'NR==2 {print int($4 / 1048576)}')
if [ ! -x "$VENV/bin/python" ] && [ "${free_gb:-0}" -lt "$NEED_GB" ]; then
    echo "[setup] error: only ${free_gb} GB free on the disk holding $ROOT; installing into .venv needs about ${NEED_GB} GB" >&2
    exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY_BIN" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# Keep the log readable: drop pip's notes about unreachable extra index locations.
quiet() {
    local rc
    "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    rc=${PIPESTATUS[0]}
    return "$rc"
}
quiet "${PIP[@]}" install -q --upgrade pip wheel  # setuptools: the lock's (torch needs it)
REQS="requirements.lock"
if [ "${SSL_RAY_SKIP_FFCV:-0}" = "1" ]; then
    REQS="$(mktemp)"
    trap 'rm -f "$REQS"' EXIT
    grep -viE '^ffcv[[:space:]]*==' requirements.lock >"$REQS"
fi
echo "[setup] installing requirements.lock for ssl_ray[$EXTRAS] (torch, ray, mlflow, ... this takes a few minutes the first time)"
# --no-deps: the lock is the whole environment (pip check below confirms it is complete); PYTHONWARNINGS: no
# setuptools deprecation banners from building FFCV and the editable install
quiet env PYTHONWARNINGS=ignore "${PIP[@]}" install --progress-bar off -q --no-deps -r "$REQS"
quiet env PYTHONWARNINGS=ignore "${PIP[@]}" install --progress-bar off -q --no-deps -e .
unlocked="$("$VENV/bin/python" scripts/check_lock.py --unlocked)"
if [ -n "$unlocked" ]; then
    echo "[setup] uninstalling what requirements.lock does not name:" $unlocked
    quiet "${PIP[@]}" uninstall -q -y $unlocked
fi
if ! broken="$("${PIP[@]}" check 2>&1)"; then
    echo "$broken" >&2
    echo "[setup] error: the installed packages do not satisfy each other: requirements.lock is incomplete or stale (update it as this script's header says)" >&2
    exit 1
fi
"$VENV/bin/python" scripts/check_lock.py  # every package exactly at its locked version, nothing else; exit 1 otherwise
"$VENV/bin/python" -c "import ssl_ray, torch, ray, mlflow, sklearn; print('[setup] ok: torch', torch.__version__, '| ray', ray.__version__, '| mlflow', mlflow.__version__)"
if [ "${SSL_RAY_SKIP_FFCV:-0}" != "1" ]; then
    "$VENV/bin/python" -c "import ffcv, importlib.metadata as m; print('[setup] ok: ffcv', m.version('ffcv'))"  # ffcv.__version__ says 0.0.3rc1
fi
want_hash >"$STAMP"
