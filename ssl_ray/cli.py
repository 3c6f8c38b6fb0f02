"""``ssl-ray``: the command line. Each command answers ``--help`` without importing torch, ray or mlflow.

    ssl-ray                      the commands, one line each
    ssl-ray --version
    ssl-ray <command> --help     that command's own arguments

Every bad input ends in one line, ``error: <what is wrong>``, and exit code 2, before Ray starts.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence

import ssl_ray
from ssl_ray.cli_base import EXIT_FAILED, EXIT_OK, OneLineParser, bad_input
from ssl_ray.errors import ConfigError


def sweep_main(argv: Optional[Sequence[str]] = None, config_file: Optional[str] = None, prog: Optional[str] = None) -> int:
    """Run a sweep: the recipe ``config_file`` (a ``configs/*.yaml``), changed by the flags in ``argv``."""
    from ssl_ray.sweep.cli import parse, print_config, sweep_from_args

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
        print(f"note: {cfg.resolved_storage() / cfg.name} holds an earlier sweep (kept as it is); this one is "
              f"{got.name!r}", file=sys.stderr)
    return got


def resume_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``ssl-ray resume <sweep dir> [--address ...] [--num-cpus N] [--verbose]``: the sweep's saved settings."""
    from pathlib import Path

    p = OneLineParser(prog=prog, description="Continue a stopped or crashed sweep with the settings it started with: "
                                             "finished trials are kept, the others continue from their latest "
                                             "checkpoints, and missing probes are computed.")
    p.add_argument("sweep_dir", help="the sweep's directory (e.g. results/sweeps/vicreg_digits)")
    p.add_argument("--address", help="run on this Ray cluster instead (e.g. 'auto')")
    p.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (all cores when unset)")
    p.add_argument("--verbose", action="store_true", help="stream worker logs to the console")
    p.add_argument("--trust", action="store_true", help="resume a sweep you did not start (e.g. copied from someone): "
                                                        "resuming unpickles its Ray Tune state, which can run code")
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
        raise ConfigError(f"--resume {d}: not a sweep directory (no {SWEEP_FILE} and Ray Tune experiment state in it; "
                          f"sweeps live in results/sweeps/<name>)")
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
    raise ConfigError(f"the sweep's tracking URI {stored} has a password, which ssl_ray never stores; "
                      f"set MLFLOW_TRACKING_URI to that URI with its password and resume again")


def _run(cfg, verbose: bool, resume_dir: Optional[str], command: str) -> int:
    import time

    from ssl_ray.sweep.summary import print_summary, report_phases, venv_command
    from ssl_ray.sweep.tuner import run_sweep

    from ssl_ray.sweep.signals import SweepInterrupted

    started = time.time()
    try:
        out = run_sweep(cfg, verbose=verbose, resume_dir=resume_dir, command=command, claimed=True)
    except ConfigError as e:  # found before Ray starts (e.g. an older sweep's run in the store)
        return bad_input(e)
    except SweepInterrupted as e:  # SIGTERM or SIGINT: Ray is shut down, the sweep's run marked KILLED
        print(f"stopped by {e}; continue the sweep with: {venv_command('ssl-ray')} resume {getattr(e, 'sweep_dir', '')}",
              file=sys.stderr, flush=True)
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
    what = [f"{errored} trial(s) errored"] * bool(errored) + [f"{incomplete} trial(s) with probes given up"] * bool(incomplete)
    print(f"sweep failed: {', '.join(what)} (exit code {EXIT_FAILED}); see the summary above", file=stream or sys.stdout)
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

    script = prog if prog and prog.startswith("ssl-ray") else f"python {sys.argv[0]}" if sys.argv[0] else "ssl-ray sweep"
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


def export_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``ssl-ray export --run-id ID [--epoch N] --out DIR``: a trial's whole network (backbone and projector) as
    safetensors + JSON (``ssl_ray.models.export``)."""
    p = OneLineParser(prog=prog, description="Write a trained trial's whole network, backbone and projector (safetensors "
                                             "and a JSON of what it is); load it with ssl_ray.models.load_backbone(DIR).")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--run-id", help="the trial's MLflow run id (the sweep summary lists them)")
    who.add_argument("--checkpoint", help="a checkpoint directory (or its state.pt) instead")
    p.add_argument("--epoch", type=int, help="the checkpoint's epoch (the trial's last when unset)")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI ($MLFLOW_TRACKING_URI or sqlite under results/ when unset)")
    try:
        args = p.parse_args(list(argv or []))
        from ssl_ray.checkpoints import checkpoint_dir, scan_checkpoints
        from ssl_ray.models.export import check_checkpoint_arg, check_export_dir, export_backbone

        if args.checkpoint and args.epoch is not None:
            raise ConfigError("--epoch goes with --run-id (--checkpoint names one checkpoint)")
        check_export_dir(args.out)  # before the store or a checkpoint is read
        if args.checkpoint:
            check_checkpoint_arg(args.checkpoint)
        ckpt, run_id = (checkpoint_dir(args.checkpoint), None) if args.checkpoint else (None, args.run_id)
        if ckpt is None:
            from ssl_ray.config import default_mlflow_uri
            from ssl_ray.tracking import TAG_TRIAL_DIR, client, existing_store
            from ssl_ray.uris import check_tracking_uri

            uri = args.mlflow_uri or default_mlflow_uri()
            check_tracking_uri(uri)
            existing_store(uri, f"run {run_id}")
            try:
                tags = client(uri).get_run(run_id).data.tags
            except Exception:  # noqa: BLE001 - MLflow raises its own type for unknown ids
                raise ConfigError(f"run {run_id}: not found in {uri}") from None
            if TAG_TRIAL_DIR not in tags:
                raise ConfigError(f"run {run_id}: not an ssl_ray trial run (no {TAG_TRIAL_DIR} tag)")
            found = dict(scan_checkpoints(tags[TAG_TRIAL_DIR]))
            if not found:
                raise ConfigError(f"run {run_id}: no checkpoints in {tags[TAG_TRIAL_DIR]}")
            epoch = max(found) if args.epoch is None else args.epoch
            if epoch not in found:
                raise ConfigError(f"run {run_id}: no checkpoint of epoch {epoch} (epochs: {', '.join(map(str, sorted(found)))})")
            ckpt = found[epoch]
        out, torchvision = export_backbone(ckpt, args.out, run_id)
    except ConfigError as e:
        return bad_input(e)
    print(f"network of {ckpt} (backbone and projector) written to {out}; load it with "
          f"ssl_ray.models.load_backbone({str(out)!r})\n{torchvision}")
    return EXIT_OK


def _data(argv, prog):
    from ssl_ray.data.cli import data_main

    return data_main(argv, prog=prog)


def _probe(argv, prog):
    from ssl_ray.probes.cli import probe_main

    return probe_main(argv, prog=prog)


def _report(argv, prog):
    from ssl_ray.reports.cli import report_main

    return report_main(argv, prog=prog)


COMMANDS = {
    "sweep": (lambda argv, prog: sweep_main(argv, prog=prog), "run a Ray Tune sweep of SSL trials with probes (--config FILE)"),
    "resume": (resume_main, "continue a stopped or crashed sweep from its directory"),
    "data": (_data, "write and inspect FFCV .beton files, fetch CIFAR"),
    "probe": (_probe, "compute missing probes of a trial; build a target bank (probe bank)"),
    "report": (_report, "write a sweep's figures and tables from MLflow"),
    "export": (export_main, "write a trained trial's network as safetensors (load with ssl_ray.models.load_backbone)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ssl-ray <command> [options]   (ssl-ray <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "  --version  print the version", "", "Sweep recipes: configs/*.yaml (e.g. ssl-ray sweep --config "
              "configs/vicreg_digits.yaml --print-config)."]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK
    if argv[0] in ("--version", "-V"):
        print(f"ssl-ray {ssl_ray.__version__}")
        return EXIT_OK
    if argv[0] not in COMMANDS:
        return bad_input(ConfigError(f"unknown command {argv[0]!r} (known: {', '.join(COMMANDS)}; ssl-ray --help)"))
    return COMMANDS[argv[0]][0](argv[1:], f"ssl-ray {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
