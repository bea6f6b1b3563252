#!/usr/bin/env python
"""Benchmark `wsovvis export tfrecord` (COCO JSON -> TFRecord shards) against reading the JPEG bytes alone.

Data: the DAVIS sample (240 real 854x480 JPEG frames with the OSVOS pseudo tubes, if ../shared/data/real
is present; else a generated synthetic set), exported to COCO and copied ``--copies`` times (8: 1,920
images, ~129 MB) into ``--img_dir`` (default $TMPDIR) as distinct files, so that each image is its own
file on disk, as in a real dataset. The COCO JSON is written to a file and the export reads it, as the
CLI does. Timed side by side, interleaved, ``--repeats`` rounds; each figure is the best round, with the
median beside it:

* ``read``: open every image and read its bytes (the export's own reader, `shards.read_bytes`, with its
  read-ahead, which only switches on for reads from the disk), page cache warm: the floor the issue's
  target is set against,
* ``copy``: read them and write the bytes into ``--shards`` files, then fsync each: the I/O any exporter
  pays, whatever its format (all it leaves out is framing, CRC-32C and the annotations),
* ``load``: read and validate the COCO JSON (`load_coco`), the part of ``x1`` before any image,
* ``x1`` / ``x2``: the whole export, 1 and 2 worker processes (scenic profile), outputs atomic and each
  shard fsync'd once at close (as the CLI writes them),
* ``-nofsync`` variants of copy and x1: ``os.fsync`` replaced by a no-op, to show what durability costs,
* cold (``--cold``, on by default when the images are not on tmpfs): the images (and the JSON) are evicted
  from the page cache before each run (``posix_fadvise(DONTNEED)`` per file, or ``--drop-caches``: the
  whole cache via /proc/sys/vm/drop_caches, root only), then read (also without read-ahead: one file
  after another, the naive reader), copy and x1 again.

Outputs go to ``--out_dir`` (default $TMPDIR; /dev/shm takes the disk out).

    python bench/export.py [--copies 8] [--shards 4] [--repeats 5] [--out_dir /dev/shm] [--img_dir DIR] [--no-cold]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.data.coco import load_coco, ytvis_to_coco  # noqa: E402
from wsovvis.data.convert import convert  # noqa: E402
from wsovvis.data.synthetic import generate_dataset  # noqa: E402
from wsovvis.export.shards import ReadAhead, export_tfrecord, read_bytes  # noqa: E402
from wsovvis.export.tfrecord import start_writeback  # noqa: E402

REAL = Path(os.environ.get("WSOVVIS_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))


def source_set(tmp: Path) -> tuple[str, dict, Path]:
    davis = REAL / "davis2016val_sample"
    if davis.is_dir():
        tubes = tmp / "davis.json"
        convert(davis / "Pseudo_OSVOS_davis2017", davis / "JPEGImages", tubes, split_name="davis", progress=False)
        return "DAVIS 854x480 JPEG, OSVOS tubes", json.loads(tubes.read_text()), davis / "JPEGImages"
    d = generate_dataset(tmp / "synth", num_videos=8, num_frames=30, height=480, width=854, progress=False)
    return "synthetic 854x480 JPEG (real data absent)", json.loads(d.gt_json.read_text()), d.img_root


def duplicate(coco: dict, copies: int, src_root: Path, dst_root: Path) -> dict:
    """The images ``copies`` times with fresh ids (their annotations too), each copy a distinct file
    ``c<k>/<file_name>`` under ``dst_root``, fsync'd so that the page cache may evict it."""
    n_img, n_ann = len(coco["images"]), len(coco["annotations"])
    for k in range(copies):
        for im in coco["images"]:
            dst = dst_root / f"c{k}" / im["file_name"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(dst, "wb") as f:
                f.write((src_root / im["file_name"]).read_bytes())
                os.fsync(f.fileno())
    images = [dict(im, id=im["id"] + k * n_img, file_name=f"c{k}/{im['file_name']}")
              for k in range(copies) for im in coco["images"]]
    anns = [dict(a, id=a["id"] + k * n_ann, image_id=a["image_id"] + k * n_img)
            for k in range(copies) for a in coco["annotations"]]
    return dict(coco, images=images, annotations=anns)


def read_all(paths: list[str], ahead: bool = True) -> int:
    """Read every file's bytes as the export does: `read_bytes`, with its read-ahead (which switches itself
    on when reads come from the disk) unless ``ahead`` is False (plain reads, one after another)."""
    n = 0
    advise = ReadAhead(paths)
    for i, p in enumerate(paths):
        if ahead:
            advise.before(i)
        t0 = time.perf_counter()
        n += len(read_bytes(p))
        advise.after(i, time.perf_counter() - t0)
    return n


def copy_all(paths: list[str], out: Path, shards: int) -> int:
    """Read every image and write its bytes into ``shards`` files round robin, each fsync'd: the I/O floor.
    With the export's own read-ahead and its disk writeback hint every 8 MB per file (`start_writeback`), so
    that the floor gets every I/O advantage the export has."""
    out.mkdir(parents=True, exist_ok=True)
    fds = [os.open(out / f"copy-{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for i in range(shards)]
    written, synced = [0] * shards, [0] * shards
    advise = ReadAhead(paths)
    try:
        for k, p in enumerate(paths):
            i = k % shards
            advise.before(k)
            t0 = time.perf_counter()
            data = read_bytes(p)
            advise.after(k, time.perf_counter() - t0)
            written[i] += os.write(fds[i], data)
            if written[i] - synced[i] >= 8 << 20:
                start_writeback(fds[i], synced[i], written[i] - synced[i])
                synced[i] = written[i]
    finally:
        for fd in fds:
            os.fsync(fd)
            os.close(fd)
    return sum(written)


def fs_type(path: Path) -> str:
    """The file system type of the mount holding ``path`` (from /proc/mounts; '?' elsewhere)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                mnt, typ = line.split()[1:3]
                if str(path.resolve()).startswith(mnt.rstrip("/") + "/") and len(mnt) > len(best):
                    best, kind = mnt, typ
    except OSError:
        pass
    return kind


def evict(paths: list[str], drop_caches: bool) -> None:
    """Take ``paths`` out of the page cache: per file (posix_fadvise DONTNEED), or everything (drop_caches)."""
    if drop_caches:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out_dir", help="where the outputs go (default: a temporary folder under $TMPDIR)")
    ap.add_argument("--img_dir", help="where the image copies go (default: a temporary folder under $TMPDIR)")
    ap.add_argument("--cold", action=argparse.BooleanOptionalAction, default=None,
                    help="also time with the images evicted from the page cache (default: on unless on tmpfs)")
    ap.add_argument("--drop-caches", action="store_true", help="evict with /proc/sys/vm/drop_caches (root)")
    args = ap.parse_args()
    logging.disable(logging.INFO)  # the export's per-run log lines
    with tempfile.TemporaryDirectory(prefix="wsovvis_bench_export_", dir=args.out_dir) as tmp_name, \
            tempfile.TemporaryDirectory(prefix="wsovvis_bench_export_img_", dir=args.img_dir) as img_name:
        tmp, img_root = Path(tmp_name), Path(img_name)
        name, tubes, src_root = source_set(tmp)
        coco = duplicate(ytvis_to_coco(tubes), args.copies, src_root, img_root)
        coco_path = tmp / "coco.json"
        coco_path.write_text(json.dumps(coco))
        paths = [os.path.join(img_root, im["file_name"]) for im in coco["images"]]
        img_fs, out_fs = fs_type(img_root), fs_type(tmp)
        cold = args.cold if args.cold is not None else img_fs != "tmpfs"
        size = read_all(paths)  # warm the page cache
        n = len(coco["images"])

        def export(sub: str, workers: int = 1) -> None:
            export_tfrecord(coco_path, img_root, tmp / sub / "train", num_shards=args.shards, workers=workers,
                            overwrite=True, progress=False)

        runs: list[tuple[str, Callable[[], object], bool, bool]] = [  # key, fn, fsync, cold
            ("read", lambda: read_all(paths), True, False),
            ("copy", lambda: copy_all(paths, tmp / "copy", args.shards), True, False),
            ("copy-nofsync", lambda: copy_all(paths, tmp / "copy", args.shards), False, False),
            ("load", lambda: load_coco(coco_path), True, False),
            ("x1", lambda: export("x1"), True, False),
            ("x1-nofsync", lambda: export("x1"), False, False),
            ("x2", lambda: export("x2", 2), True, False),
        ]
        if cold:
            runs += [("read-cold-plain", lambda: read_all(paths, ahead=False), True, True),
                     ("read-cold", lambda: read_all(paths), True, True),
                     ("copy-cold", lambda: copy_all(paths, tmp / "copy", args.shards), True, True),
                     ("x1-cold", lambda: export("x1"), True, True)]
        times: dict[str, list[float]] = {k: [] for k, *_ in runs}
        cpu: dict[str, list[float]] = {k: [] for k, *_ in runs}
        load0 = os.getloadavg()[0]
        for _ in range(args.repeats):
            for key, fn, fsync, is_cold in runs:
                if is_cold:
                    evict([*paths, str(coco_path)], args.drop_caches)
                with contextlib.nullcontext() if fsync else mock.patch("os.fsync"):
                    t0, c0 = time.perf_counter(), time.process_time()
                    fn()
                    times[key].append(time.perf_counter() - t0)
                    cpu[key].append(time.process_time() - c0)
        load1 = os.getloadavg()[0]
        rep = json.loads((tmp / "x1" / "train.export_report.json").read_text())
        same = all((tmp / "x1" / p.name).read_bytes() == p.read_bytes() for p in (tmp / "x2").glob("*.tfrecord"))
        b = {k: min(v) for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in times.items()}
        c = {k: min(v) for k, v in cpu.items()}

        print(f"data: {name}; {n} images ({args.copies} copies of {n // args.copies}, distinct files), "
              f"{size / 1e6:.1f} MB of JPEG, COCO JSON {coco_path.stat().st_size / 1e6:.1f} MB, "
              f"{rep['counts']['boxes']} boxes, {rep['counts']['reencoded']} re-encoded; {args.shards} shards, "
              f"{rep['counts']['bytes'] / 1e6:.1f} MB written")
        print(f"images on {img_fs} ({img_root}), outputs on {out_fs} ({tmp}); best (median) of {args.repeats} "
              f"interleaved rounds; {os.cpu_count()} CPUs, load average {load0:.1f} -> {load1:.1f}")
        labels = {"read": "read bytes (warm cache)", "copy": "read+write bytes, fsync", "copy-nofsync":
                  "read+write bytes, no fsync", "load": "load+validate COCO JSON", "x1": "export 1 worker, fsync",
                  "x1-nofsync": "export 1 worker, no fsync", "x2": "export 2 workers, fsync",
                  "read-cold-plain": "read, cold, no read-ahead", "read-cold": "read bytes, cold cache",
                  "copy-cold": "read+write, cold, fsync",
                  "x1-cold": "export 1 worker, cold, fsync"}
        for key in times:
            rate = "" if key == "load" else f"{n / b[key]:7.0f} images/s"
            print(f"  {labels[key]:28s} {b[key]:7.3f} s ({med[key]:.3f})  {rate}  cpu {c[key]:.3f} s")

        def r(a: str, z: str) -> str:
            return f"{b[a] / b[z]:.2f}"

        print(f"x1/read = {r('x1', 'read')} (target <= 1.5)   x1/copy = {r('x1', 'copy')}   "
              f"x2/x1 = {r('x2', 'x1')} (2-worker speed-up {b['x1'] / b['x2']:.2f}x)   "
              f"cpu x1/copy = {c['x1'] / c['copy']:.2f}")
        print(f"no fsync: x1/read = {r('x1-nofsync', 'read')}   x1/copy = {r('x1-nofsync', 'copy-nofsync')}   "
              f"fsync costs x1 {b['x1'] - b['x1-nofsync']:+.3f} s, copy {b['copy'] - b['copy-nofsync']:+.3f} s")
        if cold:
            print(f"cold: x1/read = {r('x1-cold', 'read-cold')}   x1/copy = {r('x1-cold', 'copy-cold')}   "
                  f"x1/plain read = {r('x1-cold', 'read-cold-plain')}   "
                  f"(cold read / warm read = {r('read-cold', 'read')}; evicted by "
                  f"{'drop_caches' if args.drop_caches else 'posix_fadvise'})")
        floor = b["copy-nofsync"] / b["read"]
        print(f"floor: copy/read = {r('copy', 'read')} with fsync, {floor:.2f} without: any exporter also writes the "
              f"bytes, so x1/read <= 1.5 is {'out of reach here' if floor > 1.5 else 'possible'} (copy/read "
              f"{'>' if floor > 1.5 else '<='} 1.5); shards identical for 1 and 2 workers: {same}")


if __name__ == "__main__":
    main()
