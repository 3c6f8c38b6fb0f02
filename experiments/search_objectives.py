"""Search the SSL objective, its coefficients and the width with Optuna and ASHA on the bundled digits dataset.

    python experiments/search_objectives.py                  # configs/search_digits.yaml, locally
    python experiments/search_objectives.py --print-config   # every key and the trials; starts nothing
    python experiments/search_objectives.py --search-alg bohb --scheduler fifo   # the same space with BOHB

The recipe is configs/search_digits.yaml; copy it to change the search (``--config my.yaml``).
"""

import sys
from pathlib import Path

from ssl_ray.sweep.commands import sweep_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "search_digits.yaml"

if __name__ == "__main__":
    sys.exit(sweep_main(sys.argv[1:], config_file=str(CONFIG), prog="search_objectives.py"))
