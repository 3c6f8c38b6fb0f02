"""The supervised baseline: cross-entropy on the digit labels, with and without augmentation.

    python experiments/supervised_baseline.py                  # configs/supervised_digits.yaml, locally
    python experiments/supervised_baseline.py --print-config   # every key and the trials; starts nothing
    python experiments/supervised_baseline.py --help           # the flags, with the values this recipe uses

The recipe is configs/supervised_digits.yaml; copy it to change the sweep (``--config my.yaml``).
"""

import sys
from pathlib import Path

from ssl_ray.sweep.commands import sweep_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "supervised_digits.yaml"

if __name__ == "__main__":
    sys.exit(sweep_main(sys.argv[1:], config_file=str(CONFIG), prog="supervised_baseline.py"))
