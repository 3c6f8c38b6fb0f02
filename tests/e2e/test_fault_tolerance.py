"""Training survives real failures. One sweep of three trials through a real local Ray:

* two identical trials (same seed and config); in one of them a training worker SIGKILLs itself in the
  middle of epoch 3 (``SSL_RAY_FAULTS``: the rule fires once, in whichever of the two gets there first).
  Ray Train restarts the worker group from the latest checkpoint (epoch 2) and the trial finishes;
* a third trial with a learning rate of 1e30, which must be stopped as diverged while the others finish.

All three start from the weights of a ``state.pt`` given as ``train.init_checkpoint=<dir>/state.pt``:
validation normalizes it to the directory once, at the edge, and that normalized value is what each trial
and its worker receive and start from (the restarted worker from its own checkpoint instead).

The uninterrupted twin is the reference for the resumed one: same seed, same data order (a function of
(seed, epoch)), the RNG states restored from the checkpoint, one thread per worker.
"""

import json
import os

import pytest
import torch

from conftest import LIGHT_PROBES, run_sweep_script
from ssl_ray.faults import fired

EPOCHS = 4


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    faults = tmp / "faults.json"
    faults.write_text(json.dumps([{"site": "train.step", "match": {"epoch": 3, "step": 1}, "action": "sigkill"}]))
    init, weights = pretrained(tmp / "pretrained")
    run = run_sweep_script("sweep_vicreg.py", "ft", tmp, "--epochs", str(EPOCHS),
                           "--set", "model.depth=2", "--search", "model.width=[8]", "--search", "objective.lam=[25]",
                           "--search", "objective.mu=[25]", "--search", "objective.nu=[1]",
                           "--search", "optim.lr=[0.002,0.002,1e30]", "--cpus-per-worker", "0.6", *LIGHT_PROBES,
                           "--set", f"train.init_checkpoint={init / 'state.pt'}",
                           env=dict(os.environ, SSL_RAY_FAULTS=str(faults)), uri=uri)
    assert fired(faults) == 1  # the SIGKILL really happened
    return tmp, run.client, run.trials, run.proc, (init, weights, run.sweep_dir)


def pretrained(init):
    """A ``state.pt`` of the sweep's architecture, saved as if after 7 epochs of another run."""
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.models.build import model_from_config
    from ssl_ray.train.optim import build_optimizer, build_scheduler
    from ssl_ray.train.state import save_state

    cfg = ExperimentConfig.from_dict({"model": {"depth": 2, "width": 8}})
    torch.manual_seed(123)
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    init.mkdir()
    save_state(str(init), model=model, optimizer=opt, scheduler=build_scheduler(opt, 0, 10), epoch=7, cfg=cfg.to_dict(),
               mlflow_run_id=None)
    return init, model.state_dict()


def by_lr(runs, lr):
    return [r for r in runs if float(r.data.params["optim.lr"]) == lr]


def final_params(run):
    trial_dir = run.data.tags["ssl_ray.trial_dir"]
    state = torch.load(os.path.join(trial_dir, f"epoch_{EPOCHS:04d}", "state.pt"), weights_only=True)
    return state["model"]


def test_killed_worker_resumes_and_finishes_with_one_value_per_epoch(sweep):
    tmp, c, runs, _, _ = sweep
    assert len(runs) == 3  # one MLflow run per trial, never a second one for the restarted trial
    assert len({r.data.tags["ssl_ray.trial_id"] for r in runs}) == 3
    twins = by_lr(runs, 0.002)
    resumed = [r for r in twins if "ssl_ray.resumed_from" in r.data.tags]
    assert len(resumed) == 1, [r.data.tags for r in twins]
    run = resumed[0]
    # the latest checkpoint Ray Train had registered: epoch 2, or epoch 1 when the kill came before the
    # controller took in epoch 2's report (reports reach it asynchronously)
    assert run.data.tags["ssl_ray.resumed_from"].split()[:2] in (["epoch", "2"], ["epoch", "1"])
    assert run.data.tags["ssl_ray.status"] == "finished" and run.info.status == "FINISHED"
    for key in ("train/loss", "train/embedding_std", "train/lr"):
        steps = sorted(m.step for m in c.get_metric_history(run.info.run_id, key))
        assert steps == list(range(1, EPOCHS + 1)), (key, steps)  # no gap, no duplicate
    assert os.path.isfile(os.path.join(run.data.tags["ssl_ray.trial_dir"], f"epoch_{EPOCHS:04d}", "state.pt"))


def test_resumed_training_ends_with_the_same_parameters(sweep):
    """Tolerance: exact (bitwise). The resumed worker repeats the same float operations in the same order:
    same kernels on the same shapes, one thread (cpus_per_worker < 1 -> torch.set_num_threads(1)), the
    batch order and augmentations a function of (seed, epoch), and the optimizer, scheduler and RNG states
    restored from the checkpoint. Only a different reduction order -- another thread count, another
    device, nondeterministic GPU kernels -- would make it differ, by float rounding (about 1e-6 relative)."""
    _, _, runs, _, _ = sweep
    a, b = (final_params(r) for r in by_lr(runs, 0.002))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), (k, float((a[k].float() - b[k].float()).abs().max()))


def test_diverging_trial_is_stopped_and_recorded_while_the_others_finish(sweep):
    _, c, runs, proc, _ = sweep
    (bad,) = by_lr(runs, 1e30)
    assert bad.data.tags["ssl_ray.status"] == "diverged"
    assert "non-finite loss" in bad.data.tags["ssl_ray.stop_reason"]
    assert bad.info.status == "FAILED"
    # stopped at its first epoch: no checkpoint of the diverged state, no further epochs
    assert sorted(m.step for m in c.get_metric_history(bad.info.run_id, "train/loss")) == [1]
    assert not os.path.exists(os.path.join(bad.data.tags["ssl_ray.trial_dir"], "epoch_0001"))
    assert all(r.data.tags["ssl_ray.status"] == "finished" for r in by_lr(runs, 0.002))
    # the sweep summary shows it, with its reason, and does not pick it as the best trial
    assert "diverged" in proc.stdout and "non-finite loss in" in proc.stdout
    assert f"best trial {bad.data.tags['ssl_ray.trial_id']}" not in proc.stdout


def test_tune_records_the_stop(sweep):
    from ray.tune import ExperimentAnalysis

    tmp, _, _, _, _ = sweep
    trials = ExperimentAnalysis(str(tmp / "sweeps" / "ft")).trials
    status = sorted((t.config["optim"]["lr"], t.last_result["status"]) for t in trials)
    assert [s for _, s in status] == ["finished", "finished", "diverged"]
    assert all(t.status == "TERMINATED" for t in trials)  # stopped on purpose, not errored: never retried


def test_report_is_written_with_light_probes_and_a_diverged_trial(sweep):
    """The report at the sweep's end copes with what this sweep lacks (no linear, sample or superclass
    probes) and lists the diverged trial as such."""
    import csv
    import re

    _, _, _, proc, _ = sweep
    m = re.search(r"^report: 12 files in (\S+) ", proc.stdout, re.M)
    assert m, proc.stdout[-2000:]
    with open(os.path.join(m.group(1), "trials.csv")) as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["status"] for r in rows) == ["diverged", "finished", "finished"]
    assert all(r["best_layer"] for r in rows if r["status"] == "finished")


def test_every_trial_starts_from_the_weights_of_a_state_pt(sweep):
    from ssl_ray.checkpoints import load_state, trial_dir
    from ssl_ray.tracking import TAG_INIT_CHECKPOINT, TAG_TRIAL_ID

    _, _, runs, _, (init, weights, sweep_dir) = sweep
    for trial in runs:
        assert trial.data.params["train.init_checkpoint"] == str(init)  # the normalized form reached the trial
        assert trial.data.tags[TAG_INIT_CHECKPOINT] == str(init)  # and its worker, which loaded it
        start = load_state(trial_dir(sweep_dir, trial.data.tags[TAG_TRIAL_ID]) / "epoch_0000")
        assert start["epoch"] == 0 and set(start["model"]) == set(weights)
        for k, v in weights.items():  # epoch 0 of the trial is the pretrained network, not a fresh init
            assert torch.equal(start["model"][k], v), k


def test_a_sqlite_store_is_browsed_with_mlflow_ui(sweep):
    """The summary's browse line for a SQLite store (the HTTP server's is in the integration tests)."""
    tmp, _, _, proc, _ = sweep
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp / 'mlflow.db'} --host 127.0.0.1" in proc.stdout
