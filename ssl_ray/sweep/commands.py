"""``ssl-ray sweep`` and ``ssl-ray resume`` (and every ``experiments/*.py`` launcher, through :func:`sweep_main`):
run a sweep from its recipe and flags (``ssl_ray.sweep.cli`` builds them), or continue one from its directory,
then print its summary, write its report and answer with the exit code. ``ssl_ray.cli`` only dispatches here.

Nothing here imports torch, ray or mlflow until a sweep is validated or run, so ``--help`` answers at once.
Every bad input ends in one line, ``error: <what is wrong>``, and exit code 2, before Ray starts.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from ssl_ray.cli_base import EXIT_FAILED, EXIT_OK, OneLineParser, bad_input
from ssl_ray.errors import ConfigError


def sweep_main(
    argv: Optional[Sequence[str]] = None, config_file: Optional[str] = None, prog: Optional[str] = None
) -> int:
    """Run a sweep: the recipe ``config_file`` (a ``configs/*.yaml``), changed by the flags in ``argv``."""
    from ssl_ray.sweep.cli import parse, sweep_from_args
    from ssl_ray.sweep.print_config import print_config

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv, prog, config_file)
        if args.resume:
            from pathlib import Path

            cfg = resume_config(Path(args.resume), args.address, args.num_cpus)
        else:
            cfg = sweep_from_args(args)
    except ConfigError as e:
        return bad_input(e)
    if args.print_config:
        print_config(cfg, sys.stdout)
        return EXIT_OK
    if not args.resume:
        try:
            cfg = claim_sweep(cfg, explicit=args.name is not None)
        except ConfigError as e:
            return bad_input(e)
    return _run(cfg, args.verbose, args.resume, _command_line(prog, argv))


def claim_sweep(cfg, explicit: bool):
    """The sweep's own directory, before Ray starts: a name given with --name that another sweep holds is
    refused; the recipe's name moves on to the first free ``<name>-N`` (and says so)."""
    from ssl_ray.sweep.claim import claim, claim_free

    if explicit:
        claim(cfg)
        return cfg
    got = claim_free(cfg)
    if got.name != cfg.name:
        print(
            f"note: {cfg.resolved_storage() / cfg.name} holds an earlier sweep (kept as it is); this one is "
            f"{got.name!r}",
            file=sys.stderr,
        )
    return got


def resume_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``ssl-ray resume <sweep dir> [--address ...] [--num-cpus N] [--verbose]``: the sweep's saved settings."""
    from pathlib import Path

    p = OneLineParser(
        prog=prog,
        description="Continue a stopped or crashed sweep with the settings it started with: "
        "finished trials are kept, the others continue from their latest "
        "checkpoints, and missing probes are computed.",
    )
    p.add_argument("sweep_dir", help="the sweep's directory (e.g. results/sweeps/vicreg_digits)")
    p.add_argument("--address", help="run on this Ray cluster instead (e.g. 'auto')")
    p.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (all cores when unset)")
    p.add_argument("--verbose", action="store_true", help="stream worker logs to the console")
    p.add_argument(
        "--trust",
        action="store_true",
        help="resume a sweep you did not start (e.g. copied from someone): "
        "resuming unpickles its Ray Tune state, which can run code",
    )
    try:
        args = p.parse_args(list(argv or []))
        if args.trust:
            from ssl_ray.sweep.claim import trust

            resume_config(Path(args.sweep_dir), args.address, args.num_cpus, trusted=False)
            trust(Path(args.sweep_dir).expanduser().resolve())
        cfg = resume_config(Path(args.sweep_dir), args.address, args.num_cpus)
    except ConfigError as e:
        return bad_input(e)
    return _run(cfg, args.verbose, args.sweep_dir, _command_line(prog, list(argv or [])))


def resume_config(d, address: Optional[str], num_cpus: Optional[int], trusted: bool = True):
    """The saved settings of the sweep in ``d``; only where it runs may change. Only a sweep this user
    started is resumed (``sweep.claim.check_trusted``: resuming unpickles Ray Tune's state)."""
    from ssl_ray.config import SWEEP_FILE, SweepConfig, load_yaml_mapping
    from ssl_ray.validation import validate_sweep

    d = d.expanduser().resolve()
    if not d.is_dir():
        raise ConfigError(f"--resume {d}: no such directory")
    if not (d / SWEEP_FILE).is_file() or not any(d.glob("experiment_state-*.json")):
        raise ConfigError(
            f"--resume {d}: not a sweep directory (no {SWEEP_FILE} and Ray Tune experiment state in it; "
            f"sweeps live in results/sweeps/<name>)"
        )
    if trusted:
        from ssl_ray.sweep.claim import check_trusted

        check_trusted(d)
    raw = load_yaml_mapping(d / SWEEP_FILE)
    raw.update({k: v for k, v in (("address", address), ("num_cpus", num_cpus)) if v is not None})
    raw["mlflow_uri"] = _unmasked(raw.get("mlflow_uri"))
    return validate_sweep(SweepConfig.from_dict(raw))


def _unmasked(stored):
    """The sweep file keeps a tracking URI's password as ``***``; the real URI comes from the environment."""
    import os

    from ssl_ray.uris import mask_uri

    if not isinstance(stored, str) or "***@" not in stored:
        return stored
    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    if env and mask_uri(env) == stored:
        return env
    raise ConfigError(
        f"the sweep's tracking URI {stored} has a password, which ssl_ray never stores; "
        f"set MLFLOW_TRACKING_URI to that URI with its password and resume again"
    )


def _run(cfg, verbose: bool, resume_dir: Optional[str], command: str) -> int:
    import time

    from ssl_ray.sweep.signals import SweepInterrupted
    from ssl_ray.sweep.summary import print_summary, report_phases, venv_command
    from ssl_ray.sweep.tuner import run_sweep

    started = time.time()
    try:
        out = run_sweep(cfg, verbose=verbose, resume_dir=resume_dir, command=command, claimed=True)
    except ConfigError as e:  # found before Ray starts (e.g. an older sweep's run in the store)
        return bad_input(e)
    except SweepInterrupted as e:  # SIGTERM or SIGINT: Ray is shut down, the sweep's run marked KILLED
        print(
            f"stopped by {e}; continue the sweep with: {venv_command('ssl-ray')} resume {getattr(e, 'sweep_dir', '')}",
            file=sys.stderr,
            flush=True,
        )
        return e.exit_code
    out["started"] = started
    data = _sweep_data(out)
    print_summary(out, cfg, data=data)
    if cfg.report:
        sweep_report(out["sweep_dir"], data=data)
    report_phases(out, time.time())
    return sweep_exit_code(out)


def sweep_exit_code(out: dict, stream=None) -> int:
    """EXIT_FAILED, said in one line, when a trial errored or a trial's probes gave up; else EXIT_OK."""
    errored, incomplete = len(out["results"].errors), len(out.get("incomplete", []))
    if not errored and not incomplete:
        return EXIT_OK
    what = [f"{errored} trial(s) errored"] * bool(errored) + [f"{incomplete} trial(s) with probes given up"] * bool(
        incomplete
    )
    print(
        f"sweep failed: {', '.join(what)} (exit code {EXIT_FAILED}); see the summary above", file=stream or sys.stdout
    )
    return EXIT_FAILED


def _sweep_data(out: dict):
    """The finished sweep read back from MLflow once, for the summary and the report; None without probes."""
    from ssl_ray.reports.source import load_sweep

    try:
        return load_sweep(out["sweep_dir"], out["mlflow_uri"])
    except ConfigError as e:
        print(f"note: {e}", file=sys.stderr)
        return None


def _command_line(prog: Optional[str], argv: Sequence[str]) -> str:
    import shlex

    script = (
        prog if prog and prog.startswith("ssl-ray") else f"python {sys.argv[0]}" if sys.argv[0] else "ssl-ray sweep"
    )
    from ssl_ray.uris import mask_uri

    return mask_uri(" ".join([script, shlex.join(list(argv))]).strip())


def sweep_report(sweep_dir: str, stream=None, data=None) -> None:
    """The sweep's figures and table; a failure here is reported and never fails the finished sweep."""
    from ssl_ray.reports.cli import print_report
    from ssl_ray.reports.report import write_report

    stream = stream or sys.stdout
    try:
        print_report(write_report(sweep_dir, data=data), stream)
    except Exception as e:  # noqa: BLE001 - the sweep's results are in MLflow either way
        print(f"report not written ({type(e).__name__}: {e}); rerun with: ssl-ray report {sweep_dir}", file=stream)
