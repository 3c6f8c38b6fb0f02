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
        super().__init__(*args, **kwargs)

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
    print(f"error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT


def guarded(fn: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """Run a command; a ConfigError is one error line and exit 2."""
    try:
        return fn(argv)
    except ConfigError as e:
        return bad_input(e)
