#!/usr/bin/env python
"""Benchmark `wsovvis export tfrecord` (COCO -> TFRecord shards) against reading the JPEG bytes alone.

The DAVIS sample (240 real 854x480 JPEG frames with the OSVOS pseudo tubes, if ../shared/data/real is
present; else a generated synthetic set) is exported to COCO and its images are listed ``--copies``
times (new image and annotation ids, the same files) to reach ~2,000 images. Timed side by side,
best of ``--repeats`` interleaved runs:

* ``read``: open and read every image file's bytes (the floor: the export must at least do this),
* ``copy``: read them and write the bytes into ``--shards`` files (fsync'd like the export's atomic
  writes): the I/O any exporter pays, whatever its format,
* ``x1`` / ``x2``: the whole export, 1 and 2 worker processes (``--shards`` shards, scenic profile),

and the ratios x1/read (target <= 1.5 when no image is re-encoded), x1/copy and x1/x2; CPU seconds
of this process for read, copy and x1. ``--no-fsync`` skips the fsyncs (both sides), ``--out_dir``
puts the outputs elsewhere (e.g. /dev/shm, to take the disk out).

    python bench/export.py [--copies 8] [--shards 4] [--repeats 3] [--out_dir /dev/shm] [--no-fsync]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.data.coco import ytvis_to_coco  # noqa: E402
from wsovvis.data.convert import convert  # noqa: E402
from wsovvis.data.synthetic import generate_dataset  # noqa: E402
from wsovvis.export.shards import export_tfrecord  # noqa: E402

REAL = Path(os.environ.get("WSOVVIS_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))


def source_set(tmp: Path) -> tuple[str, dict, Path]:
    davis = REAL / "davis2016val_sample"
    if davis.is_dir():
        tubes = tmp / "davis.json"
        convert(davis / "Pseudo_OSVOS_davis2017", davis / "JPEGImages", tubes, split_name="davis", progress=False)
        return "DAVIS 854x480 JPEG, OSVOS tubes", json.loads(tubes.read_text()), davis / "JPEGImages"
    d = generate_dataset(tmp / "synth", num_videos=8, num_frames=30, height=480, width=854, progress=False)
    return "synthetic 854x480 JPEG (real data absent)", json.loads(d.gt_json.read_text()), d.img_root


def duplicate(coco: dict, copies: int) -> dict:
    """The images listed ``copies`` times with fresh ids (their annotations too)."""
    n_img, n_ann = len(coco["images"]), len(coco["annotations"])
    images = [dict(im, id=im["id"] + k * n_img) for k in range(copies) for im in coco["images"]]
    anns = [dict(a, id=a["id"] + k * n_ann, image_id=a["image_id"] + k * n_img)
            for k in range(copies) for a in coco["annotations"]]
    return dict(coco, images=images, annotations=anns)


def read_all(paths: list[str]) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            n += len(f.read())
    return n


def copy_all(paths: list[str], out: Path, shards: int) -> int:
    """Read every image and write its bytes into ``shards`` files round robin, fsync'd: the I/O floor."""
    out.mkdir(parents=True, exist_ok=True)
    files = [open(out / f"copy-{i}", "wb") for i in range(shards)]
    n = 0
    try:
        for k, p in enumerate(paths):
            with open(p, "rb") as f:
                n += files[k % shards].write(f.read())
    finally:
        for f in files:
            f.flush()
            os.fsync(f.fileno())
            f.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-fsync", action="store_true", help="skip the fsync of atomic writes (disk cost aside)")
    ap.add_argument("--out_dir", help="where the outputs go (default: a temporary folder under $TMPDIR)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsovvis_bench_export_", dir=args.out_dir) as tmp_name:
        tmp = Path(tmp_name)
        name, tubes, img_root = source_set(tmp)
        coco = duplicate(ytvis_to_coco(tubes), args.copies)
        paths = [os.path.join(img_root, im["file_name"]) for im in coco["images"]]
        size = read_all(paths)  # warm the page cache: both sides read from memory
        times: dict[str, list[float]] = {"read": [], "copy": [], "x1": [], "x2": []}
        cpu: dict[str, list[float]] = {"read": [], "copy": [], "x1": []}
        patch = mock.patch("os.fsync") if args.no_fsync else mock.MagicMock()
        with patch:
            for _ in range(args.repeats):
                for key, fn in (("read", lambda: read_all(paths)),
                                ("copy", lambda: copy_all(paths, tmp / "copy", args.shards)),
                                ("x1", lambda: export_tfrecord(coco, img_root, tmp / "x1" / "train",
                                                               num_shards=args.shards, overwrite=True,
                                                               progress=False)),
                                ("x2", lambda: export_tfrecord(coco, img_root, tmp / "x2" / "train",
                                                               num_shards=args.shards, workers=2, overwrite=True,
                                                               progress=False))):
                    t0, c0 = time.perf_counter(), time.process_time()
                    fn()
                    times[key].append(time.perf_counter() - t0)
                    if key in cpu:
                        cpu[key].append(time.process_time() - c0)
        rep = json.loads((tmp / "x1" / "train.export_report.json").read_text())
        same = all((tmp / "x1" / p.name).read_bytes() == p.read_bytes() for p in (tmp / "x2").glob("*.tfrecord"))
        b = {k: min(v) for k, v in times.items()}
        c = {k: min(v) for k, v in cpu.items()}
        n = len(coco["images"])
        print(f"data: {name}; {n} images ({args.copies} copies of {n // args.copies}), "
              f"{size / 1e6:.1f} MB of JPEG, {rep['counts']['boxes']} boxes, {rep['counts']['reencoded']} re-encoded, "
              f"{args.shards} shards, fsync {'off' if args.no_fsync else 'on'}; best of {args.repeats}")
        print(f"data in {tmp}")
        print(f"read bytes only : {b['read']:.3f} s  ({n / b['read']:.0f} images/s)  cpu {c['read']:.3f} s")
        print(f"read+write bytes: {b['copy']:.3f} s  ({n / b['copy']:.0f} images/s)  cpu {c['copy']:.3f} s")
        print(f"export 1 worker : {b['x1']:.3f} s  ({n / b['x1']:.0f} images/s)  cpu {c['x1']:.3f} s")
        print(f"export 2 workers: {b['x2']:.3f} s  ({n / b['x2']:.0f} images/s)")
        print(f"ratio export(1 worker)/read = {b['x1'] / b['read']:.2f} (target <= 1.5), "
              f"/read+write = {b['x1'] / b['copy']:.2f}; cpu export/read+write = {c['x1'] / c['copy']:.2f}; "
              f"speed-up 2 workers = {b['x1'] / b['x2']:.2f}x; shards identical for 1 and 2 workers: {same}")


if __name__ == "__main__":
    main()
