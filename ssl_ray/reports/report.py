"""``ssl-ray report``: a sweep's figures and comparison table, written to ``results/<experiment>/`` and
logged as artifacts (``report/``) of the sweep's parent MLflow run. Every sweep writes one at its end.

Files: ``fig1_ncc.png`` .. ``fig12_label_free.png`` (``FIGURES``), ``trials.md`` (one row per
configuration, mean ± std over seeds) and ``trials.csv`` (one row per trial), and ``README.md``: what
produced them (the sweep's command and commit, as tagged on its parent run), how the layer and the best
configuration were chosen (on validation data), how many seeds stand behind each number, and what each
figure shows.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ssl_ray.errors import ConfigError
from ssl_ray.provenance import git_commit
from ssl_ray.reports import baseline_figures as B
from ssl_ray.reports import figures as F
from ssl_ray.reports import randomness_figures as R
from ssl_ray.reports.findings import information_findings, randomness_findings
from ssl_ray.reports.hyperparameter_figure import hyperparameter_view
from ssl_ray.reports.label_free import label_free_figure, label_free_findings
from ssl_ray.reports.layer_figures import accuracy_per_layer, embeddings, geometry_over_training
from ssl_ray.reports.plotting import note_figure, seeds_note
from ssl_ray.reports.selection import Selection, select
from ssl_ray.reports.source import SweepData, load_sweep
from ssl_ray.reports.tables import config_table, headline, to_markdown, trial_table
from ssl_ray.tracking import TAG_COMMAND, TAG_COMMIT
from ssl_ray.uris import mask_uri

ARTIFACT_DIR = "report"
HP_AXES = ["objective.lam", "objective.mu", "objective.nu", "model.width", "model.depth"]  # fig 8's axes, where present

# file stem -> what the figure shows (README captions, in the study's order)
FIGURES: Dict[str, str] = {
    "fig1_ncc": "NCC train/test accuracy over training at the sample, class and superclass levels",
    "fig2_ncc_linear_ratio": "NCC/linear accuracy ratio over training, normalized at initialization",
    "fig3_loss_terms": "the loss split into invariance and regularization over training, beside class linear accuracy",
    "fig4_randomness": "linear accuracy against target randomness (random_<r>), one line per checkpoint, with the "
    "chance control",
    "fig5_layers": "accuracy per layer at several checkpoints, class and superclass, and their ratio",
    "fig6_geometry": "CDNV and the geometry metrics over training",
    "fig7_embeddings": "t-SNE of embeddings before and after training, colored by sample, class and superclass",
    "fig8_hyperparameters": "class probe accuracy across configurations, each at its own best layer, against the "
    "hyperparameters",
    "fig9_semantic_over_random": "NCC accuracy and CDNV of the class target over the most random target, over training",
    "fig10_above_pixels": "each layer's linear accuracy minus the pixel baseline, against target randomness, at the "
    "first and last checkpoint",
    "fig11_information": "the exact information about the input that survives noise, per layer over training, with "
    "MINE's estimate where it is reliable",
    "fig12_label_free": "label-free selection: RankMe and the eigenspectrum decay α of each usable trial's "
    "representation against its class validation accuracy, with Spearman's ρ; the labeled and label-free choices "
    "ringed",
}


@dataclass
class Report:
    out_dir: Path
    layer: str
    best_trial: str
    selection: Optional[Selection] = None
    files: List[Path] = field(default_factory=list)
    logged_to: Optional[str] = None  # parent run id
    notes: List[str] = field(default_factory=list)


def _embedding_figure(data: SweepData, layer: str, best: str, notes: List[str]):
    from ssl_ray.checkpoints import scan_checkpoints
    from ssl_ray.reports.embeddings import embedding_points, first_and_last

    t = data.trial(best)
    title = (
        f"Embeddings at {layer} before and after training, best trial ({t.label}; {seeds_note(data, one_trial=True)})"
    )
    epochs = sorted(data.probes.epoch[data.probes.trial_id == best].unique())
    ckpts = scan_checkpoints(t.trial_dir, epochs) if t.trial_dir and Path(t.trial_dir).is_dir() else []
    rows = first_and_last(ckpts)
    if not rows:
        note = f"no checkpoints of trial {best} readable from this machine ({t.trial_dir}); embeddings not drawn"
        notes.append(note)
        return note_figure(title, note)
    points, names = embedding_points(rows, layer)
    return embeddings(points, title, names)


def default_report_dir(data: SweepData) -> Path:
    """Beside the sweep's own results, wherever the command runs: ``<results>/<name>`` for a sweep in
    ``<results>/sweeps/<name>``; else ``results/<name>`` here."""
    from ssl_ray.config import default_results_dir
    from ssl_ray.tracking import TAG_SWEEP_DIR

    sweep_dir = data.parent_tags.get(TAG_SWEEP_DIR)
    if sweep_dir and Path(sweep_dir).parent.name == "sweeps":
        return Path(sweep_dir).parent.parent / data.experiment
    return default_results_dir() / data.experiment


def write_report(
    target: str,
    uri: Optional[str] = None,
    out_dir: Optional[str] = None,
    layer: Optional[str] = None,
    log: bool = True,
    stream=None,
    data: Optional[SweepData] = None,
) -> Report:
    """Read the sweep, draw every figure, write the table and README, and log them to the parent run."""
    import matplotlib.pyplot as plt

    stream = stream or sys.stderr
    data = data or load_sweep(target, uri)
    if layer is not None and layer not in data.layers:
        raise ConfigError(f"--layer {layer}: not a probed layer of this sweep (probed: {', '.join(data.layers)})")
    sel = select(data)
    forced = layer  # --layer: every figure at it, fig 8 included (else each configuration at its own best layer)
    layer = layer or sel.layer
    best = sel.best_trial
    out = Path(out_dir).expanduser().resolve() if out_dir else default_report_dir(data)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(out, layer, best, sel)
    makers: Dict[str, Callable] = {
        "fig1_ncc": lambda: F.ncc_over_training(data, layer),
        "fig2_ncc_linear_ratio": lambda: F.ncc_linear_ratio(data, layer, best),
        "fig3_loss_terms": lambda: F.loss_and_accuracy(data, layer),
        "fig4_randomness": lambda: R.accuracy_vs_randomness(data, layer),
        "fig5_layers": lambda: accuracy_per_layer(data, best),
        "fig6_geometry": lambda: geometry_over_training(data, layer),
        "fig7_embeddings": lambda: _embedding_figure(data, layer, best, rep.notes),
        "fig8_hyperparameters": lambda: hyperparameter_view(data, forced, HP_AXES),
        "fig9_semantic_over_random": lambda: R.semantic_over_random(data, layer),
        "fig10_above_pixels": lambda: B.above_pixels(data),
        "fig11_information": lambda: B.information_over_training(data),
        "fig12_label_free": lambda: label_free_figure(data, sel),
    }
    for i, (stem, make) in enumerate(makers.items(), 1):
        fig = make()
        path = out / f"{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        rep.files.append(path)
        print(f"[report] {i}/{len(makers)} figures: {path.name}", file=stream, flush=True)
    trial_table(data, sel).to_csv(out / "trials.csv", index=False)
    table_md = to_markdown(config_table(data, sel))
    (out / "trials.md").write_text(table_md)
    rep.files += [out / "trials.csv", out / "trials.md"]
    (out / "README.md").write_text(_readme(data, rep, table_md))
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
    sel = rep.selection
    best = data.trial(rep.best_trial)
    n = data.seeds_per_config()
    seeds = (
        f"{n} seeds per configuration (`train.seed`): tables give mean ± standard deviation over the seeds, "
        f"figures draw the mean with a band of ± one standard deviation, and N is shown"
        if n > 1
        else "**one seed per configuration**: no error bars, so a difference between two configurations may be "
        "noise; run the sweep with `--seeds N` to measure it"
    )
    lines = [
        f"# Report: {data.experiment}",
        "",
        "Written by `ssl-ray report` from MLflow; every sweep writes it at its end.",
        "",
        f"- sweep command: `{mask_uri(tags.get(TAG_COMMAND, '(not recorded)'))}`",
        f"- code commit of the sweep: `{tags.get(TAG_COMMIT, '(not recorded)')}`",
        f"- figures drawn by `ssl-ray report` at commit `{git_commit()}`",
        f"- MLflow: experiment `{data.experiment}`, parent run `{data.parent_run_id}` ({len(data.trials)} trials, "
        f"{len(data.configs())} configurations)",
        f"- seeds: {seeds}",
        f"- chosen on validation data (class `{sel.metric}`: a stratified share of the probe's train split, never "
        f"the test split): best configuration `{sel.best_config}` at its best layer `{sel.layer}` (the layer of "
        f"the one-layer figures{'' if rep.layer == sel.layer else f', here `{rep.layer}` by --layer'}), its best seed "
        f"`{best.trial_id}` for the one-trial figures",
        f"- written: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
    ]
    lines += [f"- {n}" for n in rep.notes]
    line = headline(data, sel)
    lines += [
        "## Configurations",
        "",
        f"Best layer of a configuration: the layer with the highest class `{sel.metric}` "
        "(validation) at its last checkpoint, averaged over its seeds; every other number is read at that layer "
        "(test numbers at a choice made without them), and the best configuration has the highest such score. "
        "The sweep summary and these tables use the same rule (`ssl_ray.reports.selection`). `trials.csv` has "
        "one row per trial.",
        "",
        *([line, ""] if line else []),
        table_md,
        *randomness_findings(data, sel),
        *information_findings(data, sel),
        *label_free_findings(data, sel),
        "## Figures",
        "",
    ]
    for stem, caption in FIGURES.items():
        lines += [f"### {stem}: {caption}", "", f"![{caption}]({stem}.png)", ""]
    return "\n".join(lines)
