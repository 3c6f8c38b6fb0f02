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
from conftest import PROBE_RETRIES as RETRIES
from conftest import PY, ROOT, SweepRun, results_load_in_a_fresh_process, run_many
from mlflow.tracking import MlflowClient

from ssl_ray.config import BANK_SEED_BASE, ProbeConfig
from ssl_ray.probes.plan import INPUT_LAYER, layers_at
from ssl_ray.probes.scoring import PROBES, expected_keys

TAPS = ["block1", "block2", "proj_hidden1", "projector"]
TARGETS = [
    "sample",
    "class",
    "superclass",
    "random_0.0",
    "random_0.25",
    "random_0.5",
    "random_0.75",
    "random_1.0",
    "permuted_1.0",
]  # the defaults: random_<r> from the bank the sweep trains first
SCHEDULE = [0, 1, 2]  # 2 epochs: every epoch probed, MINE at all three, the pixel baseline (input) at epoch 0
KEYS_AT = {
    e: expected_keys(TARGETS, layers_at(TAPS, SCHEDULE, e), PROBES.names(), ProbeConfig(), SCHEDULE, e)
    for e in SCHEDULE
}
KEYS = sorted(set(KEYS_AT[0]) | set(KEYS_AT[1]))


@pytest.fixture(scope="module")
def tiny_sweep(tiny_http):
    """``(tmp, store, proc)``: ``store`` is the server's own SQLite store, which these tests read in bulk (hundreds
    of metric histories; over HTTP a request each). What the REST API answers is in test_report.py; the
    commands and artifacts below go through the server (``tiny_http``'s base URL)."""
    tmp, base, proc, _ = tiny_http
    SERVER["uri"] = base  # artifacts are served by the server: the store alone cannot read them
    return tmp, f"sqlite:///{tmp / 'mlflow.db'}", proc


SERVER = {}


def trial_runs(uri):
    run = SweepRun(None, uri, "tiny", None)
    return run.client, run.trials


def probe_table(c, run_id):
    """The run's probes/probes.csv: every probe value (MLflow holds a curated few), through the server."""
    from ssl_ray.probes.table import read_probe_table

    table = read_probe_table(MlflowClient(SERVER["uri"]), run_id)
    assert table is not None, run_id
    return table


def probe_steps(c, run_id):
    """{key: Counter(step)} for every expected probe key, from the run's probe table."""
    t = probe_table(c, run_id)
    keys = "probe/" + t.target + "/" + t.metric + "/" + t.layer
    return {key: Counter(t.epoch[keys == key].astype(int)) for key in KEYS}


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
    assert parent.info.status == "FAILED"  # epoch 2's probes gave up in both trials (conftest.tiny_http)
    phases = parent.data.metrics
    assert phases["sweep/after_over_training"] == pytest.approx(
        phases["sweep/seconds_after_training"] / phases["sweep/seconds_training"], rel=1e-6
    )
    assert all(ch.data.tags["mlflow.parentRunId"] == parent.info.run_id for ch in children)
    assert sorted(ch.data.params["objective.lam"] for ch in children) == ["10.0", "25.0"]  # typed: floats
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
        # every target carries its pixel baseline; no MINE or information reading of the input itself
        table = probe_table(c, rid)
        pixels = table[table.layer == INPUT_LAYER]
        assert set(pixels[pixels.metric == "linear_test"].target) == set(TARGETS)
        assert not pixels.metric.str.startswith(("mine", "mi_")).any()
        for layer in TAPS:  # the exact information reading (curated: in MLflow too) and MINE's flag, at every layer
            assert ch.data.metrics[f"probe/class/mi_exact/{layer}"] > 0
            flag = table[(table.layer == layer) & (table.target == "class") & (table.metric == "mine_unreliable")]
            assert set(flag.value) <= {0.0, 1.0} and len(flag)
        # permuted labels cannot be predicted on held-out data
        for layer in TAPS:
            assert ch.data.metrics[f"probe/permuted_1.0/ncc_test/{layer}"] < 0.3


def test_the_sweep_trains_its_own_target_bank(tiny_sweep):
    """No bank given: the sweep trains a supervised classifier through Ray Train first, logs its curve
    and every bank target's label entropy (all >= 0.8), caches the bank, and its trials probe against it."""
    from ssl_ray.probes.target_bank import TargetBank
    from ssl_ray.tracking import child_runs

    tmp, uri, proc = tiny_sweep
    c, children = trial_runs(uri)
    parent = c.get_run(children[0].data.tags["mlflow.parentRunId"])
    assert not child_runs(c, parent.info.run_id, kind="bank")  # the bank's run is never among the sweep's runs
    bank = c.get_run(parent.data.tags["ssl_ray.bank.run_id"])
    assert (
        c.get_experiment(bank.info.experiment_id).name == "ssl_ray_target_banks"
        and bank.data.tags["ssl_ray.kind"] == "bank"
    )
    # its params are what the bank uses: the dataset, the network, its optimizer, its length and seed; no SSL objective
    assert not [k for k in bank.data.params if k.startswith(("objective.", "probe."))]
    assert bank.data.params["train.mode"] == "supervised" and bank.data.params["data.dataset"] == "digits"
    entropy = c.get_metric_history(bank.info.run_id, "bank/label_entropy")
    assert len(entropy) >= 6 and min(h.value for h in entropy) >= 0.8
    assert len(c.get_metric_history(bank.info.run_id, "train/loss")) >= 5
    path = parent.data.tags["ssl_ray.bank.path"]
    saved = TargetBank.load(path)  # cached for later sweeps on the same data and network
    assert path.startswith(str(tmp / "sweeps" / "_banks")) and bank.data.tags["ssl_ray.bank.path"] == path
    assert len(saved.epochs) >= 6
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
        (at_epoch_1,) = [
            h.value for h in c.get_metric_history(ch.info.run_id, "probe/class/ncc_test/projector") if h.step == 1
        ]
        assert row.value.item() == pytest.approx(at_epoch_1)


def test_backfill_fills_the_gap_and_rerun_is_idempotent(tiny_sweep, tiny_http):
    tmp, store, _ = tiny_sweep
    _, uri, _, env = tiny_http  # the commands talk to the server, in the sweep's environment without its faults
    c, children = trial_runs(store)
    a, b = sorted(children, key=lambda r: r.data.tags["ssl_ray.trial_id"])
    # two commands at once, each with its own local Ray, as two people might run them, one finding its trial by
    # run id, the other by trial directory: only epoch 2 is missing in each, so only its 4 layers are probed
    by_run, by_dir = run_many(
        [
            [PY, "-m", "ssl_ray.cli", "probe", "--run-id", a.info.run_id, "--mlflow-uri", uri, "--num-cpus", "2"],
            [
                PY,
                "-m",
                "ssl_ray.cli",
                "probe",
                "--trial-dir",
                b.data.tags["ssl_ray.trial_dir"],
                "--mlflow-uri",
                uri,
                "--num-cpus",
                "2",
            ],
        ],
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    for proc in (by_run, by_dir):
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "4 checkpoint x layer tasks run; probes complete" in proc.stdout
    assert "[probes] 4/4 checkpoint x layer tasks done" in by_run.stderr  # the progress display
    # run again: nothing is missing, nothing is probed (and no Ray started)
    (again,) = run_many(
        [[PY, "-m", "ssl_ray.cli", "probe", "--run-id", b.info.run_id, "--mlflow-uri", uri]],
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert again.returncode == 0 and "0 checkpoint x layer tasks run; probes complete" in again.stdout, again.stderr[
        -2000:
    ]
    from ssl_ray.probes.curated import curated

    for run in (a, b):
        for key, steps in probe_steps(c, run.info.run_id).items():
            assert sorted(steps) == ([0] if key.endswith("/" + INPUT_LAYER) else [0, 1, 2]), key
            assert max(steps.values()) == 1, key  # no value logged twice
        # MLflow got the curated keys of the filled epoch too, once each, and nothing beyond them
        m = c.get_run(run.info.run_id).data.metrics
        assert {k for k in m if k.startswith("probe/")} == set(curated({k: 0 for k in KEYS}))
        for key in ("probe/class/ncc_test/block1", "probe/random_1.0/linear_test/projector"):
            assert sorted(h.step for h in c.get_metric_history(run.info.run_id, key)) == [0, 1, 2], key
        assert c.get_run(run.info.run_id).data.tags["ssl_ray.probe.status"] == "complete"
        df = pd.read_csv(
            MlflowClient(uri).download_artifacts(
                run.info.run_id, "probes/probes.csv", str(tmp / ("after-" + run.info.run_id))
            )
        )
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
    # a console a person reads: every line fits in 160 columns once the absolute paths it must print (this
    # environment's executables, the sweep's directory) count as a few characters each -- they are as long as
    # the machine makes them (CI's checkout is deeper than ours); the next commands are spelled out
    import re
    import sys
    from pathlib import Path

    paths = (str(Path(sys.executable).absolute().parent), str(tiny_http[0]))
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in out.splitlines()]
    plain = [re.sub("|".join(map(re.escape, paths)), "<path>", line) for line in plain]
    long = [line for line in plain if len(line) > 160 and not line.startswith("(raylet)")]  # Ray's own warnings aside
    assert not long, long[:3]
    assert "ssl-ray resume " in out and "ssl-ray export --run-id " in out and "results.load(sys.argv[1])" in out
    # how long the probes and the report ran after the last trial, against the bank and the trials: printed, logged
    assert re.search(
        r"\[sweep\] done in (\d+ min )?\d+ s: bank and trials (\d+ min )?\d+ s; after the last trial "
        r"\(probes, report\) (\d+ min )?\d+ s, [\d.]+x",
        out,
    )
    c, children = trial_runs(uri)
    assert all(f"run {ch.info.run_id}" in table for ch in children)
    assert (
        f"browse in MLflow: {uri}  (experiment 'tiny')" in out
    )  # a server: its address (a SQLite store: test_fault_tolerance)
    # the report is written although epoch 2's probes gave up: it shows what MLflow holds
    assert "report: 15 files in " in out and "report not written" not in out
    # probes given up: the sweep failed, says so in one line, and its run says so too (exit 1: conftest.tiny_http)
    assert "sweep failed: 2 trial(s) with probes given up (exit code 1)" in out
    assert c.get_run(children[0].data.tags["mlflow.parentRunId"]).info.status == "FAILED"
    readme = out.split("report: 15 files in ")[1].split()[0]
    assert "**one seed per configuration**: no error bars" in (Path(readme) / "README.md").read_text()


def test_results_load_gives_the_sweep_as_dataframes(tiny_sweep):
    """``results.load``: trials with typed params, each trial's best layer (the validation rule) and the keys that
    vary; every probe value (the probes.csv tables) with each target's randomness; in a fresh process, without
    importing torch or asking MLflow for a probe's history."""
    from pathlib import Path

    from ssl_ray import results
    from ssl_ray.reports.selection import select

    tmp, uri, _ = tiny_sweep
    r = results.load(str(tmp / "sweeps" / "tiny"))
    c, runs = trial_runs(uri)
    assert sorted(r.trials.run_id) == sorted(x.info.run_id for x in runs)
    assert sorted(r.trials["objective.lam"]) == [10, 25] and r.varying == ["objective.lam"]
    row = r.trials.iloc[0]
    assert r.trials["model.projector_bn"].dtype == bool and row["model.projector_dims"] == [
        128,
        128,
    ]  # typed, not strings
    assert r.trials["optim.lr"].dtype.kind == "f" and r.trials["train.epochs"].dtype.kind == "i"
    assert dict(zip(r.trials.trial, r.trials.best_layer)) == select(r.data).trial_layers
    assert list(r.probes.columns) == ["trial", "epoch", "layer", "target", "metric", "value", "randomness"]
    # every probe value of each trial's table, not only the curated MLflow keys
    table = probe_table(c, row.run_id)
    mine = r.probes[r.probes.trial == row.trial]
    assert len(mine) == len(table) and set(mine.metric) >= {"linear_val", "within_var", "mine_unreliable"}
    hist = c.get_metric_history(row.run_id, "probe/class/ncc_test/block2")
    got = mine.query("target == 'class' and metric == 'ncc_test' and layer == 'block2'")
    assert sorted(got.value) == sorted(h.value for h in hist)
    # the randomness of each target: the bank's own for random_<r> (the epoch nearest r), r for permuted_<r>
    t = r.targets.set_index("target")
    assert t.loc["permuted_1.0", "randomness"] == 1.0 and t.loc["class", "randomness"] == 0.0
    assert abs(t.loc["random_0.5", "randomness"] - 0.5) <= 0.13 and t.loc["random_1.0", "randomness"] == 1.0
    assert t.loc["random_0.0", "bank_accuracy"] > t.loc["random_1.0", "bank_accuracy"]
    assert set(r.probes.query("target == 'random_0.5'").randomness) == {t.loc["random_0.5", "randomness"]}
    assert (Path(r.checkpoint(row.trial, 2)) / "state.pt").is_file()
    fresh = results_load_in_a_fresh_process(tmp / "sweeps" / "tiny", cwd=ROOT)
    print(f"results.load: {fresh['seconds']:.2f} s")
    # fast because it imports no torch and reads each trial's probes in one request (its probes.csv), never a history
    # per probe key (a thousand keys a trial): MLflow is asked only for each trial's train/* curves
    assert not fresh["torch"] and fresh["probes"] == len(r.probes)
    assert fresh["asked"] and all(k.startswith("train/") for k in fresh["asked"]), fresh["asked"]


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
        for name in (
            "class_linear_val",
            "class_linear_test",
            "class_ncc_test",
            "permuted_1.0_linear_test",
            "random_1.0_linear_test",
            "final_loss",
        ):
            assert f"summary/{name}" in m, name
        # read at the layer with the best class validation accuracy, at the last probed checkpoint (from the probe
        # table: MLflow's run holds a curated few, linear_val not among them), rounded to 4 digits
        t = probe_table(c, run.info.run_id)
        step = t.epoch[t.layer != INPUT_LAYER].max()  # 2, or 1 before the backfill test fills epoch 2
        last = t[(t.epoch == step) & (t.target == "class")].set_index(["metric", "layer"]).value
        assert layer == max(TAPS, key=lambda x: last[("linear_val", x)])
        assert m["summary/class_linear_test"] == round(last[("linear_test", layer)], 4)
        assert m["summary/final_loss"] == round(m["train/loss"], 4)


def test_a_trial_run_carries_a_curated_few_metrics(tiny_sweep):
    """What MLflow shows first: the experiment opens on its runs (its kind tag); a trial run carries at most 150
    metrics, the curated probe readings among them with the table's values; summary/* is rounded to 4 digits."""
    from ssl_ray.probes.curated import curated

    _, uri, _ = tiny_sweep
    c, runs = trial_runs(uri)
    assert c.get_experiment_by_name("tiny").tags["mlflow.experimentKind"] == "custom_model_development"
    for run in runs:
        m = run.data.metrics
        assert len(m) <= 150, len(m)
        probe = {k: v for k, v in m.items() if k.startswith("probe/")}
        t = probe_table(c, run.info.run_id)
        every = {f"probe/{r.target}/{r.metric}/{r.layer}": r.value for r in t.itertuples() if r.epoch == 0}
        assert set(curated(every)) <= set(m) and len(every) > 5 * len(probe)  # the table holds far more
        assert set(probe) == set(curated({k: 0.0 for k in probe}))  # nothing beyond the curated set
        hist = {h.step: h.value for h in c.get_metric_history(run.info.run_id, "probe/class/ncc_test/block2")}
        rows = t[(t.target == "class") & (t.metric == "ncc_test") & (t.layer == "block2")]
        assert hist == dict(zip(rows.epoch.astype(int), rows.value))
        summary = {k: v for k, v in m.items() if k.startswith("summary/")}
        assert len(summary) >= 5 and all(v == round(v, 4) for v in summary.values()), summary


def test_every_key_the_mlflow_page_charts_name_exists(tiny_sweep):
    """docs/mlflow.md's "which chart answers which question" (from "At a glance" to "In Python"): each metric it
    names is on the trial runs of a sweep, each tag is one ssl_ray writes (its name is in ssl_ray.tracking)."""
    import re

    import ssl_ray.tracking as tk

    text = (ROOT / "docs" / "mlflow.md").read_text()
    section = text[text.index("**At a glance.**") : text.index("**In Python.**")]
    names = set(re.findall(r"`([a-z_0-9.]+/[^`\s]*|ssl_ray\.[a-z_.*]+)`", section))
    metrics = {
        n.replace("<layer>", "block2") for n in names if "/" in n and not n.endswith(("/...", ".py", ".csv", "/*"))
    }
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


def test_the_next_commands_work_pasted_from_another_directory(tiny_http, tmp_path):
    """The summary's "next" commands name the environment's executables, the sweep and the store by absolute path,
    and the best trial (chosen on validation data): pasted in another directory, with no ssl_ray variable set, each
    succeeds (``resume`` aside: it is tested in test_fault_tolerance). Every trial line has its time."""
    import re
    import shlex
    import subprocess

    from ssl_ray.reports.selection import select
    from ssl_ray.reports.source import load_sweep

    tmp, base, proc, env = tiny_http
    out = proc.stdout
    block = out.split("\nnext:\n", 1)[1]
    cmds = {what.strip().rstrip(":"): cmd.strip() for what, cmd in re.findall(r"^  (\S.*):\n    (.+)$", block, re.M)}
    assert len(cmds) == 5, cmds
    data = load_sweep(str(tmp / "sweeps" / "tiny"), base)
    best = data.trial(select(data).best_trial).run_id
    assert f"--run-id {best} " in cmds["take the best trial's network away"]
    assert f"--run-id {best} " in cmds["fill missing probes of the best trial"]
    for cmd in cmds.values():
        assert shlex.split(cmd)[0].startswith(str(ROOT / ".venv" / "bin")), cmd
    assert re.search(r"run \w{32}  \d+ s", out), out[-2000:]  # each trial line ends with its elapsed time
    clean = {k: v for k, v in env.items() if not k.startswith(("SSL_RAY_", "MLFLOW_"))}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for what, cmd in cmds.items():
        if what.startswith("continue"):
            assert cmd.endswith(f"resume {tmp / 'sweeps' / 'tiny'}")
            continue
        done = subprocess.run(cmd, shell=True, cwd=elsewhere, env=clean, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (what, cmd, done.stdout[-2000:], done.stderr[-2000:])
    assert (elsewhere / "backbone" / "backbone.json").is_file() and not (elsewhere / "results").exists()
    assert (tmp / "tiny" / "fig1_ncc.png").is_file()  # the report beside the sweep (tmp/sweeps/tiny), not in the cwd
