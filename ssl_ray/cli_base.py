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
            if action is None or isinstance(
                action, (argparse._AppendAction, argparse._HelpAction, argparse._CountAction, argparse._VersionAction)
            ):
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
        if (
            action.default not in (None, False, argparse.SUPPRESS, [])
            and "%(default)" not in text
            and "default:" not in text
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


VALUE_LIMIT = 200  # the most characters of one value an error line quotes
LINE_LIMIT = 1000  # and of the whole line
PRE_CUT = 1 << 16  # a longer text keeps this much of its head and tail (escaping is done in Python, char by char)
_PAIRS = {"'": "'", '"': '"', "[": "]", "{": "}"}


def one_line(text: str, limit: int = VALUE_LIMIT) -> str:
    """``text`` as one printable line: control characters escaped, every quoted or bracketed value and every
    unbroken run longer than ``limit`` shortened to its first ``limit`` characters (saying how long it was),
    the whole at most LINE_LIMIT. The one place an error line is cut: a value of megabytes, a path or a
    list, is never echoed whole."""
    cut = None  # where a text of megabytes was cut first (a value across the cut is longer than it shows)
    if len(text) > 2 * PRE_CUT:
        text, cut = text[:PRE_CUT] + text[-PRE_CUT:], PRE_CUT
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    ends, out, i = _span_ends(text), [], 0
    while i < len(text):
        end = ends.get(i)
        if end is None and not text[i].isspace():
            end = i + 1
            while end < len(text) and not text[end].isspace() and end not in ends:
                end += 1
        if end is None:
            out.append(text[i])
            i += 1
            continue
        span = text[i:end]
        over = "over " if cut is not None and i < cut < end else ""
        out.append(
            span if len(span) <= limit else f"{span[:limit]}...{_PAIRS.get(span[0], '')} ({over}{len(span)} characters)"
        )
        i = end
    line = "".join(out)
    return line if len(line) <= LINE_LIMIT else f"{line[: LINE_LIMIT - 200]} ... {line[-190:]}"


def _span_ends(text: str) -> dict:
    """``{start: end}`` of every closed quoted (``'...'``, ``"..."``) or bracketed (``[...]``, ``{...}``) span,
    in one pass; a quote after a letter or digit (``it's``) opens nothing."""
    ends, stack, i = {}, [], 0
    while i < len(text):
        c = text[i]
        if stack and stack[-1][0] in "'\"":  # inside a quoted string
            if c == "\\":
                i += 1
            elif c == stack[-1][0]:
                ends[stack.pop()[1]] = i + 1
        elif c in "'\"" and (i == 0 or not text[i - 1].isalnum()):
            stack.append((c, i))
        elif c in "[{":
            stack.append((_PAIRS[c], i))
        elif stack and c == stack[-1][0]:
            ends[stack.pop()[1]] = i + 1
        i += 1
    return ends


def bad_input(e: ConfigError) -> int:
    from ssl_ray.uris import mask_uri

    print(f"error: {one_line(mask_uri(str(e)))}", file=sys.stderr)
    return EXIT_BAD_INPUT


def guarded(fn: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """Run a command; a ConfigError is one error line and exit 2."""
    try:
        return fn(argv)
    except ConfigError as e:
        return bad_input(e)
