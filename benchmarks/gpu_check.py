"""The GPU check, one command: every CUDA path of ssl_ray measured on the machine's GPU, in one JSON.

    .venv/bin/python benchmarks/gpu_check.py              # a CUDA machine: -> results/benchmarks/gpu.json (< 8 min)
    .venv/bin/python benchmarks/gpu_check.py --dry-run    # anywhere (CI): every step at toy size on the CPU

Steps, each against a baseline in the same run:

1. ``train``: the training loop's CUDA path -- ResNet-50 at 224 px, 2 views, FFCV decoding straight to the
   GPU (``ToDevice``), bf16 autocast, channels-last -- as a Ray Train trial runs it (checkpoints, reports,
   MLflow), against the same model in a bare PyTorch loop (``benchmarks/train_throughput.py`` does both):
   images/s, the ratio ours/bare, and MFU against the GPU's bf16 matmul peak measured in the same run.
2. ``probes``: the probe engine's linear probes (one L-BFGS softmax problem for several label sets) on
   the GPU against the same on the CPU: the same accuracies (within 0.5 point) and the speed-up.
3. ``resume``: a CUDA training process killed with SIGKILL right after a checkpoint, resumed from it in a
   new process, must produce the same loss sequence, bit for bit, as one that was never killed: the
   checkpoint's RNG state (CUDA's included: dropout and noise drawn on the GPU) and optimizer state are
   complete.

Without a CUDA GPU it says so in one line; with ``--dry-run`` it then runs every step at toy size on the
CPU (so the script cannot rot: CI runs it) and exits 0, writing to ``--out`` only when asked.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


# -- 1. the training loop ------------------------------------------------------------------------------

GPU_ARGS = [
    "--backbone",
    "resnet50",
    "--image-size",
    "224",
    "--batch-size",
    "128",
    "--projector-dims",
    "2048",
    "2048",
    "--loader",
    "ffcv",
    "--epochs",
    "5",
    "--rounds",
    "1",
]


def train_step(dry: bool, tmp: Path) -> dict:
    """On the GPU: ``train_throughput.py`` with ResNet-50 at 224 px (ours and bare, MFU). A dry run builds and
    validates that very config (FFCV .beton, ResNet-50 at 224 px), counts its FLOPs, and runs the bare
    loop's code at toy size; the Ray Train side is ``train_throughput.py --quick``'s own test."""
    import train_throughput

    if dry:
        return dry_train_step(tmp)
    out = tmp / "train.json"
    train_throughput.main([*GPU_ARGS, "--out", str(out)])
    r = json.loads(out.read_text())
    return {
        "config": r["config"],
        "images_per_s_ours": r["ours"]["images_per_s"],
        "images_per_s_bare": r["bare"]["images_per_s"],
        "ratio_ours_vs_bare": r["ratio_ours_vs_bare"],
        "mfu_ours": r["mfu_ours"],
        "mfu_bare": r["mfu_bare"],
        "peak_tflops_measured": r["peak_tflops_measured"],
        "model_gflops_per_image": r["model_gflops_per_image"],
        "command": "benchmarks/train_throughput.py " + " ".join(GPU_ARGS),
    }


def dry_train_step(tmp: Path) -> dict:
    import train_throughput

    from ssl_ray.data.beton import write_beton
    from ssl_ray.data.datasets import load_dataset

    cpu = torch.device("cpu")
    beton = str(write_beton(load_dataset("digits", "test", image_size=32), tmp / "digits.beton", num_workers=1))
    full = train_throughput.experiment(
        _ns(backbone="resnet50", image_size=224, batch_size=128, projector_dims=[2048, 2048], epochs=5, cpus=1),
        True,
        beton,
    )
    gflops = train_throughput.flops_per_image(full) / 1e9
    toy = train_throughput.experiment(
        _ns(backbone="res", image_size=16, batch_size=64, projector_dims=[32, 32], epochs=2, cpus=1), False, beton
    )
    rates = train_throughput.bare_loop(toy, cpu, 1)
    return {
        "config": {"backbone": "resnet50", "image_size": 224, "loader": "ffcv", "views": 2},
        "model_gflops_per_image": round(gflops, 2),
        "toy_bare_images_per_s": [round(r, 1) for r in rates],
    }


def _ns(**kw) -> argparse.Namespace:
    return argparse.Namespace(**kw)


# -- 2. linear probes on the GPU against the CPU -----------------------------------------------------


def gaussian_classes(n: int, d: int, k: int, seed: int = 0):
    """Features of ``k`` Gaussian classes whose means lie 2.5 sigma apart per direction (a known, learnable task)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g) * 2.5 / d**0.5 * 4
    y = torch.randint(0, k, (n,), generator=g)
    x = means[y] + torch.randn(n, d, generator=g)
    return x, y


def probes_step(dry: bool, device: torch.device) -> dict:
    from ssl_ray.probes.linear import softmax_probe_accuracies

    n, d, k = (2000, 64, 10) if dry else (50000, 2048, 100)
    x, y = gaussian_classes(2 * n, d, k)
    y2 = (y * 7 + 3) % k  # a second label set, fitted in the same problem
    args = (x[:n], [y[:n], y2[:n]], x[n:], [y[n:], y2[n:]], [k, k])
    timings, accs = {}, {}
    for name, dev in (("cpu", torch.device("cpu")), (device.type, device)):
        small = (x[:256], [y[:256], y2[:256]], x[n : n + 256], [y[n : n + 256], y2[n : n + 256]], [k, k])
        softmax_probe_accuracies(*small, max_iter=5, device=dev)  # warm-up: kernels, allocator
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        accs[name] = [round(test, 4) for _, test in softmax_probe_accuracies(*args, max_iter=100, device=dev)]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = time.perf_counter() - t0
    diff = max(abs(a - b) for a, b in zip(accs["cpu"], accs[device.type]))
    return {
        "n_train": n,
        "dim": d,
        "classes": k,
        "label_sets": 2,
        "accuracy_cpu": accs["cpu"],
        f"accuracy_{device.type}": accs[device.type],
        "max_accuracy_diff": round(diff, 4),
        "seconds_cpu": round(timings["cpu"], 3),
        f"seconds_{device.type}": round(timings[device.type], 3),
        "speedup": round(timings["cpu"] / timings[device.type], 2),
    }


# -- 3. resume after SIGKILL, CUDA RNG included ------------------------------------------------------


def resume_child(mode: str, ckpt: Path, steps: int, kill_at: int, device: str) -> None:
    """A small training run whose every step draws from the device's RNG (input noise, dropout). Prints
    each step's loss as a float hex; in ``kill`` mode it checkpoints after ``kill_at`` steps and waits to be
    killed; in ``resume`` mode it starts from that checkpoint."""
    from ssl_ray.checkpoints import load_state, write_state
    from ssl_ray.train.state import rng_state, set_rng_state

    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 16 * 16, 10),
    ).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start = 0
    if mode == "resume":
        s = load_state(ckpt, required=("model", "optimizer", "rng", "step"))
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["optimizer"])
        set_rng_state(s["rng"])
        start = int(s["step"])
    for step in range(start, steps):
        x = torch.randn(32, 3, 16, 16, device=dev)
        target = torch.randn(32, 10, device=dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = torch.nn.functional.mse_loss(model(x).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        print(f"loss {step} {loss.item().hex()}", flush=True)
        if mode == "kill" and step + 1 == kill_at:
            ckpt.mkdir(parents=True, exist_ok=True)
            write_state(
                ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(), "step": kill_at}
            )
            print("saved", flush=True)
            time.sleep(600)


def resume_step(device: torch.device, tmp: Path, steps: int = 12, kill_at: int = 5) -> dict:
    env = dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":4096:8")

    def child(mode: str) -> list:
        return [
            sys.executable,
            __file__,
            "--resume-child",
            mode,
            "--ckpt",
            str(tmp / "ckpt"),
            "--steps",
            str(steps),
            "--kill-at",
            str(kill_at),
            "--device",
            device.type,
        ]

    def losses(text: str) -> list:
        return [ln.split()[2] for ln in text.splitlines() if ln.startswith("loss ")]

    # the uninterrupted reference runs beside the run that will be killed (each a fresh process on the same device)
    full = subprocess.Popen(child("full"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = subprocess.Popen(child("kill"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    before = []
    for line in killed.stdout:  # until the checkpoint is written
        if line.strip() == "saved":
            break
        before.append(line)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    after = subprocess.run(child("resume"), capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    ref, err = full.communicate(timeout=300)
    if full.returncode != 0:
        raise subprocess.CalledProcessError(full.returncode, full.args, ref, err)
    resumed = losses("".join(before)) + losses(after)
    return {
        "steps": steps,
        "killed_after": kill_at,
        "killed_by": "SIGKILL",
        "returncode_killed": killed.returncode,
        "same_loss_sequence": resumed == losses(ref),
        "losses_reference": [float.fromhex(h) for h in losses(ref)],
        "losses_resumed": [float.fromhex(h) for h in resumed],
    }


# -- the command -------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="without a GPU: every step at toy size on the CPU, exit 0")
    p.add_argument(
        "--out", default=None, help="default: results/benchmarks/gpu.json (a dry run writes only when given)"
    )
    p.add_argument("--resume-child", choices=("full", "kill", "resume"), help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=12, help=argparse.SUPPRESS)
    p.add_argument("--kill-at", type=int, default=5, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.resume_child:
        resume_child(args.resume_child, Path(args.ckpt), args.steps, args.kill_at, args.device)
        return 0
    cuda = torch.cuda.is_available()
    if not cuda:
        print(
            f"gpu_check: no CUDA GPU on this machine (torch {torch.__version__}, cuda available: no)"
            + ("; dry run of every step at toy size on the CPU" if args.dry_run else "; nothing measured"),
            flush=True,
        )
        if not args.dry_run:
            return 1
    dry = args.dry_run or not cuda
    device = torch.device("cuda" if cuda and not args.dry_run else "cpu")
    t0 = time.time()
    report = {
        "benchmark": "gpu_check",
        "dry_run": dry,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }

    def timed(step) -> dict:
        s0 = time.time()
        out = step()
        out["seconds"] = round(time.time() - s0, 1)
        return out

    with tempfile.TemporaryDirectory() as tmp_dir, ThreadPoolExecutor(max_workers=1) as side:
        tmp = Path(tmp_dir)
        # a dry run measures nothing: its resume processes run beside the other steps (on a GPU they would
        # share the device with the throughput run, so there they run last)
        resume = side.submit(timed, lambda: resume_step(device, tmp)) if dry else None
        for name, step in (
            ("train", lambda: train_step(dry, tmp)),
            ("probes", lambda: probes_step(dry, device)),
            ("resume", lambda: resume_step(device, tmp)),
        ):
            report[name] = resume.result() if name == "resume" and resume else timed(step)
            print(f"gpu_check {name}: {summary(name, report[name], device)}", flush=True)
    report["seconds"] = round(time.time() - t0, 1)
    ok = report["resume"]["same_loss_sequence"] and report["probes"]["max_accuracy_diff"] <= 0.005
    report["ok"] = bool(ok)
    out = args.out or (None if dry else str(ROOT / "results" / "benchmarks" / "gpu.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    print(f"gpu_check: {'ok' if ok else 'FAILED'} in {report['seconds']:.0f} s")
    return 0 if ok else 1


def summary(name: str, r: dict, device: torch.device) -> str:
    if name == "train" and "images_per_s_ours" not in r:
        return f"ResNet-50 at 224 px, 2 views: {r['model_gflops_per_image']:.1f} GFLOPs per image; toy bare loop ran"
    if name == "train":
        return (
            f"ours {r['images_per_s_ours']:.0f} img/s, bare {r['images_per_s_bare']:.0f} img/s, ours/bare "
            f"{r['ratio_ours_vs_bare']:.3f}, MFU {r['mfu_ours']:.1%} of {r['peak_tflops_measured']:.1f} TFLOP/s "
            f"({r['config']['precision']})"
        )
    if name == "probes":
        return (
            f"linear probes {device.type} {r[f'seconds_{device.type}']:.2f} s vs cpu {r['seconds_cpu']:.2f} s: "
            f"speed-up {r['speedup']:.1f}x, max accuracy difference {r['max_accuracy_diff']:.4f}"
        )
    return f"killed after step {r['killed_after']} and resumed: same loss sequence: {r['same_loss_sequence']}"


if __name__ == "__main__":
    sys.exit(main())
