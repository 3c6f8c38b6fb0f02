"""A tiny name -> constructor registry, one per pluggable family (datasets, backbones, objectives, probes).

Usage (timm's ``create_model`` pattern)::

    BACKBONES = Registry("backbone")

    @BACKBONES.register("res")
    def res(depth: int = 4, width: int = 32, **kw) -> nn.Module: ...

    model = BACKBONES.build("res", depth=2)

Looking up an unknown name raises :class:`ssl_ray.errors.ConfigError` that lists the known names,
so a typo in a config fails at validation time, before Ray starts.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, TypeVar

from ssl_ray.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        if not isinstance(name, str):
            raise ConfigError(
                f"{self.kind} name must be a string, got {name!r} (known: {', '.join(sorted(self._entries))})"
            )
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def build(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
