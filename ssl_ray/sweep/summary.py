"""The summary a finished sweep prints: per configuration, the chosen layer and configuration, each
trial's run id, what stopped or was skipped, and where to browse."""

from __future__ import annotations

import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Optional

from ssl_ray.config import SweepConfig
from ssl_ray.probes.cli import print_probe_failures
from ssl_ray.probes.target_names import CHANCE_CONTROL

WIDTH = 150  # the console summary's lines stay within this many columns
TARGET_SHORT = {"class": "", "superclass": "super ", CHANCE_CONTROL: "chance "}
METRIC_SHORT = {"linear_val": "val", "ncc_val": "val", "linear_test": "lin", "ncc_test": "ncc", "cdnv": "cdnv"}


def console_table(data, sel) -> str:
    """The per-configuration table, narrow: no hyperparameter columns (the configuration's name holds what
    varies) and short headers (``val``, ``lin``, ``ncc``, ``super lin``, ``rand1.0 lin``, ``chance lin``)."""
    from ssl_ray.reports.tables import config_table, format_table, param_keys

    df = config_table(data, sel)
    df = df.drop(columns=[c for c in param_keys(data) if c in df.columns])

    def short(col: str) -> str:
        base, std = (col[:-4], "_std") if col.endswith("_std") else (col, "")
        if base in ("final_loss", "best_layer"):
            return {"final_loss": "loss", "best_layer": "layer"}[base] + std
        for metric, m in METRIC_SHORT.items():
            if base.endswith("_" + metric):
                target = base[: -len(metric) - 1]
                t = TARGET_SHORT.get(target, target.replace("random_", "rand") + " ")
                return f"{t}{m}{std}"
        return col

    return format_table(df.rename(columns=short))


def print_summary(out: dict, cfg: SweepConfig, stream=None, data=None) -> None:
    """Per configuration (mean ± std over seeds), layers and the best configuration chosen on validation
    data (``ssl_ray.reports.selection``, as in the report), each trial's run id, skipped targets."""
    stream = stream or sys.stdout
    print("\n=== ssl_ray sweep summary: " + cfg.name + " ===", file=stream)
    if data is None:
        print("(no probe results to summarize)", file=stream)
    else:
        from ssl_ray.reports.label_free import label_free_line
        from ssl_ray.reports.selection import select
        from ssl_ray.reports.tables import headline

        sel = select(data)
        print(console_table(data, sel), file=stream)
        n = data.seeds_per_config()
        print(
            "accuracies on the test split at each configuration's best layer, chosen on 'val'; "
            f"chance: {CHANCE_CONTROL} labels",
            file=stream,
        )
        print(
            "\n"
            + (
                f"mean ± std over {n} seeds per configuration"
                if n > 1
                else "one seed per configuration (no error bars; --seeds N)"
            ),
            file=stream,
        )
        line = headline(data, sel)
        if line:
            print(textwrap.fill(line, width=WIDTH, subsequent_indent="  "), file=stream)
        print(textwrap.fill(label_free_line(data, sel), width=WIDTH, subsequent_indent="  "), file=stream)
    from ssl_ray.tracking import (
        TAG_PROBE_SKIPPED,
        TAG_STATUS,
        TAG_STOP_REASON,
        TAG_TRIAL_ID,
        TrialStatus,
        child_runs,
        client,
    )

    runs = child_runs(client(out["mlflow_uri"]), out["parent_run_id"])
    if data is not None:
        took = {
            r.info.run_id: elapsed(((r.info.end_time or time.time() * 1000) - r.info.start_time) / 1000) for r in runs
        }
        print("\ntrials (MLflow run ids, time from start to end):", file=stream)
        for t in data.trials:
            print(f"  {t.trial_id}  {t.label}  {t.status}  run {t.run_id}  {took.get(t.run_id, '')}", file=stream)
    for run in runs:
        tags = run.data.tags
        tid = tags.get(TAG_TRIAL_ID, run.info.run_id)
        if tags.get(TAG_STOP_REASON) and tags.get(TAG_STATUS) != TrialStatus.FINISHED.value:
            print(
                textwrap.fill(
                    f"trial {tid} {tags.get(TAG_STATUS)}: {tags[TAG_STOP_REASON]}", width=WIDTH, subsequent_indent="  "
                ),
                file=stream,
            )
        for k, why in sorted(tags.items()):
            if k.startswith(TAG_PROBE_SKIPPED + "."):
                print(
                    textwrap.fill(
                        f"trial {tid}: target {k[len(TAG_PROBE_SKIPPED) + 1 :]} not scored: {why}",
                        width=WIDTH,
                        subsequent_indent="  ",
                    ),
                    file=stream,
                )
    print_probe_failures(out.get("probe_failures", []), stream)
    n_err = len(out["results"].errors) if out.get("results") is not None else 0
    if n_err:
        print(f"{n_err} trial(s) errored; see {out['sweep_dir']}", file=stream)
    print(f"\nsweep directory: {out['sweep_dir']}", file=stream)
    from ssl_ray.uris import mask_uri

    uri = mask_uri(out["mlflow_uri"])
    if uri.startswith(("http://", "https://")):
        print(f"browse in MLflow: {uri}  (experiment '{cfg.name}')", file=stream)
    else:
        print("browse in MLflow:", file=stream)
        print(f"  {venv_command('mlflow')} ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000", file=stream)
        print("  then open http://127.0.0.1:5000", file=stream)
    best = sel.best_trial if data is not None else None
    print_next(out["sweep_dir"], out["mlflow_uri"], data.trial(best).run_id if best else None, stream)


def elapsed(seconds: float) -> str:
    """``42 s``, ``6 min 20 s``, ``1 h 02 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def venv_command(name: str) -> str:
    """The absolute path of this environment's ``name`` executable (``.venv/bin/ssl-ray``), so that a printed
    command works pasted in any directory and shell; ``python -m ssl_ray.cli`` where there is no such script."""
    bindir = Path(sys.executable).absolute().parent  # not resolved: a venv's python is a link to the system's
    exe = bindir / name
    if name == "ssl-ray" and not exe.is_file():
        return f"{shlex.quote(str(bindir / Path(sys.executable).name))} -m ssl_ray.cli"
    return shlex.quote(str(exe))


def print_next(sweep_dir: str, uri: str, best_run: Optional[str], stream) -> None:
    """What to do next, each command with absolute paths (the environment's executables, the sweep, the store):
    they work pasted from any directory. The export and backfill name the best trial's run."""
    from ssl_ray.uris import mask_uri

    d, store = shlex.quote(str(Path(sweep_dir).absolute())), shlex.quote(mask_uri(uri))
    py, ssl = venv_command("python"), venv_command("ssl-ray")
    run = best_run or "<run id>"
    code = "import sys; from ssl_ray import results; print(results.load(sys.argv[1]).trials)"  # the path apart
    print("next:", file=stream)
    for what, cmd in (
        ("results in Python", f"{py} -c {shlex.quote(code)} {d}"),
        ("redraw the report", f"{ssl} report {d}"),
        ("continue after a failure", f"{ssl} resume {d}"),
        ("fill missing probes of the best trial", f"{ssl} probe --run-id {run} --mlflow-uri {store}"),
        ("take the best trial's network away", f"{ssl} export --run-id {run} --mlflow-uri {store} --out backbone/"),
    ):
        print(f"  {what}:\n    {cmd}", file=stream)  # the command on a line of its own: long store paths fit


def report_phases(out: dict, ended: float, stream=None) -> dict:
    """How long the bank and trials took, and how long the sweep ran after its last trial (the probes left, then
    the report): logged to the parent run as ``sweep/seconds_training``, ``sweep/seconds_after_training`` and
    their ratio ``sweep/after_over_training``, and printed in one line."""
    from mlflow.entities import Metric

    from ssl_ray.tracking import client

    started, trained = out["phases"]
    phases = {"sweep/seconds_training": trained - started, "sweep/seconds_after_training": ended - trained}
    phases["sweep/after_over_training"] = phases["sweep/seconds_after_training"] / max(
        phases["sweep/seconds_training"], 1e-9
    )
    client(out["mlflow_uri"]).log_batch(
        out["parent_run_id"], metrics=[Metric(k, float(v), int(ended * 1000), 0) for k, v in phases.items()]
    )
    print(
        f"[sweep] done in {elapsed(ended - out.get('started', started))}: bank and trials "
        f"{elapsed(phases['sweep/seconds_training'])}; "
        f"after the last trial (probes, report) {elapsed(phases['sweep/seconds_after_training'])}, "
        f"{phases['sweep/after_over_training']:.2f}x",
        file=stream or sys.stdout,
    )
    return phases
