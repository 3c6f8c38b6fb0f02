"""The supervised baseline: cross-entropy on the digit labels, with and without augmentation, probed
exactly like the SSL trials (same backbone, layers, checkpoints and targets).

    python experiments/supervised_baseline.py
"""

import sys
from pathlib import Path

from ssl_ray.cli import sweep_main

DEFAULTS = {
    "name": "supervised_digits",
    "base": {
        "data": {"dataset": "digits", "image_size": 16, "augment": "digits", "views": 2,
                 "superclass_map": str(Path(__file__).with_name("digits_superclasses.txt"))},  # shape groups
        "model": {"backbone": "res", "depth": 4, "width": 32, "projector_dims": [128, 10]},
        "optim": {"optimizer": "adamw", "lr": 2e-3, "batch_size": 256, "warmup_epochs": 1},
        "train": {"mode": "supervised", "epochs": 20},
    },
    "search_space": {"data.augment": ["digits", "none"]},
}

if __name__ == "__main__":
    sys.exit(sweep_main(sys.argv[1:], defaults=DEFAULTS, prog="supervised_baseline.py"))
