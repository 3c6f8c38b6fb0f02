"""``ssl-ray data``: write ``.beton`` files, inspect them, fetch CIFAR.

ssl-ray data write-beton --dataset cifar100 --data-root D --split train --out train.beton [--write-mode raw]
ssl-ray data inspect train.beton
ssl-ray data download --dataset cifar10 --data-root D
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from ssl_ray.cli_base import bad_input
from ssl_ray.errors import ConfigError


def _parser(prog: Optional[str]):
    from ssl_ray.cli_base import OneLineParser
    from ssl_ray.data.beton import WRITE_MODES

    p = OneLineParser(prog=prog, description="Datasets and FFCV .beton files.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)
    w = sub.add_parser("write-beton", help="write a dataset split to an FFCV .beton file")
    w.add_argument("--dataset", required=True)
    w.add_argument("--split", required=True, choices=["train", "test"])
    w.add_argument("--out", required=True, help="the .beton file to write")
    w.add_argument("--data-root", help="folder holding the dataset's files")
    w.add_argument("--superclass-map", help="image folders: class -> superclass file")
    w.add_argument("--image-size", type=int, help="in-memory datasets: resize to this size first (digits: 16)")
    w.add_argument("--max-resolution", type=int, help="resize images whose longer side is larger than this")
    w.add_argument("--write-mode", default="smart", choices=WRITE_MODES, help="raw pixels, jpg, or FFCV's 'smart' mix")
    w.add_argument("--jpeg-quality", type=int, default=90)
    w.add_argument("--num-workers", type=int, default=-1, help="writer processes (default: all cores)")
    w.add_argument(
        "--download", action="store_true", help="CIFAR: fetch the files with torchvision first (needs internet)"
    )
    i = sub.add_parser("inspect", help="check a .beton file and print what it holds")
    i.add_argument("path")
    d = sub.add_parser("download", help="fetch CIFAR-10/100 with torchvision (needs internet)")
    d.add_argument("--dataset", required=True)
    d.add_argument("--data-root", required=True)
    return p


def data_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    try:
        args = _parser(prog).parse_args(argv)
        from ssl_ray.data.beton import check_write_options, inspect_beton, write_beton
        from ssl_ray.data.cifar import download_cifar
        from ssl_ray.data.datasets import DATASETS, load_dataset

        if args.cmd == "inspect":
            info = inspect_beton(args.path)
            print(
                f"{info.path}: {info.num_samples} samples, fields {info.fields}, max "
                f"{info.max_height}x{info.max_width} px, "
                f"{info.num_classes} classes, {info.num_superclasses} superclasses"
            )
            return 0
        if args.cmd == "write-beton":  # every setting and the output before a dataset is read
            from ssl_ray.paths import check_new_file

            check_write_options(
                args.write_mode, args.jpeg_quality, args.max_resolution, args.image_size, args.num_workers
            )
            check_new_file(args.out, "--out")
        if args.cmd == "download" or args.download:
            DATASETS.get(args.dataset)
            download_cifar(args.dataset, args.data_root or ".")
            if args.cmd == "download":
                return 0
        ds = load_dataset(
            args.dataset,
            args.split,
            image_size=args.image_size,
            data_root=args.data_root,
            superclass_map=args.superclass_map,
        )
        if hasattr(ds, "check_images"):  # image files: one that is no image is found before the writer starts
            ds.check_images()
        print(
            f"writing {len(ds)} {args.dataset}/{args.split} images to {args.out} ({args.write_mode})", file=sys.stderr
        )
        out = write_beton(
            ds,
            args.out,
            max_resolution=args.max_resolution,
            jpeg_quality=args.jpeg_quality,
            write_mode=args.write_mode,
            num_workers=args.num_workers,
        )
        info = inspect_beton(out)
        print(f"{out}: {info.num_samples} samples, {info.num_classes} classes, {info.num_superclasses} superclasses")
        return 0
    except ConfigError as e:
        return bad_input(e)
