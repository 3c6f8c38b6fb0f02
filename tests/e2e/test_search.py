"""Search on what the study measures: Optuna with ASHA over a conditional space of objectives, reading the
online k-NN accuracy every epoch; a killed driver resumed into the same Optuna study; PBT exploiting one
trial's checkpoint in another. Real Ray Tune, Ray Train and MLflow stores; real SIGKILLs."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PY, ROOT, clean_environ, run_sweep_script
from test_fault_tolerance import kill_tree, tune_terminated

# two objectives, each with its own coefficient (searched only where it applies), on a small network
SPACE = [
    "--search",
    "objective.name={choice: [vicreg, simclr]}",
    "--search",
    "objective.lam={loguniform: [1.0, 50.0], when: {objective.name: vicreg}}",
    "--search",
    "objective.temperature={loguniform: [0.05, 2.0], when: {objective.name: simclr}}",
]
SMALL = [
    "--epochs",
    "3",
    "--set",
    "model.depth=2",
    "--search",
    "model.width={choice: [8]}",
    "--set",
    "model.projector_dims=[32,32]",
    "--set",
    "train.checkpoint_epochs=[1,3]",
    "--set",
    "probe.metrics=[ncc]",
    "--no-report",
]


def searched(run) -> tuple:
    p = run.data.params
    return tuple(p.get(k) for k in ("objective.name", "objective.lam", "objective.temperature"))


@pytest.fixture(scope="module")
def optuna_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("optuna")
    return run_sweep_script(
        "search_objectives.py",
        "optuna_tiny",
        tmp,
        *SPACE,
        *SMALL,
        "--num-samples",
        "4",
        env=clean_environ(tmp),
        timeout=900,
    )


def test_parent_records_search_and_every_trial_reads_online_every_epoch(optuna_sweep):
    s = optuna_sweep
    p = s.parent.data.params
    assert (p["search_alg"], p["scheduler"], p["scheduler_metric"], p["scheduler_mode"]) == (
        "optuna",
        "asha",
        "online/knn_val",
        "max",
    )
    assert len(s.trials) == 4
    # a trial ASHA stops is recorded as stopped, never as errored (its process ends while it is tagged)
    assert {r.data.tags["ssl_ray.status"] for r in s.trials} <= {"finished", "stopped"}
    for r in s.trials:
        trained = [m.step for m in s.client.get_metric_history(r.info.run_id, "train/loss")]
        assert trained, r.data.tags
        for key in ("online/knn_val", "online/rankme"):
            steps = sorted(m.step for m in s.client.get_metric_history(r.info.run_id, key))
            assert steps == list(range(0, max(trained) + 1)), (key, steps)  # the initialization and every epoch
        knn = s.client.get_metric_history(r.info.run_id, "online/knn_val")
        assert all(0.0 <= m.value <= 1.0 for m in knn)
    out = s.proc.stdout
    for r in s.trials:  # the console's epoch line carries the readings beside the loss
        tid = r.data.tags["ssl_ray.trial_id"]
        lines = [ln for ln in out.splitlines() if ln.startswith(f"[trial {tid}]") and " epoch " in ln]
        trained = max(m.step for m in s.client.get_metric_history(r.info.run_id, "train/loss"))
        # a trial ASHA stops may log one more epoch to MLflow before its workers stop: that result never reaches Tune
        low = trained - 1 if r.data.tags["ssl_ray.status"] == "stopped" else trained
        assert low <= len(lines) <= trained, (r.data.tags["ssl_ray.status"], lines)
        assert all("loss" in ln and "kNN val" in ln and "RankMe" in ln for ln in lines), lines


def test_a_coefficient_is_searched_only_where_its_objective_runs(optuna_sweep):
    names = set()
    for r in optuna_sweep.trials:
        name, lam, temperature = searched(r)
        names.add(name)
        if name == "vicreg":
            assert lam is not None and temperature is None
        else:
            assert temperature is not None and lam is None
    assert len({searched(r) for r in optuna_sweep.trials}) == 4  # four different proposals


@pytest.mark.slow
def test_killed_driver_resumes_the_same_optuna_study(tmp_path):
    """SIGKILL the driver (and Ray) once two trials have ended; ``--resume`` restores the searcher with Tune's
    experiment state. A searcher restarted from scratch with the same seed would propose the first trials'
    configurations again."""
    from mlflow.tracking import MlflowClient

    env = dict(clean_environ(tmp_path), TUNE_GLOBAL_CHECKPOINT_S="1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "sweeps" / "resume_optuna"
    cmd = [
        PY,
        str(ROOT / "experiments" / "search_objectives.py"),
        "--name",
        "resume_optuna",
        *SPACE,
        *SMALL,
        "--num-samples",
        "5",
        "--max-concurrent-trials",
        "1",
        "--storage-path",
        str(tmp_path / "sweeps"),
        "--mlflow-uri",
        uri,
        "--num-cpus",
        "2",
    ]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
    deadline = time.time() + 600
    try:
        while len(tune_terminated(sweep_dir)) < 2:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline
            time.sleep(0.5)
        kill_tree(proc.pid)
        proc.wait(timeout=60)
    finally:
        log.close()
        if proc.poll() is None:
            kill_tree(proc.pid)
    before = {t: c for t, c in configs(sweep_dir).items() if t in tune_terminated(sweep_dir)}
    assert len(before) >= 2
    out = subprocess.run(
        [PY, "-m", "ssl_ray.cli", "resume", str(sweep_dir), "--num-cpus", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    after = configs(sweep_dir)
    assert len(after) == 5 and all(after[t] == c for t, c in before.items())  # finished trials kept as they were
    assert len(set(after.values())) == 5, after  # no configuration proposed twice
    study = optuna_study(sweep_dir)
    assert len(study.trials) == 5  # one study: the trials before the kill and after it
    told = [t.params for t in study.trials]  # every trial before the kill is one of the study's
    assert all(any(all(p.get(k) == v for k, v in params(c).items()) for p in told) for c in before.values())
    runs = [
        r
        for r in MlflowClient(uri).search_runs(
            [MlflowClient(uri).get_experiment_by_name("resume_optuna").experiment_id]
        )
        if r.data.tags.get("ssl_ray.kind") == "trial"
    ]
    assert len(runs) == 5


def configs(sweep_dir: Path) -> dict:
    """``{trial id: searched values}`` from Tune's newest experiment state."""
    state = sorted(sweep_dir.glob("experiment_state-*.json"))[-1]
    trials = [json.loads(t[0]) for t in json.loads(state.read_text())["trial_data"]]
    out = {}
    for t in trials:
        cfg = t["config"]
        obj = cfg["objective"]
        out[t["trial_id"]] = (obj["name"], obj.get("lam"), obj.get("temperature"))
    return out


def params(c: tuple) -> dict:
    name, lam, temperature = c
    d = {"objective/name": name}
    if lam is not None:
        d["objective/lam"] = lam
    if temperature is not None:
        d["objective/temperature"] = temperature
    return d


def optuna_study(sweep_dir: Path):
    import pickle

    (state,) = sorted(sweep_dir.glob("searcher-state-*.pkl"))[-1:]
    with open(state, "rb") as f:
        saved = pickle.load(f)
    searcher = saved if not isinstance(saved, dict) else saved.get("searcher", saved)
    while not hasattr(searcher, "_ot_study") and hasattr(searcher, "searcher"):
        searcher = searcher.searcher
    if isinstance(searcher, dict):
        return searcher["_ot_study"]
    return searcher._ot_study


PBT = """name: pbt_tiny
search_alg: random
scheduler: pbt
pbt_interval: 2
num_samples: 2
report: false
base:
  data: {dataset: digits, image_size: 16, augment: digits, views: 2}
  model: {backbone: res, depth: 2, width: 8, projector_dims: [32, 32]}
  objective: {name: vicreg}
  optim: {optimizer: adamw, lr: 0.002, batch_size: 256, warmup_epochs: 1}
  train: {epochs: 3, cpus_per_worker: 0.95}
  probe: {targets: [class], metrics: [ncc]}
search_space:
  optim.lr: {loguniform: [0.00001, 0.01]}
"""


@pytest.mark.slow  # 70 s: synchronous PBT pauses and restarts every trial's Ray Train run at its interval
def test_pbt_exploits_a_checkpoint_tags_the_lineage_and_keeps_one_run_per_trial(tmp_path):
    from ssl_ray.tracking import TAG_KIND, TAG_PBT_LINEAGE, TAG_PBT_PARENT, TAG_TRIAL_ID, child_runs, client

    cfg = tmp_path / "pbt.yaml"
    cfg.write_text(PBT)
    env = clean_environ(tmp_path)
    out = subprocess.run(
        [PY, "-m", "ssl_ray.cli", "sweep", "--config", str(cfg), "--num-cpus", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    c = client(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("pbt_tiny")
    (parent,) = [r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get(TAG_KIND) == "sweep"]
    assert parent.data.params["scheduler"] == "pbt"
    trials = child_runs(c, parent.info.run_id)
    assert len(trials) == 2  # one MLflow run per trial, however often PBT restarted it
    ids = {r.data.tags[TAG_TRIAL_ID] for r in trials}
    exploited = [r for r in trials if TAG_PBT_LINEAGE in r.data.tags]
    assert exploited, "PBT performed no exploit"
    for r in exploited:
        assert r.data.tags[TAG_PBT_PARENT] in ids - {r.data.tags[TAG_TRIAL_ID]}
        assert "from" in r.data.tags[TAG_PBT_LINEAGE]
        # its weights came from the donor's Ray Train run, continued in a run of its own
        assert "-from-" in r.data.tags["ssl_ray.trial_dir"] and Path(r.data.tags["ssl_ray.trial_dir"]).is_dir()
        assert r.data.tags["ssl_ray.status"] == "finished"
    train_dirs = os.listdir(tmp_path / "results" / "sweeps" / "pbt_tiny" / "train")
    assert any("-from-" in d for d in train_dirs)
