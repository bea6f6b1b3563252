"""COCO -> sharded TFRecord files of ``tf.train.Example`` (profiles in `wsovvis.export.examples`).

Images are sorted by id and image ``k`` of that order goes to shard ``k mod N``: the same input
and N always give the same files, byte for byte, whatever the number of workers (each worker
writes whole shards). Shards are ``<out>-00000-of-0000N.tfrecord``; beside them go
``label_map.json`` (contiguous label -> category id and name) and ``README.md`` (how a Scenic
OWL-ViT config reads them), and ``<out>.export_report.json`` (counts and every skipped image or
clipped box).

JPEG files are copied byte for byte; other formats are decoded and re-encoded as JPEG. An image
that cannot be read or decoded, or whose size is not the one in the JSON (its boxes would be
normalised by the wrong size), is skipped and reported.

I/O, kept near the floor of reading and writing the image bytes (``bench/export.py`` measures it):
each image is read with one ``os.read`` (`read_bytes`), its Example is encoded around the JPEG
bytes without copying them (`encode_example_parts`), and records go out in ~1 MB ``os.writev``
batches (`tfrecord.RecordWriter`). Durability: each shard is a temp file renamed into place
(`atomic_open`) after one fsync at close; the writer starts disk writeback every 8 MB so that fsync
has little left to wait for.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from wsovvis.data.coco import load_coco
from wsovvis.errors import WsovvisError
from wsovvis.export import tfds_meta, tfrecord
from wsovvis.export.example_proto import encode_example_parts
from wsovvis.export.examples import PROFILES, ImageStats, image_features
from wsovvis.export.readme import readme_snippet
from wsovvis.utils.io import atomic_open, atomic_write_json, atomic_write_text, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

JPEG_QUALITY = 95  # re-encoding only happens for non-JPEG inputs
MAX_LISTED = 50  # per kind in the report


def shard_paths(prefix: str | os.PathLike, num_shards: int) -> list[Path]:
    prefix = Path(prefix)
    return [prefix.with_name(f"{prefix.name}-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)]


def assign_shards(image_ids: list[int], num_shards: int) -> list[list[int]]:
    """Image ids -> per shard, the ids it holds: sorted by id, round robin (balanced, order-independent)."""
    order = sorted(image_ids)
    return [order[i::num_shards] for i in range(num_shards)]


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's first SOFn segment, or None if ``data`` is not a well-formed JPEG header."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    pos, n = 2, len(data)
    while pos + 9 <= n:
        if data[pos] != 0xFF:
            return None
        code = data[pos + 1]
        if code == 0xFF:
            pos += 1
            continue
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
            pos += 2
            continue
        if code in _SOF:
            h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
            return (h, w) if h and w else None
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


class _Skip(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


def read_bytes(path: str) -> bytes:
    """A file's bytes with the fewest calls: open, fstat, one read (and more reads only if the file grew).

    `open(path, "rb").read()` costs a few microseconds more per file in Python objects (FileIO,
    BufferedReader), about 10% of reading a 60 KB JPEG from the page cache.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # one byte more: getting exactly `size` means the end of the file
        if len(data) == size:
            return data
        chunks = [data]  # the file changed size meanwhile (or is over the 2 GB a read returns): read to the end
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_image(path: str, height: int, width: int) -> tuple[bytes, bool]:
    """JPEG bytes of the image at ``path`` and whether they were re-encoded; `_Skip` if it cannot be used."""
    try:
        data = read_bytes(path)
    except OSError as e:
        raise _Skip("unreadable", f"{path}: cannot read ({e.strerror})") from e
    size = jpeg_size(data)
    reencoded = False
    if size is None:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                rgb = im.convert("RGB")
        except Exception as e:  # PIL raises many types for broken files  # noqa: BLE001
            raise _Skip("undecodable", f"{path}: does not decode as an image ({type(e).__name__}: {e})") from e
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=JPEG_QUALITY)
        data, size, reencoded = buf.getvalue(), (rgb.height, rgb.width), True
    if size != (height, width):
        raise _Skip("size_mismatch", f"{path}: image is {size[0]}x{size[1]} (HxW) but the JSON says {height}x{width}")
    return data, reencoded


READ_AHEAD = 16  # images advised ahead once reads come from the disk
SLOW_READ_S = 1e-4  # a read this slow waited for the disk (from the page cache a 60 KB JPEG takes ~20 us)


class ReadAhead:
    """Asks the kernel to start reading the next images while this one is encoded and written, once reads
    turn out to come from the disk. On the bench's 1,920 DAVIS JPEGs (129 MB, ext4), evicted from the page
    cache: read one after another 0.24-0.33 s, with 16 files advised ahead 0.13 s. Reads from the page
    cache (a re-export) never switch it on: advising a cached file costs a few microseconds for nothing.
    """

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.advised = 0  # paths[:advised] were advised (or read)
        self.active_until = -1  # advise ahead while reading images up to this index

    def before(self, i: int) -> None:
        if i > self.active_until or not hasattr(os, "posix_fadvise"):
            return
        end = min(i + READ_AHEAD, len(self.paths))
        self.advised = max(self.advised, i + 1)
        while self.advised < end:
            try:
                fd = os.open(self.paths[self.advised], os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)
            except OSError:  # a missing or odd file: its own read reports it
                pass
            self.advised += 1

    def after(self, i: int, seconds: float) -> None:
        if seconds > SLOW_READ_S:
            self.active_until = i + 4 * READ_AHEAD


@dataclass
class _Plan:
    """Everything a worker needs; inherited by forked workers instead of pickled per task."""

    profile: str
    img_root: str
    paths: list[Path]
    shards: list[list[int]]
    image_by_id: dict[int, dict]
    anns_by_image: dict[int, list[dict]]
    label_of: dict[int, int]
    segmentation: bool


@dataclass
class _ShardResult:
    records: int = 0
    bytes: int = 0
    reencoded: int = 0
    empty_images: int = 0
    stats: ImageStats = field(default_factory=ImageStats)
    skipped: list[tuple[str, str]] = field(default_factory=list)


_PLAN: _Plan | None = None


def _write_shard(index: int, progress: tqdm | None = None) -> _ShardResult:
    plan = _PLAN
    assert plan is not None
    res = _ShardResult()
    stats = res.stats
    # the plan's fields as locals: this loop runs once per image, next to a 60 KB read and write
    profile, img_root, image_by_id, anns_by_image = plan.profile, plan.img_root, plan.image_by_id, plan.anns_by_image
    label_of, segmentation = plan.label_of, plan.segmentation
    update = progress.update if progress is not None else lambda: None
    with atomic_open(plan.paths[index], "wb") as f:
        # records reach the file through `out` only (os.writev on the descriptor), never through `f`
        out = tfrecord.RecordWriter(f.fileno())
        images = [image_by_id[image_id] for image_id in plan.shards[index]]
        paths = [os.path.join(img_root, im["file_name"]) for im in images]
        ahead = ReadAhead(paths)
        for i, im in enumerate(images):
            ahead.before(i)
            t0 = time.perf_counter()
            try:
                data, reencoded = read_image(paths[i], im["height"], im["width"])
            except _Skip as s:
                res.skipped.append((s.kind, str(s)))
                update()
                continue
            ahead.after(i, time.perf_counter() - t0)
            feats, st = image_features(profile, im, data, anns_by_image.get(im["id"], ()), label_of,
                                       segmentation=segmentation)
            res.bytes += out.write(encode_example_parts(feats))
            res.records += 1
            res.reencoded += reencoded
            if st.boxes:
                stats.boxes += st.boxes
            else:
                res.empty_images += 1
            if st.clipped or st.no_box:
                stats.clipped += st.clipped
                stats.no_box += st.no_box
                stats.clipped_ids += st.clipped_ids
            update()
        out.flush()
    return res


def _write_shard_task(index: int) -> _ShardResult:
    return _write_shard(index)


def label_map(categories: list[dict]) -> dict:
    """Contiguous 0-based labels over categories sorted by id (what Scenic's tool and TFDS ClassLabel use)."""
    cats = sorted(categories, key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    return {
        "num_classes": len(cats),
        "names": [c["name"] for c in cats],
        "labels": [{"index": i, "category_id": c["id"], "name": c["name"]} for i, c in enumerate(cats)],
        "contiguous_ids": ids == list(range(ids[0], ids[0] + len(ids))) if ids else True,
        "note": "objects/label = index; Scenic's text labels are ['padding'] + names, looked up at label + 1",
    }


def _existing_shards(prefix: Path) -> list[Path]:
    if not prefix.parent.is_dir():
        return []
    return sorted(p for p in prefix.parent.glob(f"{prefix.name}-?????-of-?????.tfrecord"))


def export_tfrecord(
    coco: dict | str | os.PathLike,
    img_root: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    num_shards: int = 1,
    profile: str = "scenic",
    workers: int = 1,
    segmentation: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    source: str | None = None,
    tfds_name: str | None = None,
    tfds_version: str | None = None,
) -> dict:
    """Write ``num_shards`` TFRecord shards of the COCO set; returns the report (also written beside them).

    Report keys: ``shards`` (paths), ``profile``, ``counts`` (images, records, skipped, reencoded,
    empty_images, boxes, boxes_clipped, annotations_without_box), ``skipped`` (kind -> messages),
    ``clipped_annotation_ids``, ``label_map`` (path), ``tfds_metadata`` (path of ``dataset_info.json``, tfds
    profile: see `wsovvis.export.tfds_meta`; ``tfds_name``/``tfds_version`` default to the folder's).
    """
    global _PLAN
    if profile not in PROFILES:
        raise WsovvisError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if num_shards < 1 or workers < 1:
        raise WsovvisError(f"--shards and --workers must be >= 1, got {num_shards} and {workers}")
    if segmentation and profile != "scenic":
        raise WsovvisError("--segmentation is part of the scenic profile only (TFDS COCO has no masks)")
    prefix = Path(out_prefix)
    if profile == "tfds":
        tfds_meta.check_split_name(prefix.name)
    data = load_coco(coco, source=source)
    src = source or (str(coco) if not isinstance(coco, dict) else "<memory>")
    if not Path(img_root).is_dir():
        raise WsovvisError(f"{img_root}: image root is not a directory")
    paths = shard_paths(prefix, num_shards)
    existing = _existing_shards(prefix)
    if existing and not overwrite:
        raise WsovvisError(f"{prefix}: {len(existing)} shard file(s) already exist ({existing[0].name}, ...); "
                           "pass --overwrite to replace them")
    for p in existing:
        if p not in paths:  # a run with another shard count: stale files would be read by a glob
            p.unlink()
    lm = label_map(data["categories"])
    lm_path = prefix.parent / "label_map.json"
    if lm_path.is_file() and not overwrite:  # another split in this folder: labels must mean the same classes
        old = read_json(lm_path, "label map")
        if not isinstance(old, dict) or old.get("labels") != lm["labels"]:
            raise WsovvisError(f"{lm_path}: the folder's label map (another export) differs from this one's "
                               f"categories; export every split with the same categories, or pass --overwrite")
    label_of = {entry["category_id"]: entry["index"] for entry in lm["labels"]}
    image_by_id = {im["id"]: im for im in data["images"]}
    anns_by_image: dict[int, list[dict]] = {}
    for a in sorted(data.get("annotations") or [], key=lambda a: a["id"]):
        anns_by_image.setdefault(a["image_id"], []).append(a)
    _PLAN = _Plan(profile, str(img_root), paths, assign_shards(list(image_by_id), num_shards), image_by_id,
                  anns_by_image, label_of, segmentation)
    n_images = len(image_by_id)
    log.info("writing %d images to %d %s shard(s) %s with %d worker(s)", n_images, num_shards, profile,
             paths[0].name, workers)
    try:
        if workers == 1 or num_shards == 1:
            with tqdm(total=n_images, desc="tfrecord", unit="img", disable=not progress) as bar:
                results = [_write_shard(i, bar) for i in range(num_shards)]
        else:
            # this process is one of the k workers: it writes shards 0, k, 2k, ... while k - 1 forked ones
            # (which inherit _PLAN instead of unpickling it) share the rest: one fork fewer, no idle parent
            k = min(workers, num_shards)
            own = list(range(0, num_shards, k))
            others = [i for i in range(num_shards) if i % k]
            done: dict[int, _ShardResult] = {}
            with mp.get_context("fork").Pool(k - 1) as pool, \
                    tqdm(total=num_shards, desc="tfrecord shards", unit="shard", disable=not progress) as bar:
                pending = pool.imap(_write_shard_task, others)
                for i in own:
                    done[i] = _write_shard(i)
                    bar.update()
                for i, r in zip(others, pending):
                    done[i] = r
                    bar.update()
            results = [done[i] for i in range(num_shards)]
    finally:
        _PLAN = None
    skipped: dict[str, list[str]] = {}
    for r in results:
        for kind, msg in r.skipped:
            skipped.setdefault(kind, []).append(msg)
    clipped_ids = sorted(i for r in results for i in r.stats.clipped_ids)
    counts = {
        "images": n_images,
        "records": sum(r.records for r in results),
        "skipped": sum(len(v) for v in skipped.values()),
        "skipped_by_kind": dict(sorted(Counter({k: len(v) for k, v in skipped.items()}).items())),
        "reencoded": sum(r.reencoded for r in results),
        "empty_images": sum(r.empty_images for r in results),
        "boxes": sum(r.stats.boxes for r in results),
        "boxes_clipped": len(clipped_ids),
        "annotations_without_box": sum(r.stats.no_box for r in results),
        "bytes": sum(r.bytes for r in results),
    }
    out_dir = prefix.parent
    lm_out = dict(lm, source=src, profile=profile)
    atomic_write_json(lm_path, lm_out, indent=1)
    info = tfds_dataset = None
    if profile == "tfds":
        d_name, d_version = tfds_meta.default_name_and_version(out_dir)
        tfds_dataset = (tfds_name or d_name, tfds_version or d_version)
        info = tfds_meta.write_tfds_metadata(out_dir, prefix.name, paths, [r.records for r in results], lm["names"],
                                             name=tfds_dataset[0], version=tfds_dataset[1], overwrite=overwrite)
    atomic_write_text(out_dir / "README.md", readme_snippet(prefix, num_shards, profile, lm, tfds_dataset))
    report = {
        "source": src,
        "profile": profile,
        "shards": [str(p) for p in paths],
        "label_map": str(lm_path),
        "tfds_metadata": str(info) if info else None,
        "counts": counts,
        "skipped": {k: v[:MAX_LISTED] for k, v in sorted(skipped.items())},
        "clipped_annotation_ids": clipped_ids[:MAX_LISTED],
    }
    atomic_write_json(prefix.with_name(prefix.name + ".export_report.json"), report, indent=1)
    for kind, msgs in sorted(skipped.items()):
        log.warning("skipped %d image(s), %s: %s%s", len(msgs), kind, msgs[0], " ..." if len(msgs) > 1 else "")
    if clipped_ids:
        log.warning("%d box(es) reached outside their image and were clipped (annotation ids %s%s)",
                    len(clipped_ids), clipped_ids[:10], " ..." if len(clipped_ids) > 10 else "")
    return report

