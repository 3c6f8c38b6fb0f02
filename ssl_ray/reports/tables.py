"""The end-of-sweep table: one row per trial, read back from MLflow."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

from ssl_ray.reports.source import UNUSABLE
from ssl_ray.tracking import TAG_STATUS, TAG_STOP_REASON, TAG_TRIAL_ID, child_runs, client


def _probe_values(metrics: Dict[str, float], target: str, metric: str) -> Dict[str, float]:
    prefix = f"probe/{target}/{metric}/"
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


def trial_rows(uri: str, parent_run_id: str, search_keys: Sequence[str] = ()) -> List[dict]:
    """Per trial: its status (finished, diverged, collapsed, stopped, errored, running) and stop reason, its searched params, final loss, the best layer by class NCC test accuracy at the last
    checkpoint, that accuracy, the random-label accuracy and the class linear-probe accuracy at the same
    layer, the best sample-level NCC test accuracy over layers, and the class NCC of the best layer at
    every checkpoint (``ncc_by_epoch``)."""
    c = client(uri)
    rows = []
    for run in child_runs(c, parent_run_id):
        m, p = run.data.metrics, run.data.params
        tags = run.data.tags
        row: dict = {"trial": tags.get(TAG_TRIAL_ID, run.info.run_id), "run_id": run.info.run_id,
                     "status": tags.get(TAG_STATUS, "-"), "stop_reason": tags.get(TAG_STOP_REASON)}
        for k in search_keys:
            row[k] = p.get(k)
        row["final_loss"] = m.get("train/loss", math.nan)
        cls = _probe_values(m, "class", "ncc_test")
        random_targets = sorted({k.split("/")[1] for k in m if k.startswith("probe/random_")})
        if cls:
            best = max(cls, key=cls.get)
            row["best_layer"] = best
            row["class_ncc_test"] = cls[best]
            row["random_target"] = random_targets[-1] if random_targets else None
            row["random_ncc_test"] = m.get(f"probe/{random_targets[-1]}/ncc_test/{best}", math.nan) if random_targets else math.nan
            row["class_linear_test"] = m.get(f"probe/class/linear_test/{best}", math.nan)
            sample = _probe_values(m, "sample", "ncc_test")
            row["sample_ncc_test"] = max(sample.values()) if sample else math.nan
            hist = c.get_metric_history(run.info.run_id, f"probe/class/ncc_test/{best}")
            row["ncc_by_epoch"] = {h.step: h.value for h in sorted(hist, key=lambda h: h.step)}
        rows.append(row)
    rows.sort(key=lambda r: r["trial"])
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return "-" if v is None else str(v)


def format_table(rows: List[dict], columns: Optional[Sequence[str]] = None) -> str:
    if not rows:
        return "(no trials)"
    columns = list(columns or [k for k in rows[0] if k not in ("run_id", "ncc_by_epoch", "stop_reason")])
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def best_trial(rows: List[dict]) -> Optional[dict]:
    scored = [r for r in rows if "class_ncc_test" in r and r.get("status") not in UNUSABLE]
    return max(scored, key=lambda r: r["class_ncc_test"]) if scored else None


# ------------------------------------------------------------------------------------------------
# The report's comparison table

REPORT_PARAMS = ["objective.name", "model.backbone", "model.depth", "model.width", "objective.lam", "objective.mu",
                 "objective.nu"]


def comparison_table(data, metric: str = "linear_test"):
    """One row per trial: its hyperparameters, status, final loss, and its best layer -- the layer with the
    highest class ``metric`` at the trial's last checkpoint -- with the class linear, NCC and CDNV values
    there, and the superclass ones where the sweep has superclasses. Returns a pandas DataFrame."""
    import pandas as pd

    from ssl_ray.reports.source import fmt_param

    keys = [k for k in REPORT_PARAMS if any(k in t.params for t in data.trials)]
    keys += [k for k in data.varied if k not in keys]
    levels = [lv for lv in ("class", "superclass") if lv in data.targets]
    present = set(data.probes.metric)
    rows = []
    for t in data.trials:
        row = {"trial": t.trial_id, "status": t.status}
        row.update({k: fmt_param(t.params.get(k, "")) for k in keys})
        loss = data.train[(data.train.trial_id == t.trial_id) & (data.train.metric == "loss")].sort_values("epoch")
        row["final_loss"] = float(loss.value.iloc[-1]) if len(loss) else math.nan
        row["epoch"] = data.last_epoch(t.trial_id)
        scores = {layer: data.final(t.trial_id, "class", metric, layer) for layer in data.layers}
        scores = {k: v for k, v in scores.items() if not math.isnan(v)}
        best = max(scores, key=scores.get) if scores else None
        row["best_layer"] = best
        for level in levels:
            for m in [m for m in ("linear_test", "ncc_test", "cdnv") if m in present]:
                row[f"{level}_{m}"] = data.final(t.trial_id, level, m, best) if best else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df) -> str:
    """A GitHub Markdown table (no extra dependency); hyperparameters under their short names (λ, H, ...)."""
    from ssl_ray.reports.source import SHORT_NAMES

    cols = list(df.columns)
    lines = ["| " + " | ".join(SHORT_NAMES.get(c, c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) if isinstance(r[c], float) else ("-" if r[c] is None else str(r[c]))
                                       for c in cols) + " |")
    return "\n".join(lines) + "\n"
