"""Errors that the command-line edge turns into a one-line message and exit code 2."""


class ConfigError(ValueError):
    """Bad user input: an unknown name, an out-of-range value, a malformed file.

    Raised during validation, before Ray starts. ``ssl_ray.cli`` prints ``error: <message>``
    on one line and exits with code 2.
    """
