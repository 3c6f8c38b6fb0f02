"""The sweep's tables, read from a :class:`~ssl_ray.reports.source.SweepData`, with layers chosen on
validation data (``ssl_ray.reports.selection``):

* :func:`trial_table`: one row per trial (every seed): its hyperparameters, seed, status, final loss,
  its best layer, and at that layer the class validation and test accuracies, class CDNV, the
  superclass, most-random ``random_<r>`` and chance-control ``permuted_1.0`` accuracies and the run id.
  Written as ``trials.csv``.
* :func:`config_table`: one row per configuration: its hyperparameters, N (seeds), statuses, and
  mean ± standard deviation over its usable seeds of the same numbers, at the configuration's best layer
  (the highest mean validation score). Written as ``trials.md`` and printed at a sweep's end.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from ssl_ray.probes.target_names import CHANCE_CONTROL, most_random
from ssl_ray.reports.selection import Selection, config_layers
from ssl_ray.reports.source import UNUSABLE, SweepData, fmt_param, short_name

REPORT_PARAMS = ["objective.name", "model.backbone", "model.depth", "model.width"]


def param_keys(data: SweepData) -> List[str]:
    """The architecture, the objective, each objective's own hyperparameters (as it declares them), and
    whatever else the sweep varied."""
    from ssl_ray.config.hparams import HPARAMS

    names = sorted({t.params.get("objective.name", "") for t in data.trials} & set(HPARAMS))
    hparams = [f"objective.{h}" for n in names for h in HPARAMS[n].keys()]
    keys = [k for k in dict.fromkeys(REPORT_PARAMS + hparams) if any(k in t.params for t in data.trials)]
    return keys + [k for k in data.varied if k not in keys]


def _columns(data: SweepData, sel: Selection) -> List[tuple]:
    """``(column, target, metric)`` of the values read at a chosen layer, where the sweep has them."""
    present = set(data.probes.metric)
    targets = set(data.targets)
    m_val, m_test = sel.metric, sel.test_metric
    kind = m_test.split("_")[0]
    random = most_random(targets)
    cols = [(f"class_{m_val}", "class", m_val), (f"class_{m_test}", "class", m_test)]
    cols += [(f"class_{m}", "class", m) for m in ("ncc_test", "cdnv") if m in present and m != m_test]
    if "superclass" in targets:
        cols.append((f"superclass_{m_test}", "superclass", m_test))
    if random:
        cols.append((f"{random}_{kind}_test", random, m_test))
    if CHANCE_CONTROL in targets:
        cols.append((f"{CHANCE_CONTROL}_{kind}_test", CHANCE_CONTROL, m_test))
    return cols


def _final_loss(data: SweepData, trial_id: str) -> float:
    loss = data.train[(data.train.trial_id == trial_id) & (data.train.metric == "loss")].sort_values("epoch")
    return float(loss.value.iloc[-1]) if len(loss) else math.nan


def trial_table(data: SweepData, sel: Selection) -> pd.DataFrame:
    keys = param_keys(data)
    rows = []
    for t in data.trials:
        layer = sel.trial_layers[t.trial_id]
        row = {
            "trial": t.trial_id,
            "configuration": t.group,
            "seed": t.params.get("train.seed", "-"),
            "status": t.status,
        }
        row.update({k: fmt_param(t.params.get(k, "")) for k in keys})
        row.update(final_loss=_final_loss(data, t.trial_id), epoch=data.last_epoch(t.trial_id), best_layer=layer)
        row.update({c: data.final(t.trial_id, target, m, layer) for c, target, m in _columns(data, sel)})
        row["run_id"] = t.run_id
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std(values: List[float]) -> tuple[float, float, int]:
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def config_table(data: SweepData, sel: Selection) -> pd.DataFrame:
    """Numeric columns hold the mean; ``<column>_std`` the standard deviation over seeds (0 for N = 1)."""
    keys = param_keys(data)
    rows = []
    layers = config_layers(data, sel.metric)
    for name, trials in data.configs().items():
        usable = [t for t in trials if t.status not in UNUSABLE] or trials
        ids = [t.trial_id for t in usable]
        layer = layers[name][0]
        statuses: Dict[str, int] = {}
        for t in trials:
            statuses[t.status] = statuses.get(t.status, 0) + 1
        row = {
            "configuration": name,
            "N": len(trials),
            "status": ", ".join(f"{n} {s}" if n > 1 else s for s, n in sorted(statuses.items())),
        }
        row.update({k: fmt_param(trials[0].params.get(k, "")) for k in keys})
        m, sd, _ = mean_std([_final_loss(data, i) for i in ids])
        row.update(final_loss=m, final_loss_std=sd, best_layer=layer)
        for c, target, metric in _columns(data, sel):
            row[c], row[f"{c}_std"], _ = mean_std([data.final(i, target, metric, layer) for i in ids])
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return "-" if v is None else str(v)


def to_markdown(df: pd.DataFrame, drop: tuple = ()) -> str:
    """A GitHub Markdown table; hyperparameters under their short names (λ, H, ...); a ``<c>_std`` column
    is folded into ``<c>`` as "mean ± std" where it is not 0."""
    cols = [c for c in df.columns if not c.endswith("_std") and c not in drop]
    lines = ["| " + " | ".join(short_name(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v, sd = r[c], r.get(f"{c}_std")
            text = _fmt(v) if isinstance(v, float) else ("-" if v is None else str(v))
            if isinstance(sd, float) and sd > 0 and not math.isnan(sd):
                text += f" ± {sd:.2g}"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_table(df: pd.DataFrame, drop: tuple = ()) -> str:
    """A plain-text table for the console (the same cells as :func:`to_markdown`)."""
    md = to_markdown(df, drop).splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for i, line in enumerate(md) if i != 1]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join([out[0], "  ".join("-" * w for w in widths)] + out[1:])


def headline(data: SweepData, sel: Selection) -> Optional[str]:
    """One sentence: the best configuration, chosen on validation data, with its test numbers there."""
    df = config_table(data, sel)
    row = df[df.configuration == sel.best_config]
    if row.empty:
        return None
    r = row.iloc[0]
    col = f"class_{sel.test_metric}"

    def pm(c: str) -> str:
        sd = r.get(f"{c}_std", 0.0)
        return f"{r[c]:.3f}" + (f" ± {sd:.3f}" if isinstance(sd, float) and sd > 0 else "")

    extra = [
        f"{c.rsplit('_', 2)[0]} {pm(c)}"
        for c in df.columns
        if c.startswith(("random_", "permuted_")) and not c.endswith("_std")
    ]
    return (
        f"best configuration, chosen on class {sel.metric.replace('_', ' ')}: {sel.best_config} (N={int(r.N)}), "
        f"at its best layer {r.best_layer}: class {sel.test_metric.replace('_', ' ')} {pm(col)}"
        + (f", vs {', '.join(extra)}" if extra else "")
    )
