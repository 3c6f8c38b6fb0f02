"""A sweep whose driver is SIGKILLed mid-sweep is finished by ``--resume`` without losing or repeating work.

Three trials run two at a time on a 2-CPU local Ray. Probe tasks (2 CPUs each here) cannot start while
any trial runs, so when the driver is killed -- as soon as Tune has recorded one trial as finished and
another is running with a few checkpoints -- the finished trial's probes are still missing. Before resuming, the
latest checkpoint of a trial Tune had not finished is damaged on disk (truncated, as by a full disk). ``--resume`` must
finish the running and pending trials from their checkpoints (the damaged one's from the checkpoint
before, leaving the damaged file as it is), leave the finished ones alone, and compute the missing probes.

The sweep runs from a fresh clone with every default location (results/ under the checkout), as a new user
runs the recipe, and the recipe's name is already taken by an earlier sweep: it must take a name of its own,
leave the earlier one as it was, and -- killed, resumed, reported -- leave the checkout clean for git.
"""

import hashlib
import json

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import PY, ROOT
from ssl_ray.probes.scoring import expected_keys

EPOCHS = 4
PROBED = [0, 1, 2, 4]
LAYERS = ["block1", "block2", "proj_hidden1", "projector"]
TARGETS = ["class", "permuted_1.0"]


def latest_registered(trial_dir: Path):
    """The checkpoint directory Ray Train will hand back on restart (its snapshot's latest)."""
    snap = trial_dir / "checkpoint_manager_snapshot.json"
    if not snap.is_file():
        return None
    try:
        latest = json.loads(snap.read_text()).get("latest_checkpoint_result")
    except ValueError:  # being rewritten
        return None
    return trial_dir / latest["checkpoint_dir_name"] if latest else None


def tune_terminated(sweep_dir: Path) -> set:
    """Trials Ray Tune has recorded as TERMINATED in its newest saved experiment state."""
    states = sorted(sweep_dir.glob("experiment_state-*.json"))
    if not states:
        return set()
    try:
        data = json.loads(states[-1].read_text())
    except ValueError:  # being rewritten
        return set()
    trials = [json.loads(t[0]) for t in data.get("trial_data", [])]
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


def descendants(pid: int) -> list:
    """Every process below ``pid`` (read from /proc before the kill: orphans are re-parented)."""
    children: dict = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, stack = [], [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def wait_for_exit(pids, timeout: float):
    """Seconds until none of ``pids`` is running any more (zombies count as gone); None after ``timeout``."""
    def alive(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    t0 = time.time()
    while time.time() - t0 < timeout:
        if not any(alive(p) for p in pids):
            return time.time() - t0
        time.sleep(0.2)
    return None


NAME = "vicreg_digits-2"  # the recipe's name, taken by an earlier sweep


def trial_runs(c):
    exp = c.get_experiment_by_name(NAME)
    if exp is None:
        return []
    return [r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get("ssl_ray.kind") == "trial"]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_RAY_RESULTS", "MLFLOW_TRACKING_URI")}
    env["PYTHONUNBUFFERED"] = "1"
    # an earlier sweep of the recipe holds its directory: this one must not join it
    earlier = clone / "results" / "sweeps" / "vicreg_digits" / "ssl_ray_sweep.yaml"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("name: vicreg_digits\n")
    uri = f"sqlite:///{clone / 'results' / 'mlflow.db'}"
    script = str(clone / "experiments" / "sweep_vicreg.py")
    cmd = [PY, script, "--epochs", str(EPOCHS), "--set", "model.depth=2", "--search", "model.width=[8]",
           "--search", "objective.lam=[5,10,25]", "--search", "objective.mu=[25]", "--search", "objective.nu=[1]",
           "--cpus-per-worker", "0.95", "--max-concurrent-trials", "2", "--set", "probe.metrics=[ncc]", "--set", "probe.num_cpus=2",
           "--set", "probe.targets=[class,permuted_1.0]", "--num-cpus", "2"]
    log = open(tmp / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=clone, env=env, start_new_session=True)
    c = MlflowClient(uri)
    sweep_dir = clone / "results" / "sweeps" / NAME
    deadline = time.time() + 600
    try:
        while True:
            assert proc.poll() is None, "the sweep ended before it could be killed:\n" + (tmp / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no trial finished in time"
            runs = trial_runs(c) if Path(uri[10:]).exists() else []
            damaged = [latest_registered(Path(r.data.tags["ssl_ray.trial_dir"])) for r in runs
                       if r.data.tags.get("ssl_ray.status") == "running" and "ssl_ray.trial_dir" in r.data.tags]
            damaged = [d for d in damaged if d is not None and int(d.name.split("_")[1]) >= 2]
            if tune_terminated(sweep_dir) and damaged:
                break
            time.sleep(0.5)
        # The driver and its local Ray (GCS, raylet, the workers still training), as when the head node is
        # lost: nothing may train or register a checkpoint after the one below is damaged.
        ray_procs = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        for pid in ray_procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=60)
        gone_in = wait_for_exit(ray_procs, timeout=60)
        before = {r.data.tags["ssl_ray.trial_id"]: r for r in trial_runs(c)}
    finally:
        log.close()
    assert gone_in is not None, "Ray's processes outlived SIGKILL by 60 s"
    assert ray_procs  # the kill took Ray's processes, not only the driver
    killed_at = time.time()
    finished_before = tune_terminated(sweep_dir)
    candidates = [latest_registered(Path(r.data.tags["ssl_ray.trial_dir"])) for t, r in before.items()
                  if t not in finished_before and "ssl_ray.trial_dir" in r.data.tags]
    candidates = [d for d in candidates if d is not None and int(d.name.split("_")[1]) >= 2]
    assert candidates, "no running trial with two checkpoints at the kill"
    bad = candidates[0] / "state.pt"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 3])
    bad_digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    out = subprocess.run([PY, script, "--resume", str(sweep_dir), "--num-cpus", "2"], capture_output=True, text=True,
                         cwd=clone, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    first = (tmp / "first.log").read_text()
    return c, sweep_dir, finished_before, killed_at, out, (bad, bad_digest), (clone, earlier, first)


def test_resume_completes_the_sweep_with_one_run_per_trial(resumed):
    c, _, finished_before, _, out, _, _ = resumed
    runs = trial_runs(c)
    assert len(runs) == 3 and len({r.data.tags["ssl_ray.trial_id"] for r in runs}) == 3
    assert all(r.data.tags["ssl_ray.status"] == "finished" for r in runs)
    assert finished_before and len(finished_before) < 3
    for r in runs:
        steps = sorted(m.step for m in c.get_metric_history(r.info.run_id, "train/loss"))
        assert steps == list(range(1, EPOCHS + 1)), (r.data.tags["ssl_ray.trial_id"], steps)


def test_finished_trials_are_not_rerun(resumed):
    c, sweep_dir, finished_before, killed_at, out, _, _ = resumed
    for r in trial_runs(c):
        tid = r.data.tags["ssl_ray.trial_id"]
        if tid in finished_before:
            ckpts = sorted((sweep_dir / "train" / tid).glob("epoch_*/state.pt"))
            assert len(ckpts) == EPOCHS + 1
            assert "ssl_ray.resumed_from" not in r.data.tags  # its trial function never ran again
            assert all(p.stat().st_mtime < killed_at for p in ckpts)  # nothing trained again


def test_damaged_latest_checkpoint_falls_back_to_the_one_before(resumed):
    c, _, _, _, out, (bad, digest), _ = resumed
    (run,) = [r for r in trial_runs(c) if r.data.tags["ssl_ray.trial_dir"] == str(bad.parent.parent)]
    assert str(bad.parent) in run.data.tags["ssl_ray.checkpoint_fallback"]
    epoch = int(bad.parent.name.split("_")[1])
    assert run.data.tags["ssl_ray.resumed_from"].startswith(f"epoch {epoch - 1} ")
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == digest  # left exactly as it was, not deleted
    redone = list(bad.parent.parent.glob(f"epoch_{epoch:04d}_r*/state.pt"))  # the epoch trained again, beside it
    assert len(redone) == 1


def test_every_trial_has_its_full_probe_set(resumed):
    c, _, finished_before, _, out, _, _ = resumed
    assert "missing probe task(s) of finished trials queued" in out.stderr
    queued = int(out.stderr.split("[resume]")[1].split(":")[1].split()[0])
    assert queued > 0  # the finished trial's probes were cut off by the kill and done on resume
    keys = expected_keys(TARGETS, LAYERS, ["ncc"])
    for r in trial_runs(c):
        for k in keys:
            steps = sorted(m.step for m in c.get_metric_history(r.info.run_id, k))
            assert steps == PROBED, (r.data.tags["ssl_ray.trial_id"], k, steps)
        assert r.data.tags.get("ssl_ray.probe.status") == "complete"


def test_a_run_takes_its_own_name_and_leaves_the_checkout_clean(resumed):
    """Run from a fresh clone with every default location, under the recipe's name that an earlier sweep
    holds: it becomes vicreg_digits-2 (and says so), the earlier sweep's file is left as it was, the report lands
    in results/vicreg_digits-2/, and -- killed, resumed, reported -- it writes only what git ignores (the
    committed reference report lives apart, in docs/results/)."""
    _, _, _, _, _, _, (clone, earlier, first) = resumed
    assert "holds an earlier sweep (kept as it is); this one is 'vicreg_digits-2'" in first
    assert earlier.read_text() == "name: vicreg_digits\n"
    assert (clone / "results" / NAME / "trials.md").is_file()
    assert not (clone / "results" / "vicreg_digits").exists()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True,
                            cwd=clone, check=True).stdout
    assert status == "", status
