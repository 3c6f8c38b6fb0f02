"""FFCV ``.beton`` files: write one from any registered dataset, and check one before training.

Fields (in this order): ``image`` (``RGBImageField``), ``label`` (class), ``superclass`` (-1 where
the dataset has none) and ``index`` (the sample's position in its split, which the sample-level
probes and the shard tests use). :func:`inspect_beton` reads the header, field table, metadata and
allocation table without loading FFCV's loader, and turns every way a file can be wrong (missing,
truncated, corrupt, other fields) into a :class:`BetonError` that names the file and the problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ssl_ray.errors import ConfigError

BETON_FIELDS = ("image", "label", "superclass", "index")
REQUIRED_FIELDS = ("image", "label")
WRITE_MODES = ("raw", "jpg", "smart", "proportion")


class BetonError(ConfigError):
    """A ``.beton`` file that cannot be used; the message names the file and the problem."""


class _BetonSource:
    """``ds[i] -> (image (H, W, 3) uint8, label, superclass, index)`` for FFCV's writer.

    FFCV's writer processes wait forever for a sample whose reading raised (the writer hangs). So a sample
    that cannot be read is written as a 1x1 stand-in, its error goes to ``errors`` (a file every writer
    process appends to), every later sample is a stand-in too (the write finishes quickly), and
    :func:`write_beton` then deletes the file and raises the first error."""

    def __init__(self, ds, errors: Path) -> None:
        self.ds, self.errors = ds, errors

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        sup = int(self.ds.superclasses[i]) if self.ds.superclasses is not None else -1
        if not self.errors.exists():
            try:
                return np.ascontiguousarray(self.ds.image(i)), int(self.ds.labels[i]), sup, int(i)
            except Exception as e:  # noqa: BLE001 - any reading error; reported by write_beton
                with self.errors.open("a") as f:
                    f.write(f"sample {i}{_where(self.ds, i)}: {type(e).__name__}: {e}".replace("\n", " ") + "\n")
        return np.zeros((1, 1, 3), np.uint8), 0, -1, int(i)


def _where(ds, i: int) -> str:
    paths = getattr(ds, "paths", None)
    return f" ({paths[i]})" if paths is not None and i < len(paths) else ""


MAX_RESOLUTION = 65535  # the largest side JPEG (and FFCV's image field) can hold
MAX_WRITERS = 256


def check_write_options(
    write_mode: str,
    jpeg_quality: int,
    max_resolution: Optional[int],
    image_size: Optional[int] = None,
    num_workers: int = -1,
) -> None:
    """The writer's settings, each bounded, before anything is read or written."""
    from ssl_ray.data.containers import IMAGE_SIZES

    if write_mode not in WRITE_MODES:
        raise ConfigError(f"unknown write mode {write_mode!r} (known: {', '.join(WRITE_MODES)})")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ConfigError(f"jpeg quality must be in 1..100, got {jpeg_quality!r}")
    if max_resolution is not None and not 1 <= max_resolution <= MAX_RESOLUTION:
        raise ConfigError(f"max resolution must be in 1..{MAX_RESOLUTION}, got {max_resolution}")
    if image_size is not None and not IMAGE_SIZES[0] <= image_size <= IMAGE_SIZES[1]:
        raise ConfigError(
            f"image size must be in {IMAGE_SIZES[0]}..{IMAGE_SIZES[1]} (as data.image_size), got {image_size}"
        )
    if num_workers != -1 and not 1 <= num_workers <= MAX_WRITERS:
        raise ConfigError(f"writer processes must be -1 (all cores) or 1..{MAX_WRITERS}, got {num_workers}")


def write_beton(
    ds,
    out: str | os.PathLike,
    max_resolution: Optional[int] = None,
    jpeg_quality: int = 90,
    write_mode: str = "smart",
    num_workers: int = -1,
    chunksize: int = 100,
) -> Path:
    """Write ``ds`` to ``out`` (FFCV shows a progress bar). Raw mode stores exact pixels; ``jpg``
    at quality 100 stores near-exact ones; ``smart`` compresses only images larger than raw would
    be worth (FFCV's rule)."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    check_write_options(write_mode, jpeg_quality, max_resolution, num_workers=num_workers)
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    fields = {
        "image": RGBImageField(
            write_mode=write_mode,
            max_resolution=max_resolution,
            jpeg_quality=int(jpeg_quality),
            smart_threshold=None if write_mode != "smart" else 3 * 64 * 64 * 3,
        ),
        "label": IntField(),
        "superclass": IntField(),
        "index": IntField(),
    }
    errors = out.with_name(out.name + ".errors")
    errors.unlink(missing_ok=True)
    try:
        writer = DatasetWriter(str(tmp), fields, num_workers=num_workers)
        writer.from_indexed_dataset(_BetonSource(ds, errors), chunksize=chunksize)
        if errors.exists():
            first = errors.read_text().splitlines()[0]
            raise BetonError(f"{out}: not written, an image cannot be read: {first}")
        os.replace(tmp, out)  # a crash mid-write never leaves a half file under the final name
    finally:
        tmp.unlink(missing_ok=True)
        errors.unlink(missing_ok=True)
    return out


@dataclass
class BetonInfo:
    path: str
    num_samples: int
    fields: Sequence[str]
    labels: np.ndarray
    superclasses: Optional[np.ndarray]
    max_height: int
    max_width: int

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def num_superclasses(self) -> int:
        return (
            int(self.superclasses.max()) + 1 if self.superclasses is not None else 0
        )  # None unless every sample has one


def inspect_beton(path: str | os.PathLike, required: Sequence[str] = REQUIRED_FIELDS) -> BetonInfo:
    """Validate a ``.beton`` file's structure and return what it holds (no image is decoded)."""
    from ffcv.types import ALLOC_TABLE_TYPE, CURRENT_VERSION, FieldDescType, HeaderType, get_handlers, get_metadata_type
    from ffcv.utils import decode_null_terminated_string

    p = Path(path).expanduser()
    if not p.is_file():
        raise BetonError(f"{p}: no such .beton file")
    size = p.stat().st_size
    if size < HeaderType.itemsize:
        raise BetonError(f"{p}: truncated ({size} bytes, smaller than the {HeaderType.itemsize}-byte FFCV header)")
    header = np.fromfile(p, dtype=HeaderType, count=1)[0]
    if int(header["version"]) != CURRENT_VERSION:
        raise BetonError(
            f"{p}: not an FFCV .beton (format version {int(header['version'])}, expected {CURRENT_VERSION})"
        )
    n, n_fields = int(header["num_samples"]), int(header["num_fields"])
    fields_end = HeaderType.itemsize + n_fields * FieldDescType.itemsize
    if n_fields == 0 or n_fields > 64 or fields_end > size:
        raise BetonError(f"{p}: corrupt header ({n_fields} fields in a {size}-byte file)")
    desc = np.fromfile(p, dtype=FieldDescType, count=n_fields, offset=HeaderType.itemsize)
    try:
        handlers = get_handlers(desc)
    except (KeyError, ValueError) as e:
        raise BetonError(f"{p}: corrupt field table ({e})") from None
    names = [decode_null_terminated_string(d) for d in desc["name"]]
    missing = [f for f in required if f not in names]
    if missing:
        raise BetonError(
            f"{p}: has fields {names} but no {missing[0]!r} field (expected {list(BETON_FIELDS)}; "
            f"write it with `ssl-ray data write-beton`)"
        )
    if any(h is None for h in handlers):
        raise BetonError(f"{p}: a field of unknown type (custom fields are not supported)")
    meta_type = get_metadata_type(list(handlers))
    meta_end = fields_end + n * meta_type.itemsize
    alloc_ptr = int(header["alloc_table_ptr"])
    if n == 0 or meta_end > size or not meta_end <= alloc_ptr <= size:
        raise BetonError(
            f"{p}: truncated or corrupt ({n} samples need {meta_end} bytes of metadata; "
            f"allocation table at {alloc_ptr}; file is {size} bytes)"
        )
    meta = np.fromfile(p, dtype=meta_type, count=n, offset=fields_end)
    alloc = np.fromfile(p, dtype=ALLOC_TABLE_TYPE, offset=alloc_ptr)
    if (size - alloc_ptr) % ALLOC_TABLE_TYPE.itemsize:
        raise BetonError(f"{p}: truncated (the allocation table ends mid-entry)")
    if len(alloc) and int((alloc["ptr"] + alloc["size"]).max()) > size:
        raise BetonError(f"{p}: truncated (sample data extends past the end of the {size}-byte file)")
    fi = {name: i for i, name in enumerate(names)}
    img = meta[f"f{fi['image']}"] if "image" in fi else None
    if img is not None:
        ptrs = img["data_ptr"]
        known = np.isin(ptrs, alloc["ptr"])
        if not known.all():
            raise BetonError(
                f"{p}: corrupt (image of sample {int(np.argmin(known))} points outside the allocation table)"
            )
    labels = np.asarray(meta[f"f{fi['label']}"], dtype=np.int64)
    sup = np.asarray(meta[f"f{fi['superclass']}"], dtype=np.int64) if "superclass" in fi else None
    return BetonInfo(
        str(p),
        n,
        names,
        labels,
        sup if sup is not None and (sup >= 0).all() else None,
        int(img["height"].max()) if img is not None else 0,
        int(img["width"].max()) if img is not None else 0,
    )
