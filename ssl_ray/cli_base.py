"""What every ``ssl-ray`` command shares: the parser whose errors are one line, and the exit codes.

Every bad input ends in one line, ``error: <what is wrong>``, and exit code 2, before Ray starts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ssl_ray.errors import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and something in it failed (an errored trial, probes still missing)
EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single ``error: ...`` line (exit 2); defaults are shown in help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # --epoch is not --epochs: a typo is an error, not a guess
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._refuse_repeats(list(sys.argv[1:] if args is None else args))
        return super().parse_known_args(args, namespace)

    def _refuse_repeats(self, argv: list) -> None:
        """A flag that takes one value, given twice, is an error (argparse would keep the last silently)."""
        seen = set()
        for token in argv:
            if token == "--":
                break
            action = self._option_string_actions.get(token.split("=", 1)[0]) if token.startswith("-") else None
            if action is None or isinstance(action, (argparse._AppendAction, argparse._HelpAction,
                                                     argparse._CountAction, argparse._VersionAction)):
                continue
            if action.dest in seen:
                raise ConfigError(f"{self.prog}: {token.split('=', 1)[0]} is given twice; give it once")
            seen.add(action.dest)

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks; a flag with a real default says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS, []) and "%(default)" not in text \
                and "default:" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def bad_input(e: ConfigError) -> int:
    from ssl_ray.uris import mask_uri

    print(f"error: {mask_uri(str(e))}", file=sys.stderr)
    return EXIT_BAD_INPUT


def guarded(fn: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """Run a command; a ConfigError is one error line and exit 2."""
    try:
        return fn(argv)
    except ConfigError as e:
        return bad_input(e)
