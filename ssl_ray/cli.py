"""``ssl-ray``: the command line. Each command answers ``--help`` without importing torch, ray or mlflow.

    ssl-ray                      the commands, one line each
    ssl-ray --version
    ssl-ray <command> --help     that command's own arguments

Every bad input ends in one line, ``error: <what is wrong>``, and exit code 2, before Ray starts. Each command
lives with its package (``ssl_ray.sweep.commands``: sweep and resume; ``ssl_ray.data.cli``, ``ssl_ray.probes.cli``,
``ssl_ray.reports.cli``); this module dispatches to them, and holds ``export``.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence

import ssl_ray
from ssl_ray.cli_base import EXIT_OK, OneLineParser, bad_input
from ssl_ray.errors import ConfigError


def export_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``ssl-ray export --run-id ID [--epoch N] --out DIR``: a trial's whole network (backbone and projector) as
    safetensors + JSON (``ssl_ray.models.export``)."""
    p = OneLineParser(
        prog=prog,
        description="Write a trained trial's whole network, backbone and projector (safetensors "
        "and a JSON of what it is); load it with ssl_ray.models.load_backbone(DIR).",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--run-id", help="the trial's MLflow run id (the sweep summary lists them)")
    who.add_argument("--checkpoint", help="a checkpoint directory (or its state.pt) instead")
    p.add_argument("--epoch", type=int, help="the checkpoint's epoch (the trial's last when unset)")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument(
        "--mlflow-uri", help="MLflow tracking URI ($MLFLOW_TRACKING_URI or sqlite under results/ when unset)"
    )
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
                raise ConfigError(
                    f"run {run_id}: no checkpoint of epoch {epoch} (epochs: {', '.join(map(str, sorted(found)))})"
                )
            ckpt = found[epoch]
        out, torchvision = export_backbone(ckpt, args.out, run_id)
    except ConfigError as e:
        return bad_input(e)
    print(
        f"network of {ckpt} (backbone and projector) written to {out}; load it with "
        f"ssl_ray.models.load_backbone({str(out)!r})\n{torchvision}"
    )
    return EXIT_OK


def _sweep(argv, prog):
    from ssl_ray.sweep.commands import sweep_main

    return sweep_main(argv, prog=prog)


def _resume(argv, prog):
    from ssl_ray.sweep.commands import resume_main

    return resume_main(argv, prog=prog)


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
    "sweep": (_sweep, "run a Ray Tune sweep of SSL trials with probes (--config FILE)"),
    "resume": (_resume, "continue a stopped or crashed sweep from its directory"),
    "data": (_data, "write and inspect FFCV .beton files, fetch CIFAR"),
    "probe": (_probe, "compute missing probes of a trial; build a target bank (probe bank)"),
    "report": (_report, "write a sweep's figures and tables from MLflow"),
    "export": (export_main, "write a trained trial's network as safetensors (load with ssl_ray.models.load_backbone)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ssl-ray <command> [options]   (ssl-ray <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += [
        "",
        "  --version  print the version",
        "",
        "Sweep recipes: configs/*.yaml (e.g. ssl-ray sweep --config configs/vicreg_digits.yaml --print-config).",
    ]
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
