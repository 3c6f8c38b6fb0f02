"""Training throughput: our Ray Train loop against a bare PyTorch loop, and model FLOPs utilization.

Same run, same model, same batch, same data pipeline, same precision settings, same threads:

- ``ours``: ``ssl_ray.train.loop.train_loop_per_worker`` in a Ray Train ``TorchTrainer`` (one worker
  holding every core), exactly as a sweep trial runs it: per-epoch checkpoints (``train.resume_every``
  1), ``ray.train.report``, the collapse monitor, the online readings at every epoch
  (``train.online_every`` 1: k-NN accuracy and RankMe), and rank 0's MLflow logging to a SQLite store.
  ``online_share_of_epoch`` is the readings' own share of an epoch (they are timed in the loop), and
  ``ratio_training_vs_bare`` the ratio without them: the loop's own overhead. Its
  per-epoch ``train/images_per_s`` is timed from the end of one epoch's steps to the end of the next,
  so each figure includes the previous epoch's report, checkpoint and MLflow write.
- ``bare``: the same model, objective, optimizer and loader iterated by a plain loop (forward, objective,
  backward, step; nothing else), run as a Ray task holding the same CPUs (and GPU). So both loops run in
  Ray worker processes, which Ray starts at nice 15: a bare loop in this process would run at nice 0 and
  win every contest for a core against Ray's own processes, and the ratio would measure the OS
  scheduler's priorities rather than our loop.

``--quick`` (the default suite's mode) runs both loops in this process, one after the other, with no Ray
cluster: ours in Ray Train's local mode (``ScalingConfig(num_workers=0)``: the same ``ray.train`` calls,
the same per-epoch checkpoint written, MLflow logging; no worker actor, so no checkpoint upload and none
of Ray Train's 15-20 s of start-up). Both run at the same priority, so the nice-level concern above does
not arise. It gates a loop that loses a quarter of its speed; the full run is the figure to quote.

The first two epochs of each are warm-up and not counted (the first epochs of a fresh process pay
for allocator growth, kernel selection, the worker's first checkpoint upload and metric writes: one-time
costs, which a real epoch of thousands of steps hides). The runs alternate (bare, ours, bare, ours, bare)
(``--quick``: bare, ours) and each side's figure is the median over all its counted epochs, so that a drift in the
machine's speed
does not favour either side. ``ratio`` = ours / bare is what to read.

MFU = images/s x model FLOPs per image (forward + backward, counted by ``torch.utils.flop_counter``)
/ the device's peak, measured here as the best of a few large matmuls (fp32 on the CPU, bf16 on CUDA).

    .venv/bin/python benchmarks/train_throughput.py --quick     # CI: CPU, digits -> results/benchmarks/

    .venv/bin/python benchmarks/train_throughput.py             # on a CUDA machine: ResNet-18, FFCV to the device,
                                                                #   bf16 -> results/benchmarks/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssl_ray.config import ExperimentConfig  # noqa: E402
from ssl_ray.data.loaders import build_train_views  # noqa: E402
from ssl_ray.models.build import model_from_config  # noqa: E402
from ssl_ray.objectives import objective_from_config  # noqa: E402
from ssl_ray.train.optim import build_optimizer  # noqa: E402
from ssl_ray.train.precision import autocast, prepare_input, prepare_module, resolve  # noqa: E402
from ssl_ray.validation import validate_experiment  # noqa: E402


def experiment(args, cuda: bool, beton: str | None) -> dict:
    """The benchmark's trial config: the default sweep's model on CPU; ResNet-18 at 64 px on CUDA."""
    cfg = {
        "data": {"dataset": "digits", "image_size": args.image_size, "augment": "digits", "views": 2},
        "model": {
            "backbone": args.backbone,
            "depth": 4,
            "width": 64 if args.backbone.startswith("resnet") else 32,
            "projector_dims": args.projector_dims,
        },
        "objective": {"name": "vicreg"},
        "optim": {
            "optimizer": "lars" if cuda else "adamw",
            "lr": 2e-3,
            "batch_size": args.batch_size,
            "warmup_epochs": 0,
        },
        "train": {
            "epochs": args.epochs,
            "workers": 1,
            "cpus_per_worker": float(args.cpus),
            "use_gpu": cuda,
            "max_failures": 0,
        },
    }
    if beton:
        cfg["data"].update(beton=beton, loader="ffcv", augment="simclr")
    validate_experiment(ExperimentConfig.from_dict(cfg))
    return cfg


def device_peak_flops(device: torch.device, repeats: int = 5) -> float:
    """Best FLOP/s of an n x n matmul: fp32 on the CPU, bf16 on CUDA."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0))
    return best


def flops_per_image(cfg: dict) -> float:
    """Forward + backward FLOPs of the model for one training image (all its views). Counted on PyTorch's
    ``meta`` device, which runs every operator on shapes alone: the same count as on any real device, without
    computing anything (ResNet-50 at 224 px: 12 s on 2 CPU cores, then none)."""
    from torch.utils.flop_counter import FlopCounterMode

    exp = ExperimentConfig.from_dict(cfg)
    model = model_from_config(exp).to("meta").train()
    b, v, s = 8, exp.data.views, exp.data.image_size
    x = torch.randn(b * v, 3, s, s, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x).float().sum().backward()
    return counter.get_total_flops() / b


def bare_loop(cfg: dict, device: torch.device, threads: int) -> List[float]:
    """Images per second of each epoch of a plain PyTorch loop over the same loader."""
    exp = ExperimentConfig.from_dict(cfg)
    torch.manual_seed(exp.train.seed)
    torch.set_num_threads(threads)
    batches = build_train_views(exp, 0, 1, device)
    p = resolve(exp.train.amp, exp.train.channels_last, exp.train.sync_batchnorm, device, 1)
    model = prepare_module(model_from_config(exp), p).to(device)
    objective = objective_from_config(exp.objective)
    optimizer = build_optimizer(model.parameters(), exp.optim, 1)
    rates = []
    for epoch in range(1, exp.train.epochs + 1):
        batches.set_epoch(epoch)
        t0, images = time.perf_counter(), 0
        for views, _, _, _ in batches:
            views = views.to(device, non_blocking=True)
            b, v = views.shape[:2]
            with autocast(device, p):
                z = model(prepare_input(views.flatten(0, 1), p))
            loss = objective(z.float().view(b, v, -1)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += b
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(images / (time.perf_counter() - t0))
    return rates


def ours(cfg: dict, tmp: Path, name: str, local: bool = False) -> tuple[List[float], float]:
    """Images per second of each epoch of our loop under Ray Train, read back from its MLflow run; and
    the wall time of the whole fit (worker start-up included). ``local``: Ray Train's local mode, the loop
    in this process."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from ssl_ray.sweep import environment
    from ssl_ray.sweep.trainer import scaling_config
    from ssl_ray.tracking import get_or_create_parent_run, get_or_create_trial_run
    from ssl_ray.train.loop import train_loop_per_worker

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    parent = get_or_create_parent_run(uri, "train_throughput", str(tmp), {})
    run_id = get_or_create_trial_run(uri, parent, name, name, {})
    exp = validate_experiment(ExperimentConfig.from_dict(cfg))
    environment.apply()  # as a sweep trial does
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"experiment": exp, "mlflow_uri": uri, "mlflow_run_id": run_id},
        scaling_config=ray.train.ScalingConfig(num_workers=0) if local else scaling_config(exp.train),
        run_config=ray.train.RunConfig(
            name=name, storage_path=str(tmp / "storage"), checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None)
        ),
    )
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    ONLINE_S[name] = history(uri, run_id, "online/seconds")
    EPOCH_S[name] = history(uri, run_id, "train/epoch_s")
    return history(uri, run_id, "train/images_per_s"), wall


ONLINE_S: Dict[str, List[float]] = {}  # per run of ours: the online readings' seconds at each epoch
EPOCH_S: Dict[str, List[float]] = {}  # and each epoch's wall time (the window of train/images_per_s)


def history(uri: str, run_id: str, key: str) -> List[float]:
    from ssl_ray.tracking import client

    return [m.value for m in sorted(client(uri).get_metric_history(run_id, key), key=lambda m: m.step)]


def training_rates(name: str, rates: List[float]) -> List[float]:
    """Each epoch's images/s without the online readings in its window (epoch e's window holds epoch e-1's
    readings: they run after its last step)."""
    online = dict(enumerate(ONLINE_S.get(name, [])))
    out = []
    for step, (rate, wall) in enumerate(zip(rates, EPOCH_S.get(name, [])), start=1):
        out.append(rate * wall / max(wall - online.get(step - 1, 0.0), 1e-9))
    return out


def online_share(warmup: int) -> float:
    """The online readings' share of an epoch: the median of their seconds over the median epoch's wall time
    (which includes them: each window runs from one epoch's last step to the next's), counted epochs only."""
    online = [x for name in ONLINE_S for x in ONLINE_S[name][warmup + 1 :]]
    epoch = [x for name in EPOCH_S for x in EPOCH_S[name][warmup:]]
    return round(statistics.median(online) / statistics.median(epoch), 4)


def quick_runs(cfg: dict, tmp: Path, device: torch.device, cpus: int):
    """Bare, then ours in Ray Train's local mode, both in this process (no Ray cluster)."""
    phases, t0 = {}, time.perf_counter()
    bare_runs = [bare_loop(cfg, device, cpus)]
    phases["bare_0"] = time.perf_counter() - t0
    before, tempfile.tempdir = tempfile.tempdir, str(tmp)  # local mode uploads nothing, so nothing deletes
    try:  # the checkpoints' folders: they go under tmp
        rates, wall = ours(cfg, tmp, "bench-0", local=True)
    finally:
        tempfile.tempdir = before
    return bare_runs, [rates], [wall], phases


def cluster_runs(cfg: dict, tmp: Path, device: torch.device, args, cuda: bool):
    """bare, ours, bare, ours, ..., bare on a local Ray cluster: each side sees the machine at the same times."""
    import ray

    phases, t0 = {}, time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        num_gpus=1 if cuda else 0,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
    )
    phases["ray_init"] = time.perf_counter() - t0
    try:
        bare = ray.remote(bare_loop).options(num_cpus=args.cpus, num_gpus=1 if cuda else 0)
        t0 = time.perf_counter()
        bare_runs, ours_runs, walls = [ray.get(bare.remote(cfg, device, args.cpus))], [], []
        phases["bare_0"] = time.perf_counter() - t0
        for i in range(args.rounds):
            rates, wall = ours(cfg, tmp, f"bench-{i}")
            ours_runs.append(rates)
            walls.append(wall)
            t0 = time.perf_counter()
            bare_runs.append(ray.get(bare.remote(cfg, device, args.cpus)))
            phases[f"bare_{i + 1}"] = time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        ray.shutdown()
        phases["ray_shutdown"] = time.perf_counter() - t0
    return bare_runs, ours_runs, walls, phases


WARMUP = 2  # epochs not counted (--quick: 1)


def summary(rates: List[float], warmup: int = WARMUP) -> Dict[str, float]:
    counted = rates[warmup:]
    return {"epochs": [round(r, 1) for r in rates], "images_per_s": round(statistics.median(counted), 1)}


def pooled(runs: List[List[float]], warmup: int = WARMUP) -> Dict:
    """Every run's epochs, and the median over the counted epochs of all of them."""
    return {
        "images_per_s": round(statistics.median([r for run in runs for r in run[warmup:]]), 1),
        "runs": [summary(run, warmup) for run in runs],
    }


def main(argv=None) -> int:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI mode: 3 epochs, 1 not counted, one bare run and one of ours, both "
        "in this process (ours in Ray Train's local mode); about 30 s on 2 cores",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"epochs per loop, the first {WARMUP} not counted (default 12, --quick 3)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--backbone", default="resnet18" if cuda else "res")
    p.add_argument("--image-size", type=int, default=64 if cuda else 16)
    p.add_argument(
        "--projector-dims",
        type=int,
        nargs="+",
        default=[2048, 2048] if cuda else [128, 128],
        help="VICReg's ImageNet projector is 8192 8192 8192",
    )
    p.add_argument(
        "--loader",
        choices=("memory", "ffcv"),
        default="ffcv" if cuda else "memory",
        help="ffcv: the digits written to a .beton and read with FFCV (to the GPU with ToDevice)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="runs of our loop, each followed by a bare run (one bare run first; default 2, --quick 1)",
    )
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="threads for both loops (the worker's CPUs)")
    p.add_argument("--out", default=None, help="default: results/benchmarks/train_throughput.json (gpu.json on CUDA)")
    args = p.parse_args(argv)
    args.epochs = args.epochs or (3 if args.quick else 12)
    args.rounds = args.rounds or (1 if args.quick else 2)
    warmup = 1 if args.quick else WARMUP
    if args.epochs <= warmup:
        p.error(f"--epochs must be more than {warmup} (the first {warmup} are not counted)")
    out = Path(args.out or ROOT / "results" / "benchmarks" / ("gpu.json" if cuda else "train_throughput.json"))
    device = torch.device("cuda" if cuda else "cpu")

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        beton = None
        if args.loader == "ffcv":
            from ssl_ray.data.beton import write_beton
            from ssl_ray.data.datasets import load_dataset

            beton = str(write_beton(load_dataset("digits", "train", image_size=args.image_size), tmp / "digits.beton"))
        cfg = experiment(args, cuda, beton)
        if args.quick:
            bare_runs, ours_runs, walls, phases = quick_runs(cfg, tmp, device, args.cpus)
        else:
            bare_runs, ours_runs, walls, phases = cluster_runs(cfg, tmp, device, args, cuda)
    bare, mine = pooled(bare_runs, warmup), {**pooled(ours_runs, warmup), "fit_wall_s": [round(w, 1) for w in walls]}
    ratio = round(mine["images_per_s"] / bare["images_per_s"], 3)
    names = [f"bench-{i}" for i in range(len(ours_runs))]
    training = pooled([training_rates(n, r) for n, r in zip(names, ours_runs)], warmup)
    ratio_training = round(training["images_per_s"] / bare["images_per_s"], 3)
    peak = device_peak_flops(device)
    per_image = flops_per_image(cfg)
    report = {
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name() if cuda else (platform.processor() or platform.machine()),
        "cpu_count": os.cpu_count(),
        "threads": args.cpus,
        "quick": args.quick,
        "torch": torch.__version__,
        "ours_mode": "ray_train_local_mode" if args.quick else "ray_train_workers",
        "config": {
            "backbone": args.backbone,
            "projector_dims": args.projector_dims,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "views": 2,
            "loader": args.loader,
            "precision": resolve("auto", "auto", "auto", device, 1).describe(),
            "epochs": args.epochs,
            "counted_epochs": args.epochs - warmup,
        },
        "ours": mine,
        "bare": bare,
        "ratio_ours_vs_bare": ratio,
        "online_share_of_epoch": online_share(warmup),
        "ours_without_online": training,
        "ratio_training_vs_bare": ratio_training,
        "online_every": 1,
        "phase_s": {k: round(v, 1) for k, v in phases.items()},
        "model_gflops_per_image": round(per_image / 1e9, 4),
        "peak_tflops_measured": round(peak / 1e12, 3),
        "mfu_ours": round(mine["images_per_s"] * per_image / peak, 4),
        "mfu_bare": round(bare["images_per_s"] * per_image / peak, 4),
        "command": " ".join(
            [Path(sys.executable).name, "benchmarks/train_throughput.py", *(argv if argv is not None else sys.argv[1:])]
        ),
    }
    print(
        f"ours {mine['images_per_s']:.0f} img/s | bare {bare['images_per_s']:.0f} img/s | ours/bare = {ratio:.3f} | "
        f"without the online readings {ratio_training:.3f} | online readings {report['online_share_of_epoch']:.1%} of "
        f"an epoch | MFU ours {report['mfu_ours']:.1%} (bare {report['mfu_bare']:.1%}) of a measured "
        f"{report['peak_tflops_measured']:.2f} TFLOP/s peak",
        flush=True,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
