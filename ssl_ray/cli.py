"""``ssl-ray`` command line, and the shared face of the ``experiments/`` scripts.

Every bad input ends in one line, ``error: <what is wrong>``, and exit code 2, before Ray starts.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any, Dict, List, Optional, Sequence

from ssl_ray.config import SweepConfig, load_yaml_mapping, parse_value, set_path
from ssl_ray.errors import ConfigError

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single ``error: ...`` line (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), parse_value(v)


def _deep_merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "search_space":  # a search space given replaces the default one
            out[k] = copy.deepcopy(v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with sweep settings (name, base, search_space, ...)")
    p.add_argument("--name", help="sweep name: the MLflow experiment and the sweep directory")
    p.add_argument("--epochs", type=int, help="training epochs per trial")
    p.add_argument("--batch-size", type=int, help="per-worker batch size")
    p.add_argument("--objective", help="objective name (vicreg, ...)")
    p.add_argument("--backbone", help="backbone name (res, ...)")
    p.add_argument("--dataset", help="dataset name (digits, cifar10, cifar100, imagefolder, imagenet)")
    p.add_argument("--data-root", help="folder holding the dataset's files")
    p.add_argument("--beton", help="training .beton (ssl-ray data write-beton): read with FFCV")
    p.add_argument("--augment", help="augmentation protocol (simclr, byol, mmcr, digits, none)")
    p.add_argument("--views", type=int, help="views per image")
    p.add_argument("--workers", type=int, help="Ray Train workers per trial (DDP over gloo on CPU)")
    p.add_argument("--cpus-per-worker", type=float, help="CPUs per training worker")
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per training worker (fractions share a GPU)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base value, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--search", action="append", default=[], metavar="KEY=VALUES",
                   help="search a key over a YAML list (grid) or {choice|uniform|loguniform|randint: [...]}, "
                        "e.g. --search model.width=[16,32] (repeatable; replaces that key's default)")
    p.add_argument("--seeds", type=int, help="run every configuration with this many seeds (searches train.seed over "
                                             "0..N-1); summaries and figures show mean ± std over them")
    p.add_argument("--num-samples", type=int, help="Tune num_samples (repeats of the grid)")
    p.add_argument("--max-concurrent-trials", type=int, help="at most this many trials at once")
    p.add_argument("--scheduler", help="Ray Tune trial scheduler: fifo (default: every trial runs to the end) or "
                                       "asha (stops worse trials early on the config's scheduler_metric, default train_loss)")
    p.add_argument("--address", help="connect to an existing Ray cluster (e.g. 'auto' or ray://host:10001)")
    p.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (default: all cores)")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under results/)")
    p.add_argument("--storage-path", help="where sweeps keep checkpoints and Tune state (default: results/sweeps)")
    p.add_argument("--no-report", dest="report", action="store_false", default=None,
                   help="skip the figures and trial table written at the end (ssl-ray report writes them later)")
    p.add_argument("--verbose", action="store_true", help="stream worker logs to the console")
    p.add_argument("--resume", metavar="SWEEP_DIR",
                   help="continue a stopped or crashed sweep (e.g. results/sweeps/vicreg_digits) with its saved settings; "
                        "only --address, --num-cpus and --verbose may be given with it")


def sweep_config_from_args(args: argparse.Namespace, defaults: Optional[Dict[str, Any]] = None) -> SweepConfig:
    raw: Dict[str, Any] = copy.deepcopy(defaults or {})
    if args.config:
        raw = _deep_merge(raw, load_yaml_mapping(args.config))
    raw.setdefault("base", {})
    for key, attr in (("name", "name"), ("num_samples", "num_samples"), ("max_concurrent_trials", "max_concurrent_trials"),
                      ("address", "address"), ("num_cpus", "num_cpus"), ("mlflow_uri", "mlflow_uri"),
                      ("storage_path", "storage_path"), ("scheduler", "scheduler"), ("report", "report")):
        if getattr(args, attr) is not None:
            raw[key] = getattr(args, attr)
    flag_keys = {"dataset": "data.dataset", "data_root": "data.data_root", "beton": "data.beton",
                 "augment": "data.augment", "views": "data.views",
                 "epochs": "train.epochs", "batch_size": "optim.batch_size", "objective": "objective.name",
                 "backbone": "model.backbone", "workers": "train.workers", "cpus_per_worker": "train.cpus_per_worker",
                 "gpus_per_worker": "train.gpus_per_worker"}
    for attr, key in flag_keys.items():
        if getattr(args, attr) is not None:
            set_path(raw["base"], key, getattr(args, attr))
    for text in args.set:
        k, v = _kv(text)
        set_path(raw["base"], k, v)
    if args.search:
        raw["search_space"] = dict(raw.get("search_space") or {})
        for text in args.search:
            k, v = _kv(text)
            set_path({}, k, None)  # checks the key's form
            raw["search_space"][k] = v
    if args.seeds is not None:
        if isinstance(args.seeds, bool) or args.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
        raw["search_space"] = dict(raw.get("search_space") or {})
        if "train.seed" in raw["search_space"] and args.search and any(t.split("=", 1)[0].strip() == "train.seed" for t in args.search):
            raise ConfigError("give either --seeds or --search train.seed=[...], not both")
        raw["search_space"]["train.seed"] = list(range(args.seeds))
    searched = raw.get("search_space") or {}
    for text in args.set:
        k = text.split("=", 1)[0].strip()
        if k in searched:
            raise ConfigError(f"{k} is searched over {searched[k]!r}, so --set {k} would be ignored; "
                              f"use --search {k}=[...] to change it")
    return SweepConfig.from_dict(raw).validate()


RESUME_FLAGS = ("resume", "address", "num_cpus", "verbose")


def resume_config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SweepConfig:
    """The saved settings of the sweep in ``args.resume``; only where it runs may change."""
    from pathlib import Path

    from ssl_ray.config import SWEEP_FILE

    d = Path(args.resume).expanduser().resolve()
    if not d.is_dir():
        raise ConfigError(f"--resume {args.resume}: no such directory")
    if not (d / SWEEP_FILE).is_file() or not any(d.glob("experiment_state-*.json")):
        raise ConfigError(f"--resume {d}: not a sweep directory (no {SWEEP_FILE} and Ray Tune experiment state in it; "
                          f"sweeps live in results/sweeps/<name>)")
    for action in parser._actions:
        if action.dest not in RESUME_FLAGS and action.dest != "help" and getattr(args, action.dest) != action.default:
            flag = action.option_strings[0] if action.option_strings else action.dest
            raise ConfigError(f"--resume continues a sweep with the settings it started with ({d / SWEEP_FILE}); "
                              f"{flag} cannot change them (start a new sweep with another --name instead)")
    raw = load_yaml_mapping(d / SWEEP_FILE)
    for key in ("address", "num_cpus"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    return SweepConfig.from_dict(raw).validate()


def print_summary(out: dict, cfg: SweepConfig, stream=None, data=None) -> None:
    """Per configuration (mean ± std over seeds), layers and the best configuration chosen on validation
    data (``ssl_ray.reports.selection``, as in the report), each trial's run id, skipped targets."""
    stream = stream or sys.stdout
    print("\n=== ssl_ray sweep summary: " + cfg.name + " ===", file=stream)
    if data is None:
        print("(no probe results to summarize)", file=stream)
    else:
        from ssl_ray.reports.selection import select
        from ssl_ray.reports.tables import config_table, format_table, headline

        sel = select(data)
        print(format_table(config_table(data, sel), drop=("objective.name", "model.backbone", "model.depth", "objective.mu",
                                                           "objective.nu")), file=stream)
        n = data.seeds_per_config()
        print(f"\n{'mean ± std over ' + str(n) + ' seeds per configuration' if n > 1 else 'one seed per configuration (no error bars; --seeds N)'}",
              file=stream)
        line = headline(data, sel)
        if line:
            print(line, file=stream)
        print("\ntrials (MLflow run ids):", file=stream)
        for t in data.trials:
            print(f"  {t.trial_id}  {t.label}  {t.status}  run {t.run_id}", file=stream)
    from ssl_ray.probes.fanout import TAG_SKIPPED
    from ssl_ray.tracking import TAG_STOP_REASON, TAG_TRIAL_ID, child_runs, client

    for run in child_runs(client(out["mlflow_uri"]), out["parent_run_id"]):
        tags = run.data.tags
        tid = tags.get(TAG_TRIAL_ID, run.info.run_id)
        if tags.get(TAG_STOP_REASON) and tags.get("ssl_ray.status") != "finished":
            print(f"trial {tid} {tags.get('ssl_ray.status')}: {tags[TAG_STOP_REASON]}", file=stream)
        for k, why in sorted(tags.items()):
            if k.startswith(TAG_SKIPPED + "."):
                print(f"trial {tid}: target {k[len(TAG_SKIPPED) + 1:]} not scored: {why}", file=stream)
    print_probe_failures(out.get("probe_failures", []), stream)
    n_err = len(out["results"].errors) if out.get("results") is not None else 0
    if n_err:
        print(f"{n_err} trial(s) errored; see {out['sweep_dir']}", file=stream)
    print(f"\nsweep directory: {out['sweep_dir']}", file=stream)
    uri = out["mlflow_uri"]
    if uri.startswith(("http://", "https://")):
        print(f"browse in MLflow: {uri}  (experiment '{cfg.name}')", file=stream)
    else:
        print("browse in MLflow:", file=stream)
        print(f"  .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000", file=stream)
        print("  then open http://127.0.0.1:5000", file=stream)


def print_probe_failures(failures, stream) -> None:
    for f in failures:
        what = "retried" if f.retried else "GAVE UP (backfill with `ssl-ray probe --run-id " + f.run_id + "`)"
        print(f"probe task failed: trial {f.trial_id} epoch {f.epoch} layer {f.layer}, attempt {f.attempt}: {f.error} -- {what}",
              file=stream)


def sweep_main(argv: Optional[Sequence[str]] = None, defaults: Optional[Dict[str, Any]] = None, prog: Optional[str] = None) -> int:
    parser = OneLineParser(prog=prog, description="Run a Ray Tune sweep of SSL trials with probes, tracked in MLflow.")
    add_sweep_args(parser)
    try:
        args = parser.parse_args(argv)
        cfg = resume_config_from_args(args, parser) if args.resume else sweep_config_from_args(args, defaults)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from ssl_ray.sweep.tuner import run_sweep

    out = run_sweep(cfg, verbose=args.verbose, resume_dir=args.resume, command=_command_line(prog, argv))
    data = _sweep_data(out)
    print_summary(out, cfg, data=data)
    if cfg.report:
        sweep_report(out["sweep_dir"], data=data)
    return 0 if not out["results"].errors else 1


def _sweep_data(out: dict):
    """The finished sweep read back from MLflow once, for the summary and the report; None without probes."""
    from ssl_ray.reports.source import load_sweep

    try:
        return load_sweep(out["sweep_dir"], out["mlflow_uri"])
    except ConfigError as e:
        print(f"note: {e}", file=sys.stderr)
        return None


def _command_line(prog: Optional[str], argv: Optional[Sequence[str]]) -> str:
    import shlex

    script = prog if prog and prog.startswith("ssl-ray") else f"python {sys.argv[0]}" if sys.argv[0] else "python -m ssl_ray.cli sweep"
    return " ".join([script, shlex.join(list(argv if argv is not None else sys.argv[1:]))]).strip()


def sweep_report(sweep_dir: str, stream=None, data=None) -> None:
    """The sweep's figures and table; a failure here is reported and never fails the finished sweep."""
    from ssl_ray.reports.cli import print_report
    from ssl_ray.reports.report import write_report

    stream = stream or sys.stdout
    try:
        print_report(write_report(sweep_dir, data=data), stream)
    except Exception as e:  # noqa: BLE001 - the sweep's results are in MLflow either way
        print(f"report not written ({type(e).__name__}: {e}); rerun with: ssl-ray report {sweep_dir}", file=stream)


def resume_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``ssl-ray resume <sweep dir> [--address ...] [--num-cpus N] [--verbose]``."""
    argv = list(argv or [])
    if argv and not argv[0].startswith("-"):
        argv = ["--resume", argv[0], *argv[1:]]
    elif not any(a == "--resume" or a.startswith("--resume=") for a in argv) and not any(a in ("-h", "--help") for a in argv):
        print(f"error: {prog or 'ssl-ray resume'}: give the sweep directory to resume (e.g. results/sweeps/vicreg_digits)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return sweep_main(argv, prog=prog)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from ssl_ray.data.cli import data_main
    from ssl_ray.probes.cli import probe_main
    from ssl_ray.reports.cli import report_main

    commands = {"sweep": sweep_main, "resume": resume_main, "data": data_main, "probe": probe_main, "report": report_main}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        known = ", ".join(commands)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r} (known: {known})", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"usage: ssl-ray {{{known}}} [options]   (ssl-ray <command> --help for its options)")
        return 0
    return commands[argv[0]](argv[1:], prog=f"ssl-ray {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
