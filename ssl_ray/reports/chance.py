"""Chance: what a probe scores on a target without any information, 1/K for a target of K classes, and the
line that marks it on an accuracy axis.

K is counted from the sweep's dataset (the distinct labels of its train split, as the trials' ``data.*``
parameters name it), never assumed: the class target has the dataset's classes, the superclass target its
superclasses, and the ``random_<r>`` and ``permuted_<p>`` targets relabel the images with the classes' K.
The ``sample`` target (each probe image its own class) has no chance line. A dataset this machine cannot
read (an image folder elsewhere) gives no K, and no line.
"""

from __future__ import annotations

import functools
from typing import Dict, Optional, Tuple

from ssl_ray.errors import ConfigError
from ssl_ray.reports.source import SweepData

CHANCE_COLOR = "0.35"
FAR = 0.35  # the data span less than this share of an axis down to chance: the axis keeps the data's scale
STRIP = 0.1  # ... and grows by this share of it at the bottom, for the note that says where chance is


def _param(value: Optional[str]) -> Optional[str]:
    return None if value in (None, "", "None") else value


@functools.lru_cache(maxsize=8)
def label_counts(dataset: str, data_root: Optional[str], superclass_map: Optional[str]) -> Tuple[int, int]:
    """``(classes, superclasses)``: the distinct labels of the dataset's train split (superclasses 0 without
    a readable superclass map)."""
    from ssl_ray.data.datasets import load_dataset

    if superclass_map is not None:
        try:
            ds = load_dataset(dataset, "train", data_root=data_root, superclass_map=superclass_map)
            supers = len(set(ds.superclasses.tolist())) if ds.superclasses is not None else 0
            return len(set(ds.labels.tolist())), supers
        except (ConfigError, OSError, ValueError):  # the map is not on this machine: the classes still count
            pass
    ds = load_dataset(dataset, "train", data_root=data_root)
    return len(set(ds.labels.tolist())), 0


def chance_levels(data: SweepData) -> Dict[str, int]:
    """K of every target that has one (``{}`` where the trials name no single readable dataset)."""
    names = {
        tuple(_param(t.params.get(f"data.{k}")) for k in ("dataset", "data_root", "superclass_map"))
        for t in data.trials
    }
    if len(names) != 1 or next(iter(names))[0] is None:
        return {}
    try:
        classes, supers = label_counts(*names.pop())
    except (ConfigError, OSError, ValueError):
        return {}
    out = {}
    for target in data.targets:
        if target == "class" or target.startswith(("random_", "permuted_")):
            out[target] = classes
        elif target == "superclass" and supers:
            out[target] = supers
    return {t: k for t, k in out.items() if k > 1}


def chance_line(ax, k: Optional[int]) -> None:
    """A dashed line at 1/k across an accuracy axis, labelled at its right end. Call it once the data are
    drawn: where chance lies far below them, the axis keeps their scale and says where chance is instead."""
    if not k:
        return
    level = 1.0 / k
    lo, hi = ax.get_ylim()
    ax.axhline(level, color=CHANCE_COLOR, lw=1.0, ls=(0, (5, 3)), zorder=1.5, label=f"chance 1/{k}")
    text = dict(transform=ax.get_yaxis_transform(), ha="right", fontsize=7, color=CHANCE_COLOR)
    if level < lo and hi - lo < FAR * (hi - level):
        ax.set_ylim(lo - STRIP * (hi - lo), hi)  # a strip below the data, where the note covers no line
        ax.text(
            0.99,
            0.015,
            f"chance 1/{k} = {level:.2f}, below this axis",
            **{**text, "transform": ax.transAxes},
            va="bottom",
        )
    else:
        ax.text(0.99, level, f"chance 1/{k}", va="bottom", **text)
