"""The face of a sweep: ``ssl-ray sweep`` and every ``experiments/*.py`` launcher.

A sweep is a YAML recipe (``configs/*.yaml``), then the flags. The parser is built from the recipe:
each flag's help shows the value the sweep will use, the description says what it searches, and a flag
whose key the recipe searches is not offered (it would be ignored). ``--print-config`` prints the
resolved sweep and its trials without starting Ray. Nothing here imports torch, ray or mlflow until a
sweep is validated or run, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ssl_ray.cli_base import OneLineParser
from ssl_ray.config import (
    SAMPLERS,
    SweepConfig,
    get_path,
    parse_value,
    set_path,
)
from ssl_ray.errors import ConfigError
from ssl_ray.sweep.recipe import merge_recipes, recipe

# flag -> the base key it sets, its type, what it means
BASE_FLAGS: List[Tuple[str, str, type, str]] = [
    ("--epochs", "train.epochs", int, "training epochs per trial"),
    ("--batch-size", "optim.batch_size", int, "per-worker batch size"),
    ("--objective", "objective.name", str, "objective name (--print-config lists the known ones)"),
    ("--backbone", "model.backbone", str, "backbone name, e.g. res (RES-L-H) (--print-config lists them)"),
    ("--dataset", "data.dataset", str, "dataset name (--print-config lists them)"),
    ("--data-root", "data.data_root", str, "folder holding the dataset's files"),
    ("--beton", "data.beton", str, "training .beton (ssl-ray data write-beton): read with FFCV"),
    ("--augment", "data.augment", str, "view protocol (--print-config lists them)"),
    ("--views", "data.views", int, "views per image"),
    ("--workers", "train.workers", int, "Ray Train workers per trial (DDP over gloo on CPU)"),
    ("--cpus-per-worker", "train.cpus_per_worker", float, "CPUs per training worker"),
    ("--gpus-per-worker", "train.gpus_per_worker", float, "GPUs per training worker (fractions share a GPU)"),
]
# flag -> the sweep key it sets, its type, what it means
SWEEP_FLAGS: List[Tuple[str, str, type, str]] = [
    ("--name", "name", str, "sweep name: the MLflow experiment and the sweep directory"),
    ("--num-samples", "num_samples", int, "Tune num_samples (repeats of the grid)"),
    ("--max-concurrent-trials", "max_concurrent_trials", int, "at most this many trials at once"),
    (
        "--search-alg",
        "search_alg",
        str,
        "how trials are proposed: grid, random, optuna (TPE) or bohb (with "
        "HyperBandForBOHB); optuna/bohb: num_samples = trials",
    ),
    (
        "--scheduler",
        "scheduler",
        str,
        "Ray Tune trial scheduler: fifo (every trial runs to the end), asha (stops "
        "worse trials early) or pbt (population based training)",
    ),
    (
        "--scheduler-metric",
        "scheduler_metric",
        str,
        "what schedulers and searchers read (default online/knn_val; train_loss within one objective setting)",
    ),
    ("--address", "address", str, "connect to an existing Ray cluster (e.g. 'auto' or ray://host:10001)"),
    ("--num-cpus", "num_cpus", int, "CPUs for a local Ray instance (all cores when unset)"),
    (
        "--mlflow-uri",
        "mlflow_uri",
        str,
        "MLflow tracking URI ($MLFLOW_TRACKING_URI or sqlite under results/ when unset)",
    ),
    ("--storage-path", "storage_path", str, "where sweeps keep checkpoints and Tune state (results/sweeps when unset)"),
]


def _effective(raw: Dict[str, Any]) -> Dict[str, Any]:
    """Every key with the value a sweep of ``raw`` would use (schema defaults filled in), as a mapping."""
    try:
        return SweepConfig.from_dict(raw).to_dict()
    except ConfigError:
        return SweepConfig().to_dict()


def offered(raw: Dict[str, Any]) -> List[Tuple[str, str, type, str]]:
    """The base flags that can work with this recipe: not one whose key it searches, and no ``--objective``
    when it searches an objective's own hyperparameters (they belong to that objective)."""
    searched = set(raw.get("search_space") or {})
    by_hparam = any(k.startswith("objective.") and k != "objective.name" for k in searched)
    return [f for f in BASE_FLAGS if f[1] not in searched and not (f[1] == "objective.name" and by_hparam)]


def describe(raw: Dict[str, Any]) -> str:
    space = raw.get("search_space") or {}
    if not space:
        return "Runs one configuration (nothing is searched)."
    try:
        n = len(SweepConfig.from_dict(raw).trial_list())
    except ConfigError:
        n = "?"
    return "Searches " + "; ".join(f"{k} over {v}" for k, v in space.items()) + f" ({n} trials)."


def build_parser(prog: Optional[str], config_file: Optional[str] = None) -> OneLineParser:
    raw = recipe(config_file)
    eff = _effective(raw)
    title = (
        eff.get("description")
        or "Run a Ray Tune sweep of SSL trials, probe every kept checkpoint, track everything in MLflow."
    )
    p = OneLineParser(
        prog=prog,
        description=f"{title}\n\n{describe(raw)}\n\nRecipe: {config_file or '(built-in defaults)'}. "
        f"--print-config shows every key; --set KEY=VALUE changes any of them.",
    )
    p.add_argument(
        "--config",
        default=None,
        help="a YAML sweep recipe (name, base, search_space, ...) applied over " + (config_file or "the defaults"),
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved sweep (every key) and its trials as YAML, and exit without starting Ray",
    )
    for flag, key, typ, text in SWEEP_FLAGS:
        p.add_argument(flag, type=typ, help=_with_default(text, eff.get(key)))
    for flag, key, typ, text in offered(raw):
        p.add_argument(flag, type=typ, help=_with_default(text, get_path(eff["base"], key)))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a base value, e.g. --set optim.lr=1e-3 (repeatable; keys: --print-config)",
    )
    p.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="search a key over a YAML list (grid) or {"
        + "|".join(s for s in SAMPLERS if s != "grid")
        + ": [...]}, e.g. --search model.width=[16,32] (repeatable; replaces that key's default)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="run every configuration with this many seeds (searches train.seed over "
        "0..N-1); summaries and figures show mean ± std over them",
    )
    p.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        default=None,
        help="skip the figures and trial table written at the end (ssl-ray report writes them later)",
    )
    p.add_argument("--verbose", action="store_true", help="stream worker logs to the console")
    p.add_argument(
        "--resume",
        metavar="SWEEP_DIR",
        help="continue a stopped or crashed sweep (e.g. results/sweeps/vicreg_digits) with its saved settings; "
        "only --address, --num-cpus and --verbose may be given with it",
    )
    p.set_defaults(_recipe=raw)
    return p


def _with_default(text: str, value: Any) -> str:
    if value is None and "when unset" in text:
        return text
    shown = "unset" if value is None else value
    return f"{text} (default: {str(shown).replace('%', '%%')})"


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), parse_value(v)


def raw_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The sweep mapping the recipe and the flags make (not yet validated)."""
    raw: Dict[str, Any] = copy.deepcopy(args._recipe)
    if args.config:
        raw = merge_recipes(raw, recipe(args.config))
    raw.setdefault("base", {})
    for flag, key, _, _ in SWEEP_FLAGS:
        if getattr(args, _dest(flag)) is not None:
            raw[key] = getattr(args, _dest(flag))
    if args.report is not None:
        raw["report"] = args.report
    given: Dict[str, str] = {}  # base key -> the flag that sets it: each key once, and never one that is searched
    for flag, key, _, _ in BASE_FLAGS:
        if getattr(args, _dest(flag), None) is not None:
            set_path(raw["base"], key, getattr(args, _dest(flag)))
            given[key] = flag
    for text in args.set:
        k, v = _kv(text)
        if k in given:
            raise ConfigError(
                f"--set {k} is given twice; give it once"
                if given[k].startswith("--set")
                else f"{k} is given twice ({given[k]} and --set {k}); give it once"
            )
        set_path(raw["base"], k, v)
        given[k] = f"--set {k}"
    space = dict(raw.get("search_space") or {})
    searched: set = set()
    for text in args.search:
        k, v = _kv(text)
        set_path({}, k, None)  # checks the key's form
        if k in searched:
            raise ConfigError(f"--search {k} is given twice; give it once, with every value in its list")
        searched.add(k)
        space[k] = v
    if args.seeds is not None:
        from ssl_ray.config.checks import MAX_TRIALS

        if not 1 <= args.seeds <= MAX_TRIALS:
            raise ConfigError(
                f"--seeds must be >= 1, got {args.seeds}"
                if args.seeds < 1
                else f"--seeds must be <= {MAX_TRIALS} (the most trials in one sweep), got {args.seeds}"
            )
        if "train.seed" in searched:
            raise ConfigError("give either --seeds or --search train.seed=[...], not both")
        space["train.seed"] = list(range(args.seeds))  # replaces a recipe's own seeds
    raw["search_space"] = space
    for k, flag in given.items():
        if k in space:
            raise ConfigError(
                f"{k} is searched over {space[k]!r}, so {flag} would be ignored; use --search {k}=[...] to change it"
            )
    return raw


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


RESUME_FLAGS = ("resume", "address", "num_cpus", "verbose", "_recipe")


def check_resume_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """A resumed sweep keeps the settings it started with: no other flag may be given with --resume."""
    for action in parser._actions:
        if action.dest not in RESUME_FLAGS and action.dest != "help" and getattr(args, action.dest) != action.default:
            flag = action.option_strings[0] if action.option_strings else action.dest
            raise ConfigError(
                f"--resume continues a sweep with the settings it started with; {flag} cannot change them "
                f"(start a new sweep with another --name instead)"
            )


def sweep_from_args(args: argparse.Namespace) -> SweepConfig:
    """The validated, normalized sweep: what the tuner, each trial and each worker receive."""
    from ssl_ray.validation import validate_sweep

    return validate_sweep(SweepConfig.from_dict(raw_from_args(args)))


def parse(argv: Sequence[str], prog: Optional[str], config_file: Optional[str]) -> argparse.Namespace:
    parser = build_parser(prog, config_file)
    args = parser.parse_args(list(argv))
    if args.resume:
        check_resume_flags(args, parser)
    return args
