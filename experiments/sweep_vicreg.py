"""Sweep VICReg's lambda/mu/nu and the backbone width on the bundled digits dataset.

    python experiments/sweep_vicreg.py                       # the default sweep, locally
    python experiments/sweep_vicreg.py --epochs 5 --search model.width=[8,16,32]
    python experiments/sweep_vicreg.py --config my_sweep.yaml --address auto

Run with --help for every option.
"""

import sys
from pathlib import Path

from ssl_ray.cli import sweep_main

DEFAULTS = {
    "name": "vicreg_digits",
    "base": {
        "data": {"dataset": "digits", "image_size": 16, "augment": "digits", "views": 2,
                 "superclass_map": str(Path(__file__).with_name("digits_superclasses.txt"))},  # shape groups
        "model": {"backbone": "res", "depth": 4, "width": 32, "projector_dims": [128, 128]},
        "objective": {"name": "vicreg", "lam": 25.0, "mu": 25.0, "nu": 1.0},
        "optim": {"optimizer": "adamw", "lr": 2e-3, "batch_size": 256, "warmup_epochs": 1},
        "train": {"epochs": 20},
    },
    "search_space": {
        "objective.lam": [10.0, 25.0],
        "objective.mu": [25.0],
        "objective.nu": [1.0],
        "model.width": [16, 32],
    },
}

if __name__ == "__main__":
    sys.exit(sweep_main(sys.argv[1:], defaults=DEFAULTS, prog="sweep_vicreg.py"))
