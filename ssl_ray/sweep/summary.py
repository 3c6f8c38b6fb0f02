"""The summary a finished sweep prints: per configuration, the chosen layer and configuration, each
trial's run id, what stopped or was skipped, and where to browse."""

from __future__ import annotations

import os
import sys
import textwrap

from ssl_ray.config import SweepConfig, default_mlflow_uri
from ssl_ray.probes.cli import print_probe_failures


WIDTH = 150  # the console summary's lines stay within this many columns
CHANCE = "permuted_1.0"
TARGET_SHORT = {"class": "", "superclass": "super ", CHANCE: "chance "}
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
        print("accuracies on the test split at each configuration's best layer, chosen on 'val'; "
              f"chance: {CHANCE} labels", file=stream)
        print(f"\n{'mean ± std over ' + str(n) + ' seeds per configuration' if n > 1 else 'one seed per configuration (no error bars; --seeds N)'}",
              file=stream)
        line = headline(data, sel)
        if line:
            print(textwrap.fill(line, width=WIDTH, subsequent_indent="  "), file=stream)
        print(textwrap.fill(label_free_line(data, sel), width=WIDTH, subsequent_indent="  "), file=stream)
        print("\ntrials (MLflow run ids):", file=stream)
        for t in data.trials:
            print(f"  {t.trial_id}  {t.label}  {t.status}  run {t.run_id}", file=stream)
    from ssl_ray.tracking import TAG_PROBE_SKIPPED, TAG_STATUS, TAG_STOP_REASON, TAG_TRIAL_ID, TrialStatus, child_runs, client

    for run in child_runs(client(out["mlflow_uri"]), out["parent_run_id"]):
        tags = run.data.tags
        tid = tags.get(TAG_TRIAL_ID, run.info.run_id)
        if tags.get(TAG_STOP_REASON) and tags.get(TAG_STATUS) != TrialStatus.FINISHED.value:
            print(textwrap.fill(f"trial {tid} {tags.get(TAG_STATUS)}: {tags[TAG_STOP_REASON]}", width=WIDTH,
                                subsequent_indent="  "), file=stream)
        for k, why in sorted(tags.items()):
            if k.startswith(TAG_PROBE_SKIPPED + "."):
                print(textwrap.fill(f"trial {tid}: target {k[len(TAG_PROBE_SKIPPED) + 1:]} not scored: {why}", width=WIDTH,
                                    subsequent_indent="  "), file=stream)
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
        print(f"  .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000", file=stream)
        print("  then open http://127.0.0.1:5000", file=stream)
    d = os.path.relpath(out["sweep_dir"]) if not os.path.relpath(out["sweep_dir"]).startswith("..") else out["sweep_dir"]
    some_run = data.trials[0].run_id if data is not None and data.trials else "<run id>"
    store = "" if uri == mask_uri(default_mlflow_uri()) else f" --mlflow-uri {uri}"
    print("next:", file=stream)
    for what, cmd in (("results in Python", f"python -c \"from ssl_ray import results; print(results.load('{d}').trials)\""),
                      ("redraw the report", f"ssl-ray report {d}"),
                      ("continue after a failure", f"ssl-ray resume {d}"),
                      ("fill missing probes", f"ssl-ray probe --run-id {some_run}{store}"),
                      ("take a backbone away", f"ssl-ray export --run-id {some_run}{store} --out backbone/")):
        print(f"  {what}:\n    {cmd}", file=stream)  # the command on a line of its own: long store paths fit


def report_phases(out: dict, ended: float, stream=None) -> dict:
    """How long the bank and trials took, and how long the sweep ran after its last trial (the probes left, then
    the report): logged to the parent run as ``sweep/seconds_training``, ``sweep/seconds_after_training`` and
    their ratio ``sweep/after_over_training``, and printed in one line."""
    from mlflow.entities import Metric

    from ssl_ray.tracking import client

    started, trained = out["phases"]
    phases = {"sweep/seconds_training": trained - started, "sweep/seconds_after_training": ended - trained}
    phases["sweep/after_over_training"] = phases["sweep/seconds_after_training"] / max(phases["sweep/seconds_training"], 1e-9)
    client(out["mlflow_uri"]).log_batch(out["parent_run_id"], metrics=[Metric(k, float(v), int(ended * 1000), 0)
                                                                       for k, v in phases.items()])
    print(f"[sweep] bank and trials {phases['sweep/seconds_training']:.0f} s; after the last trial (probes, report) "
          f"{phases['sweep/seconds_after_training']:.0f} s, {phases['sweep/after_over_training']:.2f}x", file=stream or sys.stdout)
    return phases
