"""The names of the targets a representation is probed against, and what each name means: ``sample``,
``class``, ``superclass``, ``random_<r>`` (the study's graded randomness, from a target bank) and
``permuted_<r>`` (a fraction r of the labels permuted: the chance control). How their labels are made is
``ssl_ray.probes.targets``.

Plain Python: the summaries, the reports and ``results.load`` read these names without importing torch.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

from ssl_ray.errors import ConfigError

FIXED_TARGETS = ("sample", "class", "superclass")
GRADED = ("random", "permuted")  # random_<r>: from a target bank; permuted_<r>: labels permuted
DEFAULT_RANDOMNESS = (0.0, 0.25, 0.5, 0.75, 1.0)
CHANCE_CONTROL = "permuted_1.0"  # every label permuted: no representation predicts it beyond chance


def parse_target(name: str) -> Tuple[str, float]:
    """``'class'`` -> ('class', 0.0); ``'random_0.5'`` -> ('random', 0.5); ``'permuted_1.0'`` ->
    ('permuted', 1.0). ConfigError otherwise."""
    if name in FIXED_TARGETS:
        return name, 0.0
    for kind in GRADED:
        if isinstance(name, str) and name.startswith(kind + "_"):
            try:
                r = float(name[len(kind) + 1 :])
            except ValueError:
                r = -1.0
            if 0.0 <= r <= 1.0:
                return kind, r
    raise ConfigError(
        f"unknown probe target {name!r} (expected sample, class, superclass, random_<r> or "
        f"permuted_<r> with r in [0, 1])"
    )


def parse_targets(names: Sequence[str]) -> List[Tuple[str, float]]:
    """Every target of ``probe.targets`` parsed; ConfigError when two name the same one (``random_0.5`` and
    ``random_0.50``): it would be probed twice under two names."""
    seen: dict = {}
    for name in names:
        t = parse_target(name)
        if t in seen:
            raise ConfigError(f"probe.targets: {name!r} is the same target as {seen[t]!r}; give it once")
        seen[t] = name
    return list(seen)


def default_targets(has_superclasses: bool) -> List[str]:
    """sample, class, superclass (where the dataset has it), the study's random_<r> for r in 0, 0.25,
    0.5, 0.75, 1, and the chance control permuted_1.0."""
    return (
        ["sample", "class"]
        + (["superclass"] if has_superclasses else [])
        + [f"random_{r}" for r in DEFAULT_RANDOMNESS]
        + [CHANCE_CONTROL]
    )


def most_random(targets: Iterable[str]) -> Optional[str]:
    """The ``random_<r>`` target with the largest r among ``targets`` (None without one): the study's most
    random target, which the summaries read beside the class accuracy and the chance control."""
    randoms = [(parse_target(t)[1], t) for t in targets if t.startswith("random_")]
    return max(randoms)[1] if randoms else None
