"""Sweep SSL objectives x backbones x widths on the bundled digits dataset.

    python experiments/sweep_objectives.py
    python experiments/sweep_objectives.py --search model.backbone=[res,resnet18] --search model.width=[16,32]

Every objective runs with 2 seeds (``train.seed`` 0 and 1; ``--seeds N`` changes it), so the summary,
``trials.md`` and the figures show mean ± std over seeds.

Each objective runs with its own defaults (the paper's hyperparameters, see ssl_ray/objectives/):
the base config names no objective hyperparameters, so every trial builds its objective with the
constructor's defaults. Override one with e.g. ``--set objective.temperature=0.2`` together with a
single ``--search objective.name=[simclr]``.
"""

import sys
from pathlib import Path

from ssl_ray.cli import sweep_main

DEFAULTS = {
    "name": "objectives_digits",
    "base": {
        "data": {"dataset": "digits", "image_size": 16, "augment": "digits", "views": 2,
                 "superclass_map": str(Path(__file__).with_name("digits_superclasses.txt"))},  # shape groups
        "model": {"backbone": "res", "depth": 4, "width": 32, "projector_dims": [128, 128]},
        "objective": {"name": "vicreg"},
        "optim": {"optimizer": "adamw", "lr": 2e-3, "batch_size": 256, "warmup_epochs": 1},
        "train": {"epochs": 20},
    },
    "search_space": {
        "objective.name": ["vicreg", "simclr", "barlow", "mmcr", "arb"],
        "model.backbone": ["res"],
        "model.width": [32],
        "train.seed": [0, 1],  # two seeds per objective: the report's error bars
    },
}

if __name__ == "__main__":
    sys.exit(sweep_main(sys.argv[1:], defaults=DEFAULTS, prog="sweep_objectives.py"))
