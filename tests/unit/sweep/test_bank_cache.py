"""A target bank is cached by what determines it (the classifier's data, network, optimizer, length and seed), so
a second sweep on the same data and network reuses it at once, without Ray; its MLflow run lives in the banks'
own experiment with only those settings as params, and the sweep's run names it."""

import io
import subprocess
import sys
import threading

import numpy as np

from ssl_ray.config import ExperimentConfig, SweepConfig
from ssl_ray.probes.target_bank import TargetBank
from ssl_ray.sweep.bank import bank_config, ensure_target_bank
from ssl_ray.sweep.bank_cache import (
    BANK_FILE,
    BANKS_EXPERIMENT,
    TAG_BANK_KEY,
    bank_key,
    bank_lock,
    bank_params,
    cached_bank_dir,
    estimate_seconds,
)
from ssl_ray.tracking import TAG_BANK_PATH, TAG_BANK_RUN, client, get_or_create_bank_run, get_or_create_parent_run


def experiment(**sections) -> ExperimentConfig:
    return ExperimentConfig().replace(**sections)


def key(**sections) -> str:
    return bank_key(bank_config(experiment(**sections)))


def test_the_key_is_what_determines_the_bank():
    k = key()
    # the SSL objective, the probes and the resources do not change the classifier's labels
    assert key(objective={"name": "simclr", "temperature": 0.2}) == k
    assert key(probe={"targets": ["class", "random_1.0"], "mine_seeds": 2}) == k
    assert key(train={"cpus_per_worker": 2.0, "epochs": 3}) == k  # a 3-epoch sweep shares the 20-epoch bank
    assert bank_key(bank_config(experiment(), cpus=2)) == k
    # its data, network, optimizer, length and seed stream do
    for other in (
        {"model": {"width": 16}},
        {"data": {"image_size": 12}},
        {"optim": {"lr": 0.01}},
        {"probe": {"bank_epochs": 12}},
        {"train": {"seed": 1}},
    ):
        assert key(**other) != k, other
    params = bank_params(bank_config(experiment()))
    assert not any(p.startswith(("objective.", "probe.")) for p in params) and params["train.mode"] == "supervised"


def valid_bank() -> TargetBank:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 400)
    rows, acc = [], []
    for a in np.linspace(0.1, 1.0, 8):
        lab = np.where(rng.random(400) < a, truth, rng.integers(0, 10, 400))
        rows.append(lab)
        acc.append((lab == truth).mean())
    rows = np.stack(rows)
    return TargetBank(np.arange(8), rows[:, :300], rows[:, 300:], np.array(acc), 10).check()


def test_a_cached_bank_is_reused_without_ray_and_named_on_the_sweeps_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = SweepConfig(
        name="second",
        base=experiment(objective={"name": "simclr"}),
        storage_path=str(tmp_path / "sweeps"),
        mlflow_uri=uri,
    )
    bcfg = bank_config(sweep.base)
    bdir = cached_bank_dir(tmp_path / "sweeps", bcfg)
    valid_bank().save(bdir / BANK_FILE)  # what a first sweep (VICReg, say) left
    saved = (bdir / BANK_FILE).read_bytes()
    first = get_or_create_bank_run(uri, BANKS_EXPERIMENT, TAG_BANK_KEY, bank_key(bcfg))
    parent = get_or_create_parent_run(uri, "second", str(tmp_path / "sweeps" / "second"), {}, create=True)
    out = io.StringIO()
    path = ensure_target_bank(sweep, tmp_path / "sweeps" / "second", uri, parent, out)
    # reused as it was: nothing trained (no Ray: tests/conftest.py fails a unit test that starts it), nothing rewritten
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    assert path == str(bdir / BANK_FILE) and "[bank] reusing the target bank" in out.getvalue()
    assert (bdir / BANK_FILE).read_bytes() == saved
    tags = client(uri).get_run(parent).data.tags
    assert tags[TAG_BANK_PATH] == path and tags[TAG_BANK_RUN] == first
    # the banks' experiment is not the sweep's: no bank run among a sweep's runs
    c = client(uri)
    assert c.get_run(first).info.experiment_id != c.get_run(parent).info.experiment_id
    assert c.get_experiment_by_name(BANKS_EXPERIMENT).tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_bank_lock_makes_a_second_sweep_wait(tmp_path):
    """While another process holds a bank's lock, a second taker waits; it gets the lock once the holder lets go."""
    bdir = tmp_path / "_banks" / "k"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import sys
from pathlib import Path
from ssl_ray.sweep.bank_cache import bank_lock
with bank_lock(Path({str(bdir)!r})):
    print("held", flush=True)
    sys.stdin.readline()  # until the test lets go
""",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        let_go, taken, order = threading.Event(), threading.Event(), []

        def take():
            with bank_lock(bdir):
                order.append(let_go.is_set())
                taken.set()

        threading.Thread(target=take, daemon=True).start()
        assert not taken.wait(1.0)  # the holder has it: the second taker waits
        let_go.set()
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert taken.wait(60) and order == [True]  # taken, and only after the holder was told to let go
    finally:
        holder.kill() if holder.poll() is None else None
        holder.wait(timeout=30)


def test_the_estimate_comes_from_an_earlier_bank_of_the_same_data_and_network(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    bcfg = bank_config(experiment(train={"seed": 1}))
    assert estimate_seconds(c, bcfg) is None
    from ssl_ray.tracking import log_params

    earlier = bank_config(experiment())  # another seed: same data and network
    run = get_or_create_bank_run(uri, BANKS_EXPERIMENT, TAG_BANK_KEY, bank_key(earlier))
    log_params(c, run, bank_params(earlier))
    start = c.get_run(run).info.start_time
    c.set_terminated(run, "FINISHED", end_time=start + 40_000)  # 40 s for 20 epochs
    assert abs(estimate_seconds(c, bcfg) - 40.0) < 1e-6
    assert estimate_seconds(c, bank_config(experiment(model={"width": 8}))) is None  # another network: no estimate
