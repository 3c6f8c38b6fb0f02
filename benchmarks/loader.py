"""Loader throughput: 2-view SimCLR-augmented images per second, FFCV against a torchvision DataLoader.

Same run, same data, same cores, same augmentations (the ``simclr`` protocol of
``ssl_ray/data/protocols.py``: random resized crop, flip, color jitter with hue, grayscale):

- ``ffcv``: ``ssl_ray.data.ffcv_loader.FFCVViews`` over a raw-mode ``.beton`` (one pipeline per view,
  numba ops), ``num_workers`` threads.
- ``torchvision``: ``torch.utils.data.DataLoader`` with ``num_workers`` processes applying the same
  protocol with torchvision v2 per sample (``ssl_ray.data.torchvision_loader``), reading the images
  from memory (its best case: no file decoding at all).
- ``memory`` (for reference): the batched torch backend the bundled dataset trains with.

The images are the bundled digits (real images) upsampled to each size and repeated to ``--n``.
The first epoch of each loader (numba compilation, worker start-up) is not timed. The ratio
``ffcv / torchvision`` is what to read; absolute numbers on shared machines are noise.

    .venv/bin/python benchmarks/loader.py                 # 32 and 64 px -> results/benchmarks/loader.json
    .venv/bin/python benchmarks/loader.py --quick --sizes 32 --out /tmp/loader.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssl_ray.data.augment import build_augment  # noqa: E402
from ssl_ray.data.beton import write_beton  # noqa: E402
from ssl_ray.data.containers import ArrayDataset  # noqa: E402
from ssl_ray.data.datasets import load_dataset  # noqa: E402
from ssl_ray.data.loaders import TensorViews, epoch_order  # noqa: E402
from ssl_ray.data.protocols import view_specs  # noqa: E402
from ssl_ray.data.torchvision_loader import TorchvisionViews  # noqa: E402

VIEWS = 2


def dataset(size: int, n: int) -> ArrayDataset:
    base = load_dataset("digits", "train", image_size=size)
    reps = -(-n // len(base))
    return ArrayDataset(
        base.images.repeat(reps, 1, 1, 1)[:n].contiguous(), base.labels.repeat(reps)[:n], num_classes=10
    )


def images_per_second(loader, epochs: int) -> dict:
    t0 = time.perf_counter()
    loader.set_epoch(0)
    for _ in loader:  # warm-up: compilation, worker start-up, page cache
        pass
    warm = time.perf_counter() - t0
    n = 0
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        loader.set_epoch(e)
        for views, *_ in loader:
            assert views.shape[1] == VIEWS
            n += views.shape[0]
    dt = time.perf_counter() - t0
    return {"images": n, "seconds": round(dt, 3), "images_per_s": round(n / dt, 1), "warmup_s": round(warm, 2)}


def bench_size(size: int, n: int, batch: int, workers: int, epochs: dict, tmp: Path) -> dict:
    from ssl_ray.data.ffcv_loader import FFCVViews

    ds = dataset(size, n)
    specs = view_specs("simclr", VIEWS, size)
    beton = write_beton(ds, tmp / f"bench_{size}.beton", write_mode="raw", num_workers=workers)
    out = {"size": size, "n": n, "batch_size": batch}
    out["ffcv"] = images_per_second(
        FFCVViews(str(beton), specs, size, batch, seed=0, num_workers=workers), epochs["ffcv"]
    )
    tv = TorchvisionViews(
        ds, specs, size, batch, order_fn=lambda e: epoch_order(n, 0, e, 0, 1), seed=0, num_workers=workers
    )
    out["torchvision"] = images_per_second(tv, epochs["torchvision"])
    torch.set_num_threads(workers)
    mem = TensorViews(ds, build_augment("simclr", size, size), VIEWS, batch)
    out["memory"] = images_per_second(mem, epochs["memory"])
    out["ratio_ffcv_vs_torchvision"] = round(out["ffcv"]["images_per_s"] / out["torchvision"]["images_per_s"], 2)
    out["ratio_memory_vs_torchvision"] = round(out["memory"]["images_per_s"] / out["torchvision"]["images_per_s"], 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    p.add_argument("--n", type=int, default=None, help="images per epoch (default 8192, --quick 2048)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="FFCV threads = DataLoader worker processes"
    )
    p.add_argument("--quick", action="store_true", help="CI mode: fewer images and epochs")
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "loader.json"))
    args = p.parse_args(argv)
    n = args.n or (2048 if args.quick else 8192)
    epochs = {"ffcv": 3 if args.quick else 5, "torchvision": 1 if args.quick else 2, "memory": 2 if args.quick else 3}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            r = bench_size(size, n, args.batch_size, args.workers, epochs, Path(tmp))
            results.append(r)
            print(
                f"{size:>3} px: ffcv {r['ffcv']['images_per_s']:>9.0f} img/s | torchvision "
                f"{r['torchvision']['images_per_s']:>8.0f} img/s"
                f" | memory {r['memory']['images_per_s']:>8.0f} img/s | ffcv/torchvision = "
                f"{r['ratio_ffcv_vs_torchvision']:.1f}x",
                flush=True,
            )
    import ffcv

    report = {
        "benchmark": "loader",
        "views": VIEWS,
        "protocol": "simclr",
        "quick": args.quick,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "ffcv": getattr(ffcv, "__version__", "?"),
        "command": " ".join(
            [Path(sys.executable).name, "benchmarks/loader.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
