"""What a report may say about the random targets and about information, computed from the run's own
numbers (so a sentence cannot outlive the data it came from).

* :func:`randomness_findings` -- the report layer's linear test accuracy against the target randomness r
  at the first and last checkpoint, beside the pixel baseline, and whether the curve is monotone in r,
  raw and above the baseline.
* :func:`information_findings` -- per layer, the exact ``I(X; Z + sigma eps)`` and MINE's estimate of it at
  the best trial's last checkpoint that has MINE; MINE's numbers appear only where it is reliable.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import pandas as pd

from ssl_ray.reports.baseline_figures import curve, pixel_curve
from ssl_ray.reports.plotting import score_metric
from ssl_ray.reports.selection import Selection
from ssl_ray.reports.source import SweepData


def monotone_verdict(values: pd.Series) -> Tuple[bool, Optional[Tuple[float, float, float]]]:
    """Whether ``values`` (indexed by r) never rise as r grows; if not, the largest rise ``(r_a, r_b, rise)``."""
    v = values.dropna().sort_index()
    rises = [(a, b, y - x) for (a, x), (b, y) in zip(v.items(), list(v.items())[1:]) if y > x]
    return (not rises), (max(rises, key=lambda t: t[2]) if rises else None)


def _say(name: str, values: pd.Series) -> str:
    ok, rise = monotone_verdict(values)
    if ok:
        return f"- {name}: monotone (non-increasing) in r."
    a, b, d = rise
    return f"- {name}: **not monotone** in r (it rises by {d:.3f} from r = {a:g} to r = {b:g})."


def randomness_findings(data: SweepData, sel: Selection) -> List[str]:
    metric = score_metric(data)
    pixels = pixel_curve(data, metric).dropna()
    ids = [t.trial_id for t in data.configs()[sel.best_config]]
    epochs = sorted(data.probes.epoch[data.probes.trial_id.isin(ids)].unique())
    if pixels.empty or not epochs:
        return []
    first, last = (curve(data, ids, sel.layer, e, metric) for e in (epochs[0], epochs[-1]))
    lines = [
        "## Random targets against the pixel baseline",
        "",
        f"`{metric}` of the best configuration (`{sel.best_config}`) at its layer `{sel.layer}`, and the pixel "
        "baseline: the same linear probe on the pooled input pixels, same rows and splits "
        "(`fig4_randomness.png`, `fig10_above_pixels.png`).",
        "",
        f"| r | epoch {epochs[0]} | epoch {epochs[-1]} | pixels | epoch {epochs[-1]} − pixels |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in sorted(set(last.index) | set(pixels.index)):
        cells = [
            first.get(r, math.nan),
            last.get(r, math.nan),
            pixels.get(r, math.nan),
            last.get(r, math.nan) - pixels.get(r, math.nan),
        ]
        lines.append(f"| {r:g} | " + " | ".join("–" if math.isnan(c) else f"{c:.3f}" for c in cells) + " |")
    above = (last - pixels).dropna()
    lines += [
        "",
        _say(f"Raw accuracy at epoch {epochs[-1]}", last),
        _say("The pixel baseline itself", pixels),
        _say(f"Accuracy above the pixel baseline at epoch {epochs[-1]}", above),
    ]
    if len(above):
        lines.append(
            f"- Above the pixels, the layer gains {above.iloc[0]:+.3f} at r = {above.index[0]:g} and "
            f"{above.iloc[-1]:+.3f} at r = {above.index[-1]:g}"
            + (
                "; with one seed per configuration, differences of a few points may be noise."
                if data.seeds_per_config() < 2
                else "."
            )
        )
    return lines + [""]


def information_findings(data: SweepData, sel: Selection) -> List[str]:
    p = data.probes
    best = p[(p.trial_id == sel.best_trial) & (p.target == "class")]
    exact = best[best.metric == "mi_exact"]
    if exact.empty:
        return []
    mine_rows = best[best.metric == "mine"]
    epoch = int(mine_rows.epoch.max()) if len(mine_rows) else int(exact.epoch.max())
    at = best[best.epoch == epoch].pivot_table(index="layer", columns="metric", values="value")
    lines = [
        "## Information about the input",
        "",
        f"At epoch {epoch} of the best trial (`{sel.best_trial}`): the exact I(X; Z + σε) (X uniform over the "
        "probe images, σ = `probe.mine_noise` × the features' RMS distance from their mean) and MINE's estimate "
        "of it, mean ± spread over its seeds. MINE is shown only where it is reliable: within max(25%, 0.05 nats) "
        "of the exact value, no more than 20% below its own Gaussian check, and stable over its seeds "
        "(`fig11_information.png`). Gaussian bound: the same for Gaussian features of the layer's covariance, "
        "set by its spectrum alone (at most 1 / (2 noise²)); the gap below it is what clustering takes away.",
        "",
        "| layer | exact | Gaussian bound | gap | MINE |",
        "| --- | --- | --- | --- | --- |",
    ]
    shown = 0
    for layer in data.layers:
        if layer not in at.index:
            continue
        row = at.loc[layer]
        mine = "–"
        if not math.isnan(row.get("mine", math.nan)):
            if row.get("mine_unreliable", 1.0) > 0:
                mine = "unreliable"
            else:
                mine, shown = f"{row['mine']:.2f} ± {row.get('mine_std', math.nan):.2f}", shown + 1
        exact, bound = row.get("mi_exact", math.nan), row.get("mi_gaussian", math.nan)
        lines.append(f"| {layer} | {exact:.2f} | {bound:.2f} | {bound - exact:.2f} | {mine} |")
    flags = p[(p.metric == "mine_unreliable") & (p.target == "class")]
    if len(flags):
        lines += [
            "",
            f"- MINE was reliable at {int((flags.value == 0).sum())} of {len(flags)} readings of this sweep "
            "(every trial, layer and MINE checkpoint); the others are logged but not shown as readings.",
        ]
    ex = at["mi_exact"].dropna() if "mi_exact" in at else pd.Series(dtype=float)
    ex = ex[[name for name in data.layers if name in ex.index]]
    if len(ex) > 1:
        top = ex.idxmax()
        lines.append(
            f"- The exact reading is highest at `{top}` ({ex.max():.2f} nats) and ends at `{ex.index[-1]}` "
            f"({ex.iloc[-1]:.2f}). It compares layers at one signal-to-noise ratio; it is not the deterministic "
            "I(X; Z), which is log N at every layer."
        )
    gap = (
        (at["mi_gaussian"] - at["mi_exact"]).dropna()
        if {"mi_gaussian", "mi_exact"} <= set(at)
        else pd.Series(dtype=float)
    )
    if len(gap):
        lines.append(
            f"- Below the Gaussian bound by {gap.min():.2f} to {gap.max():.2f} nats: how much of a layer's reading "
            "is its spectrum (the bound) and how much its clusters take away (the gap)."
        )
    return lines + [""]
