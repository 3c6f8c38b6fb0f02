"""Reading configs: YAML files, values given on the command line, dotted keys (``section.key``).

Every YAML text we read, a file or a ``--set``/``--search`` value, goes through :class:`StrictLoader`: a config
is plain data, so an anchor or alias (``&a``/``*a``: a few hundred bytes of them expand into gigabytes), a key
given twice in one mapping (YAML keeps the last silently) and nesting deeper than :data:`MAX_DEPTH` (Python's
recursion limit) are refused, with the line and column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import yaml

from ssl_ray.config.schema import SECTIONS
from ssl_ray.errors import ConfigError

MAX_DEPTH = 16  # a recipe nests 5 deep at most (search_space: key: {loguniform: [...], when: {key: [...]}})

# The dotted keys whose values name files or folders: a recipe's relative ones are read from its folder
# (ssl_ray.sweep.recipe.recipe), and validation makes every one absolute (ssl_ray.validation.normalized).
PATH_KEYS = ("data.data_root", "data.beton", "data.superclass_map", "probe.target_bank", "train.init_checkpoint")


class StrictYAMLError(yaml.MarkedYAMLError):
    """A well-formed YAML text that a config may not be: an alias, a repeated key, too deep."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors and aliases, repeated keys or deep nesting (see the module docstring)."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise StrictYAMLError(
                problem="anchors and aliases (&name, *name) are not allowed in a config; write the value out",
                problem_mark=event.start_mark,
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise StrictYAMLError(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            scalar = isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge"
            key = (
                self.construct_object(key_node, deep=True)
                if scalar
                else key_node.value
                if key_node.id == "scalar"
                else f"a {key_node.id}"
            )
            if not scalar or not isinstance(key, str):
                raise StrictYAMLError(problem=f"a key must be a name, got {key!r}", problem_mark=key_node.start_mark)
            if key in seen:
                raise StrictYAMLError(
                    problem=f"key {key!r} is given twice in one mapping; give it once", problem_mark=key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def strict_load(text: str) -> Any:
    """The data of one YAML document, read by :class:`StrictLoader`."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def get_path(d: Dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        cur = cur[part]
    return cur


def set_path(d: Dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``d['a']['b'] = value`` for ``dotted='a.b'``; the section must exist."""
    parts = dotted.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise ConfigError(f"bad key {dotted!r}: keys look like <section>.<name> with section in {', '.join(SECTIONS)}")
    d.setdefault(parts[0], {})
    if not isinstance(d[parts[0]], dict):
        raise ConfigError(f"section {parts[0]!r} must be a mapping")
    d[parts[0]][parts[1]] = value


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_text(path: str | os.PathLike, what: str, limit: int = 16 << 20) -> str:
    """A small UTF-8 text file's content; ConfigError (one line) for a folder, a huge or a binary file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} does not exist or is not a file")
    if p.stat().st_size > limit:
        raise ConfigError(f"{what} {str(p)!r} is {p.stat().st_size} bytes: too large for a text file (limit {limit})")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {str(p)!r} is not UTF-8 text (byte {e.start}); is it a binary file?") from None
    if "\x00" in text:
        raise ConfigError(f"{what} {str(p)!r} holds NUL bytes: it is a binary file, not text")
    return text


def load_yaml_mapping(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a YAML file that must hold a mapping; ConfigError naming the file and the problem."""
    p = Path(path)
    try:
        raw = strict_load(read_text(p, "config file"))
    except (yaml.YAMLError, ValueError, TypeError) as e:  # a constructor can raise the latter (e.g. !!float x)
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"malformed YAML in {str(p)!r}{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping, got {type(raw).__name__}")
    return raw


def parse_value(text: str) -> Any:
    """Parse a CLI value with YAML rules: ``25`` -> int, ``1e-3`` -> float, ``[16,32]`` -> list."""
    try:
        v = strict_load(text)
    except (yaml.YAMLError, ValueError, TypeError) as e:
        raise ConfigError(f"cannot parse value {text!r}: {getattr(e, 'problem', None) or 'malformed YAML'}") from None
    return _floats(v)


def _floats(v: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` and ``1e30`` as strings; read them as the numbers they are."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    if isinstance(v, list):
        return [_floats(x) for x in v]
    return v


def dump_yaml(d: Dict[str, Any], flow: bool = False) -> str:
    """YAML in the order given (sections as the schema lists them); ``flow``: lists and mappings inline. Never
    an alias (a value shared by two keys is written out twice): what we write, :func:`strict_load` reads back."""
    return yaml.dump(
        d,
        Dumper=_PlainDumper,
        sort_keys=False,
        default_flow_style=None if flow else False,
        width=120,
        allow_unicode=True,
    )


class _PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True
