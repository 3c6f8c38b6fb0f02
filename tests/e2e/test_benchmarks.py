"""The benchmarks run and hold their targets: our training loop >= 90% of a bare PyTorch loop's images/s;
FFCV >= 5x a torchvision DataLoader with the same 2-view SimCLR augmentations at 32 px; the probe engine
>= 5x the forward-per-target + scikit-learn approach with every accuracy within a point; the probe
fan-out's parallel efficiency; the GPU check's dry run; MLflow under concurrent writers on PostgreSQL and SQLite,
with nothing lost or duplicated.

The default suite runs each benchmark's ``--quick`` mode, which still computes and gates its ratio in the
same run; the full runs (the figures in results/benchmarks/) are marked ``bench``: ``pytest -m bench``."""

import json
import subprocess

import pytest
from conftest import PY, ROOT, run_many


def test_loader_benchmark_ffcv_beats_torchvision_5x(tmp_path):
    out = tmp_path / "loader.json"
    proc = subprocess.run(
        [PY, str(ROOT / "benchmarks" / "loader.py"), "--quick", "--sizes", "32", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["views"] == 2 and report["protocol"] == "simclr"
    (r,) = report["results"]
    assert r["size"] == 32
    for loader in ("ffcv", "torchvision", "memory"):
        assert r[loader]["images"] > 0 and r[loader]["images_per_s"] > 0
    assert r["ratio_ffcv_vs_torchvision"] == round(r["ffcv"]["images_per_s"] / r["torchvision"]["images_per_s"], 2)
    assert r["ratio_ffcv_vs_torchvision"] >= 5.0, r
    assert "ffcv/torchvision" in proc.stdout


def run_benchmark(tmp_path, script: str, *args):
    """``benchmarks/<script>.py <args> --out <json>``: its JSON (asserting exit 0) and the process."""
    out = tmp_path / f"{script}.json"
    proc = subprocess.run(
        [PY, str(ROOT / "benchmarks" / f"{script}.py"), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    r = json.loads(out.read_text()) if out.exists() else {}
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return r, proc


def run_probe_benchmark(tmp_path, *args):
    r, proc = run_benchmark(tmp_path, "probes", *args)
    assert r["targets"] == ["sample", "class", "permuted_0.5", "permuted_1.0"]
    assert len(r["accuracies"]) == 2 * len(r["layers"]) * 4  # NCC and linear test accuracy per layer x target
    assert r["max_ncc_diff"] < 1e-9 and r["max_cdnv_rel_diff"] < 1e-6
    assert r["max_linear_diff"] <= r["linear_tolerance"] and r["max_linear_diff_chance"] <= 0.02, r
    assert r["ratio"] >= 5.0, r
    assert "speed-up" in proc.stdout
    return r


def test_probe_benchmark_quick(tmp_path):
    """The quick mode: the recipe's model at initialization, 3 layers; the same gates (2 points on its flatter
    linear problems)."""
    r = run_probe_benchmark(tmp_path, "--quick")
    assert r["quick"] and r["layers"] == ["block2", "block4", "projector"] and r["linear_tolerance"] == 0.02


@pytest.mark.bench
def test_probe_benchmark_engine_beats_sklearn_5x_within_a_point(tmp_path):
    """Every layer x sample/class/2 random targets x NCC, CDNV, linear on a real trained checkpoint:
    ours (one forward pass, closed forms, joint L-BFGS) against a forward per (layer, target) plus
    scikit-learn, in the same run."""
    r = run_probe_benchmark(tmp_path, "--epochs", "4")
    assert len(r["layers"]) == 6 and r["linear_tolerance"] == 0.01


@pytest.mark.bench
def test_probe_fanout_benchmark_parallel_efficiency(tmp_path):
    out = tmp_path / "fanout.json"
    proc = subprocess.run(
        [PY, str(ROOT / "benchmarks" / "probe_fanout.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["values"] == len(r["checkpoints"]) * r["metric_keys"]
    assert r["parallel_efficiency"] > 0.6, r


def run_train_benchmark(tmp_path, *args):
    out = tmp_path / "train.json"
    proc = subprocess.run(
        [PY, str(ROOT / "benchmarks" / "train_throughput.py"), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert all(x > 0 for side in ("ours", "bare") for run in r[side]["runs"] for x in run["epochs"])
    assert len(r["bare"]["runs"]) == len(r["ours"]["runs"]) + (
        0 if r["quick"] else 1
    )  # bare, ours, bare, ...; quick: bare, ours
    assert r["ratio_ours_vs_bare"] == round(r["ours"]["images_per_s"] / r["bare"]["images_per_s"], 3)
    assert 0 < r["mfu_ours"] < 1.5 and r["model_gflops_per_image"] > 0 and r["peak_tflops_measured"] > 0
    assert "ours/bare" in proc.stdout
    return r


def test_train_throughput_quick(tmp_path):
    """Quick mode: 3 epochs (1 not counted), one round, both loops in the benchmark's process (ours in Ray
    Train's local mode, so no Ray start-up). Two counted epochs of a few seconds swing by +-15% on a shared
    machine (0.88 and 1.11 measured back to back), so its gate is 0.75: it catches a loop that loses a
    quarter of its speed (a checkpoint or an MLflow write per step); the 0.90 gate is the full run's, with
    Ray Train's workers."""
    r = run_train_benchmark(tmp_path, "--quick")
    assert r["config"]["counted_epochs"] == 2 and len(r["ours"]["runs"]) == 1
    assert r["ours_mode"] == "ray_train_local_mode"
    assert r["ratio_ours_vs_bare"] >= 0.75, {k: r[k] for k in ("ratio_ours_vs_bare", "ours", "bare")}
    # the online readings (k-NN and RankMe, every epoch, as the default run reads them): at most 10% of an epoch
    assert 0 < r["online_share_of_epoch"] <= 0.10, r["online_share_of_epoch"]


@pytest.mark.bench
def test_train_throughput_our_loop_keeps_90_percent_of_a_bare_loop(tmp_path):
    """Our Ray Train loop (checkpoint every epoch, reports, collapse monitor, MLflow) against a bare PyTorch
    loop of the same model, batch and data, in the same run; and model FLOPs utilization against the
    CPU's measured matmul peak."""
    r = run_train_benchmark(tmp_path)
    assert r["config"]["counted_epochs"] == len(r["ours"]["runs"][0]["epochs"]) - 2 >= 3
    assert len(r["ours"]["runs"]) == 2 and len(r["bare"]["runs"]) == 3  # bare, ours, bare, ours, bare
    assert r["ours_mode"] == "ray_train_workers"
    # the loop's own overhead (the online readings are a feature with their own budget, below)
    assert r["ratio_training_vs_bare"] >= 0.90, {k: r[k] for k in ("ratio_training_vs_bare", "ours", "bare")}
    assert 0 < r["online_share_of_epoch"] <= 0.10, r["online_share_of_epoch"]


@pytest.mark.slow  # 22 s; a GPU machine runs the real check (benchmarks/gpu_check.py), this only keeps it from rotting
def test_gpu_check_dry_run(tmp_path):
    """Without a GPU the check says so in one line and, with --dry-run, runs every step at toy size on the CPU
    (so it cannot rot): a resume after SIGKILL gives the same loss sequence bit for bit, the probe step's
    accuracies agree, and ResNet-50 at 224 px counts the FLOPs it should (8.2 GFLOPs forward per view; forward
    + backward = 3x; 2 views: about 49)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU machine runs the real check")
    out = tmp_path / "gpu.json"
    no_dry, proc = run_many(
        [
            [PY, str(ROOT / "benchmarks" / "gpu_check.py")],
            [PY, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
        ],
        timeout=600,
        cwd=ROOT,
    )
    assert no_dry.returncode == 1 and no_dry.stdout.strip().splitlines() == [no_dry.stdout.strip()]
    assert no_dry.stdout.startswith("gpu_check: no CUDA GPU on this machine")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith("gpu_check: no CUDA GPU on this machine")
    r = json.loads(out.read_text())
    assert r["dry_run"] and r["ok"] and r["device"] == "cpu"
    assert r["resume"]["same_loss_sequence"] and r["resume"]["returncode_killed"] == -9
    assert len(r["resume"]["losses_resumed"]) == r["resume"]["steps"] == 12
    assert len(set(r["resume"]["losses_reference"])) > 6  # the losses move: a fixed sequence would prove nothing
    assert r["probes"]["max_accuracy_diff"] <= 0.005 and min(r["probes"]["accuracy_cpu"]) > 0.5  # learnable classes
    assert 45 < r["train"]["model_gflops_per_image"] < 52, r["train"]
    assert all(x > 0 for x in r["train"]["toy_bare_images_per_s"])


def run_search_benchmark(tmp_path, *args):
    out, fig = tmp_path / "search.json", tmp_path / "search.png"
    proc = subprocess.run(
        [PY, str(ROOT / "benchmarks" / "search.py"), *args, "--out", str(out), "--figure", str(fig)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert fig.stat().st_size > 10_000
    assert r["space"]["configurations"] == 57 and r["target"] == round(r["reference_best"] - 0.01, 4)
    for m in ("random_fifo", "optuna_asha", "bohb"):
        runs = r["methods"][m]
        assert len(runs["trial_epochs"]) == r["seeds"] and all(runs["reached"]), runs
    return r


@pytest.mark.slow  # 47 s of replayed searches; the figures are committed (results/benchmarks/search.json)
def test_search_benchmark_quick(tmp_path):
    """Three seeds of each method on the committed table (its readings were trained by our loop): Optuna +
    ASHA and BOHB reach the best within 1 point in under half of random search's trial-epochs. The searches
    replay recorded readings one trial at a time, so the figures do not depend on the machine's speed."""
    r = run_search_benchmark(tmp_path, "--seeds", "3")
    assert r["speedup_vs_random"]["optuna_asha"] >= 2 and r["speedup_vs_random"]["bohb"] >= 2, r["speedup_vs_random"]


@pytest.mark.bench
def test_search_benchmark_median_speedup(tmp_path):
    r = run_search_benchmark(tmp_path)
    assert r["seeds"] >= 10
    assert min(r["speedup_vs_random"].values()) >= 2, r["speedup_vs_random"]


def run_tracking_load(tmp_path, *args):
    r, proc = run_benchmark(tmp_path, "tracking_load", *args)
    assert {(x["backend"], x["writers"]) for x in r["results"]} == {
        (b, n) for b in ("sqlite", "postgresql") for n in r["writers"]
    }
    for x in r["results"]:  # every value written once, read back once, as written
        assert x["values"] == x["writers"] * r["keys_per_batch"] * r["batches_per_writer"] and x["writes_per_s"] > 0, x
        assert x["lost"] == x["duplicated"] == x["wrong"] == x["failed"] == 0, x
    assert set(r["ratio_postgresql_vs_sqlite"]) == {str(n) for n in r["writers"]}
    assert "postgresql/sqlite writes per second" in proc.stdout
    return r


def test_tracking_load_quick(tmp_path, postgres_server):
    """8 writer processes at once (each starting MLflow's client: most of the time), each logging batches to its own
    run through MetricWriter, against an ``mlflow server`` on SQLite and one on PostgreSQL (conftest's server):
    nothing lost, duplicated or altered. The 16- and 64-writer run is ``-m bench``."""
    r = run_tracking_load(
        tmp_path, "--quick", "--writers", "8", "--postgres", postgres_server.database("tracking_load")
    )
    assert r["quick"] and r["writers"] == [8] and r["server_workers"] == 1


@pytest.mark.bench
def test_tracking_load_16_and_64_writers(tmp_path):
    r = run_tracking_load(tmp_path)
    assert r["writers"] == [16, 64] and r["server_workers"] == 4
