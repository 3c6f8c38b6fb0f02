#!/usr/bin/env bash
# Set everything up (into .venv/) and run the default VICReg sweep on the bundled digits dataset.
# Extra arguments go to experiments/sweep_vicreg.py (e.g. --epochs 5).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/python experiments/sweep_vicreg.py "$@"
