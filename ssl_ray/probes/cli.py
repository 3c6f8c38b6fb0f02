"""``ssl-ray probe``: compute or complete the probes of existing trials, and build target banks.

ssl-ray probe --run-id <mlflow run id>          # probe what is missing, through Ray
ssl-ray probe --trial-dir <trial checkpoints>    # the same, found from the checkpoints
ssl-ray probe --run-id <id> --all                # re-probe every checkpoint (values logged are kept)
ssl-ray probe bank --trial-dir <supervised trial> --out bank.npz
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from ssl_ray.errors import ConfigError


def _parser(prog: Optional[str], bank: bool):
    from ssl_ray.cli_base import OneLineParser

    if bank:
        p = OneLineParser(prog=f"{prog} bank", description="Targets of graded randomness from a supervised trial.")
        p.add_argument("--trial-dir", required=True, help="the supervised trial's checkpoint folder")
        p.add_argument("--out", required=True, help="the .npz file to write")
        return p
    p = OneLineParser(
        prog=prog,
        description="Compute or complete the probes of an existing trial's checkpoints.",
        epilog=f"{prog} bank --trial-dir DIR --out FILE: targets of graded randomness (a target bank) from a "
        f"supervised trial's checkpoints ({prog} bank --help)",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--run-id", help="the trial's MLflow run id")
    who.add_argument("--trial-dir", help="the trial's checkpoint folder (its run id is read from the checkpoints)")
    p.add_argument("--all", action="store_true", help="probe every checkpoint, not only what MLflow lacks")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under results/)")
    p.add_argument("--address", help="an existing Ray cluster (e.g. 'auto')")
    p.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def probe_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    from ssl_ray.cli_base import bad_input
    from ssl_ray.config import default_mlflow_uri

    argv = list(argv or [])
    try:
        if argv[:1] == ["bank"]:
            args = _parser(prog, bank=True).parse_args(argv[1:])
            from ssl_ray.paths import check_new_file
            from ssl_ray.probes.bank import write_target_bank

            check_new_file(args.out, "--out")  # before the classifier's checkpoints are read

            bank = write_target_bank(args.trial_dir, args.out)
            levels = ", ".join(
                f"epoch {e}: r={r:.2f} (acc {a:.3f})" for e, r, a in zip(bank.epochs, bank.randomness, bank.accuracy)
            )
            print(f"{args.out}: {len(bank.epochs)} epochs -- {levels}")
            return 0
        args = _parser(prog, bank=False).parse_args(argv)
        from ssl_ray.probes.backfill import backfill

        uri = args.mlflow_uri or default_mlflow_uri()
        from ssl_ray.uris import check_tracking_uri

        check_tracking_uri(uri)
        out = backfill(
            uri,
            args.run_id,
            args.trial_dir,
            every=args.all,
            num_cpus=args.num_cpus,
            address=args.address,
            progress=not args.quiet,
        )
    except ConfigError as e:
        return bad_input(e)
    print_probe_failures(out["failures"], sys.stdout)
    missing = out.get("missing", [])
    print(
        f"run {out['run_id']}: {out['checkpoints']} checkpoints in {out['trial_dir']}; {out['tasks']} checkpoint x "
        "layer tasks run" + (f"; still missing: {', '.join(missing)}" if missing else "; probes complete")
    )
    return 1 if missing else 0


def print_probe_failures(failures, stream) -> None:
    for f in failures:
        what = "retried" if f.retried else "GAVE UP (backfill with `ssl-ray probe --run-id " + f.run_id + "`)"
        import textwrap

        error = (
            f.error if len(f.error) <= 60 else f.error[:57] + "..."
        )  # in full: the run's ssl_ray.probe.failure.* tag
        print(
            textwrap.fill(
                f"probe task failed: trial {f.trial_id} epoch {f.epoch} layer {f.layer}, attempt {f.attempt}: "
                f"{error} -- {what}",
                width=150,
                subsequent_indent="  ",
            ),
            file=stream,
        )
