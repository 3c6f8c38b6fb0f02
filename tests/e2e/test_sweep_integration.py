"""A tiny sweep (2 trials x 2 epochs) through a real local Ray -- Tune, Train, probe fan-out -- logging to a
real ``mlflow server`` over HTTP, read back through MLflow's client (the sweep is conftest's ``tiny_http``,
which the report tests share).

Faults are injected into the probe fan-out's Ray workers (``SSL_RAY_FAULTS``): one score task fails on
its first attempt (the retry must fill the gap), and the features of epoch 2 fail on every attempt in
both trials (the sweep must finish anyway, record the failure, and ``ssl-ray probe`` must fill it later).
"""

from collections import Counter

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import PROBE_RETRIES as RETRIES
from conftest import PY, ROOT, SweepRun, run_many
from ssl_ray.config import BANK_SEED_BASE, ProbeConfig
from ssl_ray.probes.plan import INPUT_LAYER, layers_at
from ssl_ray.probes.scoring import PROBES, expected_keys

TAPS = ["block1", "block2", "proj_hidden1", "projector"]
TARGETS = ["sample", "class", "superclass", "random_0.0", "random_0.25", "random_0.5", "random_0.75", "random_1.0",
           "permuted_1.0"]  # the defaults: random_<r> from the bank the sweep trains first
SCHEDULE = [0, 1, 2]  # 2 epochs: every epoch probed, MINE at all three, the pixel baseline (input) at epoch 0
KEYS_AT = {e: expected_keys(TARGETS, layers_at(TAPS, SCHEDULE, e), PROBES.names(), ProbeConfig(), SCHEDULE, e)
           for e in SCHEDULE}
KEYS = sorted(set(KEYS_AT[0]) | set(KEYS_AT[1]))


@pytest.fixture(scope="module")
def tiny_sweep(tiny_http):
    """``(tmp, store, proc)``: ``store`` is the server's own SQLite store, which these tests read in bulk (hundreds
    of metric histories; over HTTP a request each). What the REST API answers is in test_report.py; the
    commands and artifacts below go through the server (``tiny_http``'s base URL)."""
    tmp, _, proc, _ = tiny_http
    return tmp, f"sqlite:///{tmp / 'mlflow.db'}", proc


def trial_runs(uri):
    run = SweepRun(None, uri, "tiny", None)
    return run.client, run.trials


def probe_steps(c, run_id):
    """{key: Counter(step)} for every expected probe key."""
    return {key: Counter(h.step for h in c.get_metric_history(run_id, key)) for key in KEYS}


def test_parent_and_child_runs(tiny_sweep):
    tmp, uri, _ = tiny_sweep
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("tiny")
    assert exp is not None
    runs = c.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ssl_ray.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("ssl_ray.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    phases = parent.data.metrics
    assert phases["sweep/after_over_training"] == pytest.approx(
        phases["sweep/seconds_after_training"] / phases["sweep/seconds_training"], rel=1e-6)
    assert all(ch.data.tags["mlflow.parentRunId"] == parent.info.run_id for ch in children)
    assert sorted(ch.data.params["objective.lam"] for ch in children) == ["10", "25"]
    assert all(ch.data.params["model.width"] == "8" and ch.data.params["objective.name"] == "vicreg" for ch in children)
    assert len({ch.data.tags["ssl_ray.trial_id"] for ch in children}) == 2


def test_train_and_probe_histories(tiny_sweep):
    tmp, uri, _ = tiny_sweep
    c, children = trial_runs(uri)
    for ch in children:
        rid = ch.info.run_id
        for key in ["train/loss", "train/invariance", "train/variance", "train/covariance"]:
            hist = c.get_metric_history(rid, key)
            assert sorted(m.step for m in hist) == [1, 2], key
        for key, steps in probe_steps(c, rid).items():
            # epochs 0 and 1 are complete; epoch 2's features failed on every attempt; the pixels only at epoch 0
            assert sorted(steps) == ([0] if key.endswith("/" + INPUT_LAYER) else [0, 1]), key
            assert max(steps.values()) == 1, key  # one value per (key, step)
        # every target carries its pixel baseline in the run; no MINE or information reading of the input itself
        for target in TARGETS:
            assert f"probe/{target}/linear_test/{INPUT_LAYER}" in ch.data.metrics, target
        assert not [k for k in ch.data.metrics if k.endswith("/" + INPUT_LAYER) and ("/mine" in k or "/mi_exact/" in k)]
        for layer in TAPS:  # the exact information reading and MINE's flag, at every layer
            assert ch.data.metrics[f"probe/class/mi_exact/{layer}"] > 0
            assert ch.data.metrics[f"probe/class/mine_unreliable/{layer}"] in (0.0, 1.0)
        # permuted labels cannot be predicted on held-out data
        for layer in TAPS:
            assert ch.data.metrics[f"probe/permuted_1.0/ncc_test/{layer}"] < 0.3


def test_the_sweep_trains_its_own_target_bank(tiny_sweep):
    """No bank given: the sweep trains a supervised classifier through Ray Train first, logs its curve
    and every bank target's label entropy (all >= 0.8), caches the bank, and its trials probe against it."""
    from ssl_ray.probes.targets import TargetBank
    from ssl_ray.tracking import child_runs

    tmp, uri, proc = tiny_sweep
    c, children = trial_runs(uri)
    (bank,) = child_runs(c, children[0].data.tags["mlflow.parentRunId"], kind="bank")
    entropy = c.get_metric_history(bank.info.run_id, "bank/label_entropy")
    assert len(entropy) >= 6 and min(h.value for h in entropy) >= 0.8
    assert len(c.get_metric_history(bank.info.run_id, "train/loss")) >= 5
    saved = TargetBank.load(tmp / "sweeps" / "tiny" / "bank" / "target_bank.npz")
    assert bank.data.tags["ssl_ray.bank.path"].endswith("tiny/bank/target_bank.npz") and len(saved.epochs) >= 6
    assert all(ch.data.params["probe.target_bank"] == bank.data.tags["ssl_ray.bank.path"] for ch in children)
    assert "[bank] training the supervised classifier" in proc.stderr
    # its own seed stream, recorded: no trial's seed reaches it
    assert int(bank.data.params["train.seed"]) == BANK_SEED_BASE + 0
    assert bank.data.tags["ssl_ray.bank.seed_stream"].startswith(str(BANK_SEED_BASE))
    assert all(int(ch.data.params["train.seed"]) < BANK_SEED_BASE for ch in children)
    # the pixel baseline of every bank target: each epoch's labels, the classes and the chance control
    pix = c.get_metric_history(bank.info.run_id, "bank/pixel_linear_test")
    assert sorted(h.step for h in pix) == sorted(int(e) for e in saved.epochs)
    assert all(0.0 <= h.value <= 1.0 for h in pix)
    bank_metrics = bank.data.metrics
    assert bank_metrics["bank/class/pixel_linear_test"] > 0.8  # the digits' classes are nearly linear in their pixels
    assert bank_metrics["bank/permuted_1.0/pixel_linear_test"] < 0.25  # and the chance control is not
    assert "[bank] pixel baseline" in proc.stderr


def test_failed_probe_task_is_retried_and_recorded(tiny_sweep):
    _, uri, proc = tiny_sweep
    c, children = trial_runs(uri)
    tags = [ch.data.tags for ch in children]
    retried = [t["ssl_ray.probe.failure.e0001.block1"] for t in tags if "ssl_ray.probe.failure.e0001.block1" in t]
    assert retried == ["failed 1 time(s), then succeeded on attempt 2"]  # one trial, one task, first attempt
    for t in tags:
        for layer in TAPS:  # epoch 2 gave up after 1 + RETRIES attempts, and says so
            assert t[f"ssl_ray.probe.failure.e0002.{layer}"].startswith(f"attempt {RETRIES + 1} failed: ")
            assert "InjectedFault" in t[f"ssl_ray.probe.failure.e0002.{layer}"]
        assert t["ssl_ray.probe.status"].startswith("incomplete: ") and "e2/block1" in t["ssl_ray.probe.status"]
    parent = c.get_run(children[0].data.tags["mlflow.parentRunId"])
    assert parent.data.tags["ssl_ray.probe.status"].startswith("incomplete: ")
    assert "attempt 1: " in proc.stdout and "-- retried" in proc.stdout and "GAVE UP" in proc.stdout


def test_tidy_probe_table_artifact(tiny_http):
    tmp, base, _, _ = tiny_http
    c, children = trial_runs(base)  # artifacts are served by the server
    for ch in children:
        path = c.download_artifacts(ch.info.run_id, "probes/probes.csv", str(tmp / ch.info.run_id))
        df = pd.read_csv(path)
        assert list(df.columns) == ["trial_id", "run_id", "epoch", "layer", "target", "metric", "value"]
        assert len(df) == len(KEYS_AT[0]) + len(KEYS_AT[1])  # epochs 0 and 1
        assert set(df[df.layer == INPUT_LAYER].epoch) == {0} and set(df[df.layer == INPUT_LAYER].target) == set(TARGETS)
        assert not df.duplicated(["epoch", "layer", "target", "metric"]).any()
        row = df[(df.epoch == 1) & (df.layer == "projector") & (df.target == "class") & (df.metric == "ncc_test")]
        (at_epoch_1,) = [h.value for h in c.get_metric_history(ch.info.run_id, "probe/class/ncc_test/projector") if h.step == 1]
        assert row.value.item() == pytest.approx(at_epoch_1)


def test_backfill_fills_the_gap_and_rerun_is_idempotent(tiny_sweep, tiny_http):
    tmp, store, _ = tiny_sweep
    _, uri, _, env = tiny_http  # the commands talk to the server, in the sweep's environment without its faults
    c, children = trial_runs(store)
    a, b = sorted(children, key=lambda r: r.data.tags["ssl_ray.trial_id"])
    # two commands at once, each with its own local Ray, as two people might run them, one finding its trial by
    # run id, the other by trial directory: only epoch 2 is missing in each, so only its 4 layers are probed
    by_run, by_dir = run_many([
        [PY, "-m", "ssl_ray.cli", "probe", "--run-id", a.info.run_id, "--mlflow-uri", uri, "--num-cpus", "2"],
        [PY, "-m", "ssl_ray.cli", "probe", "--trial-dir", b.data.tags["ssl_ray.trial_dir"], "--mlflow-uri", uri,
         "--num-cpus", "2"]], timeout=600, cwd=ROOT, env=env)
    for proc in (by_run, by_dir):
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "4 checkpoint x layer tasks run; probes complete" in proc.stdout
    assert "[probes] 4/4 checkpoint x layer tasks done" in by_run.stderr  # the progress display
    # run again: nothing is missing, nothing is probed (and no Ray started)
    (again,) = run_many([[PY, "-m", "ssl_ray.cli", "probe", "--run-id", b.info.run_id, "--mlflow-uri", uri]],
                        timeout=300, cwd=ROOT, env=env)
    assert again.returncode == 0 and "0 checkpoint x layer tasks run; probes complete" in again.stdout, again.stderr[-2000:]
    for run in (a, b):
        for key, steps in probe_steps(c, run.info.run_id).items():
            assert sorted(steps) == ([0] if key.endswith("/" + INPUT_LAYER) else [0, 1, 2]), key
            assert max(steps.values()) == 1, key  # no value logged twice
        assert c.get_run(run.info.run_id).data.tags["ssl_ray.probe.status"] == "complete"
        df = pd.read_csv(MlflowClient(uri).download_artifacts(run.info.run_id, "probes/probes.csv",
                                                             str(tmp / ("after-" + run.info.run_id))))
        assert sorted(df.epoch.unique()) == [0, 1, 2]


def test_summary_table_printed(tiny_http):
    _, uri, proc, _ = tiny_http
    out = proc.stdout
    assert "ssl_ray sweep summary: tiny" in out
    table = out.split("ssl_ray sweep summary: tiny ===")[1]
    header = table.strip().splitlines()[0].split()
    for col in ("val", "lin", "ncc", "super", "rand1.0", "chance", "loss", "layer"):
        assert col in header, header
    assert "best configuration, chosen on class linear val:" in table and "one seed per configuration" in table
    # a console a person reads: every line fits in 160 columns; the next commands are spelled out
    import re

    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in out.splitlines()]
    long = [line for line in plain if len(line) > 160 and not line.startswith("(raylet)")]  # Ray's own warnings aside
    assert not long, long[:3]
    assert "ssl-ray resume " in out and "ssl-ray export --run-id " in out and "results.load(" in out
    # how long the probes and the report ran after the last trial, against the bank and the trials: printed, logged
    assert re.search(r"\[sweep\] bank and trials \d+ s; after the last trial \(probes, report\) \d+ s, [\d.]+x", out)
    c, children = trial_runs(uri)
    assert all(f"run {ch.info.run_id}" in table for ch in children)
    assert f"browse in MLflow: {uri}  (experiment 'tiny')" in out  # a server: its address (a SQLite store: test_fault_tolerance)
    # the report is written although epoch 2's probes gave up: it shows what MLflow holds
    assert "report: 15 files in " in out and "report not written" not in out
    readme = out.split("report: 15 files in ")[1].split()[0]
    from pathlib import Path

    assert "**one seed per configuration**: no error bars" in (Path(readme) / "README.md").read_text()


def test_results_load_gives_the_sweep_as_dataframes(tiny_sweep):
    from pathlib import Path

    from ssl_ray import results
    from ssl_ray.reports.source import load_sweep

    tmp, uri, _ = tiny_sweep
    r = results.load(str(tmp / "sweeps" / "tiny"))
    c, runs = trial_runs(uri)
    assert sorted(r.trials.run_id) == sorted(x.info.run_id for x in runs)
    assert sorted(r.trials["objective.lam"]) == [10, 25]  # params are numbers again
    assert list(r.probes.columns) == ["trial", "epoch", "layer", "target", "metric", "value"]
    # the probes.csv artifacts (one request per trial) hold exactly what the metric histories hold
    slow = load_sweep(str(tmp / "sweeps" / "tiny"), uri).probes.rename(columns={"trial_id": "trial"}).drop(columns="run_id")
    key = ["trial", "epoch", "layer", "target", "metric"]
    merged = r.probes.merge(slow, on=key, suffixes=("", "_hist"))
    assert len(merged) == len(r.probes) == len(slow) and (merged.value - merged.value_hist).abs().max() < 1e-9
    row = r.trials.iloc[0]
    hist = c.get_metric_history(row.run_id, "probe/class/ncc_test/block2")
    got = r.probes.query("trial == @row.trial and target == 'class' and metric == 'ncc_test' and layer == 'block2'")
    assert sorted(got.value) == sorted(h.value for h in hist)
    assert (Path(r.checkpoint(row.trial, 2)) / "state.pt").is_file()


def test_mlflow_answers_at_a_glance(tiny_sweep):
    """Trial runs are named by what varies, carry summary/* metrics read at their best validation layer,
    and no param is the string "None"; the parent run holds the search space."""
    from ssl_ray.tracking import TAG_SUMMARY_LAYER

    tmp, uri, _ = tiny_sweep
    c, runs = trial_runs(uri)
    assert sorted(r.info.run_name for r in runs) == ["lam=10", "lam=25"]
    parent = c.get_run(runs[0].data.tags["mlflow.parentRunId"])
    for run in [parent, *runs]:
        assert "None" not in run.data.params.values(), [k for k, v in run.data.params.items() if v == "None"]
    p = parent.data.params
    assert p["search.objective.lam"] == "[10, 25]" and p["base.objective.lam"] == "searched"
    assert p["base.model.depth"] == "2" and "base.objective.mu" in p
    for run in runs:
        m, layer = run.data.metrics, run.data.tags[TAG_SUMMARY_LAYER]
        for name in ("class_linear_val", "class_linear_test", "class_ncc_test", "permuted_1.0_linear_test",
                     "random_1.0_linear_test", "final_loss"):
            assert f"summary/{name}" in m, name
        # read at the layer with the best class validation accuracy, at the last probed checkpoint
        val = {t: c.get_metric_history(run.info.run_id, f"probe/class/linear_val/{t}") for t in TAPS}
        step = max(h.step for hs in val.values() for h in hs)  # 2, or 1 before the backfill test fills epoch 2
        last = {t: [h.value for h in hs if h.step == step][0] for t, hs in val.items()}
        assert layer == max(last, key=last.get)
        test = [h.value for h in c.get_metric_history(run.info.run_id, f"probe/class/linear_test/{layer}") if h.step == step]
        assert m["summary/class_linear_test"] == test[0]
        assert m["summary/final_loss"] == m["train/loss"]


def test_every_key_the_readme_charts_name_exists(tiny_sweep):
    """The README's "which chart answers which question": each metric it names is on the trial runs of a
    sweep, each tag is one ssl_ray writes (its name is in ssl_ray.tracking)."""
    import re

    import ssl_ray.tracking as tk

    text = (ROOT / "README.md").read_text()
    section = text[text.index("**At a glance.**"):text.index("**In Python.**")]
    names = set(re.findall(r"`([a-z_0-9.]+/[^`\s]*|ssl_ray\.[a-z_.*]+)`", section))
    metrics = {n.replace("<layer>", "block2") for n in names if "/" in n and not n.endswith(("/...", ".py"))}
    tags = {n for n in names if n.startswith("ssl_ray.")}
    assert len(metrics) >= 15 and len(tags) >= 5, (metrics, tags)
    _, uri, _ = tiny_sweep
    _, runs = trial_runs(uri)
    for run in runs:
        have = set(run.data.metrics)
        missing = [m for m in metrics if m not in have and not (m.endswith("/") and any(k.startswith(m) for k in have))]
        assert not missing, missing
    written = {v for k, v in vars(tk).items() if k.startswith("TAG_") and isinstance(v, str)}
    for tag in tags:
        assert tag.rstrip(".*") in written, tag
