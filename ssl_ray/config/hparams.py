"""Each objective's hyperparameters as a typed, frozen dataclass: their names, defaults, ranges and the
symbols their papers write them with, in one place.

The config is parsed once, at the edge: ``objective: {name: vicreg, lam: 10}`` becomes
``ObjectiveConfig("vicreg", VICRegHparams(lam=10.0))`` when the YAML is read, and that object travels to the
objective's constructor (``ssl_ray.objectives``). The range check is :func:`check_ranges`, called from one
place only: :meth:`Hparams.__post_init__`, so no instance out of range can exist (``dataclasses.replace``
checks again).

Torch-free, like the rest of ``ssl_ray.config``: the results API names trials with the symbols
(``objective.lam`` -> λ) without importing torch. Each objective class in ``ssl_ray.objectives`` points at
its dataclass (``Hparams = VICRegHparams``); a test checks that the two registries name the same objectives.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterable, Mapping, Optional, Tuple, Type

from ssl_ray.errors import ConfigError

HPARAMS: Dict[str, Type["Hparams"]] = {}  # objective name -> its hyperparameters' dataclass


def hp(
    default: float,
    ge: Optional[float] = None,
    gt: Optional[float] = None,
    lt: Optional[float] = None,
    symbol: Optional[str] = None,
) -> Any:
    """A hyperparameter field: its default, its range (value >= ``ge``, > ``gt``, < ``lt``) and its paper's symbol."""
    return dataclasses.field(default=default, metadata={"ge": ge, "gt": gt, "lt": lt, "symbol": symbol})


def objective_hparams(name: str) -> Callable[[type], type]:
    """Class decorator: make ``cls`` a frozen dataclass and register it as objective ``name``'s hyperparameters."""

    def wrap(cls: type) -> type:
        cls = dataclass(frozen=True)(cls)
        cls.objective = name
        HPARAMS[name] = cls
        return cls

    return wrap


def hparams_class(name: str) -> Type["Hparams"]:
    """The hyperparameters' dataclass of objective ``name``; ConfigError naming the known ones otherwise."""
    if not isinstance(name, str):
        raise ConfigError(f"objective name must be a string, got {name!r}"[:300])
    if name not in HPARAMS:
        raise ConfigError(f"unknown objective {name!r} (known: {', '.join(sorted(HPARAMS))})")
    return HPARAMS[name]


def check_ranges(params: "Hparams") -> None:
    """The one range check of an objective's hyperparameters: each a finite number (an integer where the field
    is ``int``) inside the range its field declares. Raises one ConfigError line naming the key and the value."""
    who = type(params).objective
    for f in dataclasses.fields(params):
        v, m = getattr(params, f.name), f.metadata
        key = f"objective.{f.name}"
        integer = f.type in (int, "int")
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or (integer and not isinstance(v, int))
        ):
            raise ConfigError(f"{key} must be a finite {'integer' if integer else 'number'} for {who}, got {v!r}")
        if m.get("ge") is not None and v < m["ge"]:
            raise ConfigError(f"{key} must be >= {m['ge']:g} for {who}, got {v!r}")
        if m.get("gt") is not None and v <= m["gt"]:
            raise ConfigError(f"{key} must be > {m['gt']:g} for {who}, got {v!r}")
        if m.get("lt") is not None and v >= m["lt"]:
            raise ConfigError(f"{key} must be < {m['lt']:g} for {who}, got {v!r}")


class Hparams:
    """Base of every objective's hyperparameters (subclasses are frozen dataclasses, see ``objective_hparams``)."""

    objective: ClassVar[str] = "?"

    def __post_init__(self) -> None:
        # YAML writes 10 for 10.0: a float field holds a float (an int field keeps a whole float's value as an int)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in (float, "float") and isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, f.name, float(v))
            elif f.type in (int, "int") and isinstance(v, float) and math.isfinite(v) and v == int(v):
                object.__setattr__(self, f.name, int(v))
        check_ranges(self)

    @classmethod
    def keys(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def symbols(cls) -> Dict[str, str]:
        """``{key: symbol}`` of the keys whose paper names them (``lam`` -> λ)."""
        return {f.name: f.metadata["symbol"] for f in dataclasses.fields(cls) if f.metadata.get("symbol")}

    @classmethod
    def check_keys(cls, keys: Iterable[str]) -> None:
        unknown = sorted(set(keys) - set(cls.keys()))
        if unknown:
            known = ", ".join(cls.keys()) or "none"
            owners = [name for name, other in HPARAMS.items() if unknown[0] in other.keys()]
            hint = (
                (
                    f"; it is {' and '.join(owners)}'s: a searched objective's own keys are searched too, e.g. "
                    f"--search objective.{unknown[0]}=[...]"
                )
                if owners
                else ""
            )
            raise ConfigError(
                f"unknown hyperparameter objective.{unknown[0]} for {cls.objective!r} (known: {known}){hint}"
            )

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "Hparams":
        """From the YAML's ``objective:`` mapping (its ``name`` removed): unknown keys refused."""
        cls.check_keys(raw)
        return cls(**raw)

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def symbol_of(key: str) -> Optional[str]:
    """The symbol of ``objective.<key>`` in whichever objective names it first (reports label axes with it)."""
    for cls in HPARAMS.values():
        if key in cls.symbols():
            return cls.symbols()[key]
    return None


# ----------------------------------------------------------------------------------------------
# The objectives' hyperparameters. Barlow's λ is written λ_BT: VICReg's and MMCR's ``lam`` are λ too, and a
# mixed sweep must tell them apart.


@objective_hparams("vicreg")
class VICRegHparams(Hparams):
    """VICReg (Bardes, Ponce, LeCun 2022): weights of invariance, variance and covariance; the variance hinge's
    target std and the epsilon under its square root."""

    lam: float = hp(25.0, ge=0.0, symbol="λ")
    mu: float = hp(25.0, ge=0.0, symbol="µ")
    nu: float = hp(1.0, ge=0.0, symbol="ν")
    gamma: float = hp(1.0, gt=0.0, symbol="γ")
    eps: float = hp(1e-4, ge=0.0, symbol="ε")


@objective_hparams("simclr")
class SimCLRHparams(Hparams):
    """SimCLR (Chen et al. 2020): the NT-Xent temperature."""

    temperature: float = hp(0.5, gt=0.0, symbol="τ")


@objective_hparams("barlow")
class BarlowHparams(Hparams):
    """Barlow Twins (Zbontar et al. 2021): the weight of the off-diagonal (redundancy) term."""

    lambd: float = hp(0.0051, ge=0.0, symbol="λ_BT")


@objective_hparams("mmcr")
class MMCRHparams(Hparams):
    """MMCR (Yerxa et al. 2023): the weight of the per-image view nuclear norm; the momentum of the EMA target
    encoder (0: none)."""

    lam: float = hp(0.0, ge=0.0, symbol="λ")
    momentum: float = hp(0.0, ge=0.0, lt=1.0, symbol="m")


@objective_hparams("arb")
class ARBHparams(Hparams):
    """ARB (the nearest orthonormal basis, aligned across views): the number of feature groups."""

    groups: int = hp(1, ge=1)
