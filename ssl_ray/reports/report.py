"""``ssl-ray report``: a sweep's figures and comparison table, written to ``results/<experiment>/`` and
logged as artifacts (``report/``) of the sweep's parent MLflow run. Every sweep writes one at its end.

Files: ``fig1_ncc.png`` .. ``fig8_hyperparameters.png`` (``FIGURES``), ``trials.md`` and ``trials.csv``
(one row per trial), and ``README.md``: what produced them (the sweep's command and commit, as tagged on
its parent run) and what each figure shows.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ssl_ray.errors import ConfigError
from ssl_ray.reports import figures as F
from ssl_ray.provenance import TAG_COMMAND, TAG_COMMIT, git_commit
from ssl_ray.reports.source import SweepData, load_sweep
from ssl_ray.reports.tables import comparison_table, to_markdown

ARTIFACT_DIR = "report"
HP_AXES = ["objective.lam", "objective.mu", "objective.nu", "model.width", "model.depth"]  # fig 8's axes, where present

# file stem -> what the figure shows (README captions, in the study's order)
FIGURES: Dict[str, str] = {
    "fig1_ncc": "NCC train/test accuracy over training at the sample, class and superclass levels",
    "fig2_ncc_linear_ratio": "NCC/linear accuracy ratio over training, normalized at initialization",
    "fig3_loss_terms": "the loss split into invariance and regularization over training, beside class linear accuracy",
    "fig4_randomness": "linear accuracy against target randomness, one line per checkpoint",
    "fig5_layers": "accuracy per layer at several checkpoints, class and superclass, and their ratio",
    "fig6_geometry": "CDNV and the geometry metrics over training",
    "fig7_embeddings": "t-SNE of embeddings before and after training, colored by sample, class and superclass",
    "fig8_hyperparameters": "a class probe metric across trials against the hyperparameters",
}


@dataclass
class Report:
    out_dir: Path
    layer: str
    best_trial: str
    files: List[Path] = field(default_factory=list)
    logged_to: Optional[str] = None  # parent run id
    notes: List[str] = field(default_factory=list)


def _embedding_figure(data: SweepData, layer: str, best: str, notes: List[str]):
    from ssl_ray.probes.engine import scan_checkpoints
    from ssl_ray.reports.embeddings import embedding_points, first_and_last

    t = data.trial(best)
    title = f"Embeddings at {layer} before and after training, best trial ({t.label})"
    epochs = sorted(data.probes.epoch[data.probes.trial_id == best].unique())
    ckpts = scan_checkpoints(t.trial_dir, epochs) if t.trial_dir and Path(t.trial_dir).is_dir() else []
    rows = first_and_last(ckpts)
    if not rows:
        note = f"no checkpoints of trial {best} readable from this machine ({t.trial_dir}); embeddings not drawn"
        notes.append(note)
        return F.note_figure(title, note)
    points, names = embedding_points(rows, layer)
    return F.embeddings(points, title, names)


def write_report(target: str, uri: Optional[str] = None, out_dir: Optional[str] = None, layer: Optional[str] = None,
                 log: bool = True, stream=None) -> Report:
    """Read the sweep, draw every figure, write the table and README, and log them to the parent run."""
    import matplotlib.pyplot as plt

    from ssl_ray.config import default_results_dir

    stream = stream or sys.stderr
    data = load_sweep(target, uri)
    if layer is not None and layer not in data.layers:
        raise ConfigError(f"--layer {layer}: not a probed layer of this sweep (probed: {', '.join(data.layers)})")
    layer = layer or F.report_layer(data)
    best = F.best_trial(data, layer)
    out = Path(out_dir).expanduser().resolve() if out_dir else default_results_dir() / data.experiment
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(out, layer, best)
    makers: Dict[str, Callable] = {
        "fig1_ncc": lambda: F.ncc_over_training(data, layer),
        "fig2_ncc_linear_ratio": lambda: F.ncc_linear_ratio(data, layer, best),
        "fig3_loss_terms": lambda: F.loss_and_accuracy(data, layer),
        "fig4_randomness": lambda: F.accuracy_vs_randomness(data, layer),
        "fig5_layers": lambda: F.accuracy_per_layer(data, best),
        "fig6_geometry": lambda: F.geometry_over_training(data, layer),
        "fig7_embeddings": lambda: _embedding_figure(data, layer, best, rep.notes),
        "fig8_hyperparameters": lambda: F.hyperparameter_view(data, layer, HP_AXES),
    }
    for i, (stem, make) in enumerate(makers.items(), 1):
        fig = make()
        path = out / f"{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        rep.files.append(path)
        print(f"[report] {i}/{len(makers)} figures: {path.name}", file=stream, flush=True)
    table = comparison_table(data, F.score_metric(data))
    table.to_csv(out / "trials.csv", index=False)
    (out / "trials.md").write_text(to_markdown(table))
    rep.files += [out / "trials.csv", out / "trials.md"]
    (out / "README.md").write_text(_readme(data, rep, to_markdown(table)))
    rep.files.append(out / "README.md")
    if log:
        from ssl_ray.tracking import client

        c = client(data.uri)
        for f in rep.files:
            c.log_artifact(data.parent_run_id, str(f), ARTIFACT_DIR)
        rep.logged_to = data.parent_run_id
    return rep


def _readme(data: SweepData, rep: Report, table_md: str) -> str:
    tags = data.parent_tags
    best = data.trial(rep.best_trial)
    lines = [f"# Report: {data.experiment}", "",
             "Written by `ssl-ray report` from MLflow; every sweep writes it at its end.", "",
             f"- sweep command: `{tags.get(TAG_COMMAND, '(not recorded)')}`",
             f"- code commit of the sweep: `{tags.get(TAG_COMMIT, '(not recorded)')}`",
             f"- figures drawn by `ssl-ray report` at commit `{git_commit()}`",
             f"- MLflow: experiment `{data.experiment}`, parent run `{data.parent_run_id}` ({len(data.trials)} trials)",
             f"- report layer: `{rep.layer}` (highest class {F.score_metric(data).replace('_', ' ')} accuracy, "
             f"mean over trials at their last checkpoints); best trial: `{best.trial_id}` ({best.label})",
             f"- written: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", ""]
    lines += [f"- {n}" for n in rep.notes]
    criterion = F.score_metric(data).replace("_", " ")
    lines += ["## Trials", "", f"Best layer: the layer with the highest class {criterion} accuracy at the trial's last "
              "checkpoint (the summary a sweep prints ranks layers by class NCC test accuracy instead).", "",
              table_md, "## Figures", ""]
    for stem, caption in FIGURES.items():
        lines += [f"### {stem}: {caption}", "", f"![{caption}]({stem}.png)", ""]
    return "\n".join(lines)
