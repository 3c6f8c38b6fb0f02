"""``ssl-ray report``: figures and the trial table of a sweep, from MLflow.

ssl-ray report results/sweeps/vicreg_digits          # a sweep directory (its saved tracking URI)
ssl-ray report vicreg_digits                         # an experiment name (default store or --mlflow-uri)
ssl-ray report vicreg_digits --mlflow-uri http://127.0.0.1:5000 --out figs/ --layer block4
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from ssl_ray.errors import ConfigError


def report_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    from ssl_ray.cli_base import OneLineParser, bad_input

    p = OneLineParser(
        prog=prog,
        description="Write a sweep's figures and trial table (results/<experiment>/) "
        "and log them to its parent MLflow run.",
    )
    p.add_argument("sweep", help="a sweep directory (results/sweeps/<name>) or an MLflow experiment name")
    p.add_argument(
        "--mlflow-uri",
        help="MLflow tracking URI (default: the sweep's own, or $MLFLOW_TRACKING_URI, or sqlite under results/)",
    )
    p.add_argument(
        "--out", help="folder for the files (default: <results>/<experiment>/, beside the sweep's <results>/sweeps/)"
    )
    p.add_argument("--layer", help="the layer of the one-layer figures (default: the best class-accuracy layer)")
    p.add_argument("--no-log", action="store_true", help="do not log the files to the sweep's MLflow parent run")
    try:
        args = p.parse_args(list(argv or []))
        if args.out:
            from ssl_ray.paths import check_writable_dir

            check_writable_dir(args.out, "--out")
        from ssl_ray.reports.report import write_report

        rep = write_report(args.sweep, args.mlflow_uri, args.out, args.layer, log=not args.no_log)
    except ConfigError as e:
        return bad_input(e)
    print_report(rep, sys.stdout)
    return 0


def print_report(rep, stream) -> None:
    print(
        f"report: {len(rep.files)} files in {rep.out_dir} (layer {rep.layer}, best trial {rep.best_trial})", file=stream
    )
    for note in rep.notes:
        print(f"  note: {note}", file=stream)
    if rep.logged_to:
        print(f"  logged to MLflow run {rep.logged_to} under report/", file=stream)
