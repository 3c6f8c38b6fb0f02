"""Sweep VICReg's lambda and the backbone width on the bundled digits dataset.

    python experiments/sweep_vicreg.py                  # configs/vicreg_digits.yaml, locally
    python experiments/sweep_vicreg.py --print-config   # every key and the trials; starts nothing
    python experiments/sweep_vicreg.py --help           # the flags, with the values this recipe uses

The recipe is configs/vicreg_digits.yaml; copy it to change the sweep (``--config my.yaml``).
"""

import sys
from pathlib import Path

from ssl_ray.sweep.commands import sweep_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vicreg_digits.yaml"

if __name__ == "__main__":
    sys.exit(sweep_main(sys.argv[1:], config_file=str(CONFIG), prog="sweep_vicreg.py"))
